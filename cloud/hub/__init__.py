"""The fleet hub: device and model registries, staged rollouts, REST API and MQTT bridge.

``create_app(config)`` in :mod:`cloud.hub.app` builds the Flask application;
:mod:`cloud.hub.context` holds the per-app services; the pure rollout state machine lives
in :mod:`cloud.hub.rollout.core` and never touches I/O. docs/architecture.md maps the rest.
"""
