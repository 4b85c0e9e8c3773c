"""The fleet hub: device and model registries, staged rollouts, REST API and MQTT bridge.

``create_app(config)`` in :mod:`cloud.hub.app` builds the Flask application; the pure
rollout logic lives in :mod:`cloud.hub.rollout.core.machine` and never touches I/O.
"""
