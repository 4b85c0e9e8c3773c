"""What devices send, stored: the MQTT bridge, the batch writer (in a process of its own),
device reports and the telemetry store.
"""

from cloud.hub.ingest.bridge import MqttBridge

__all__ = [
    "MqttBridge",
]
