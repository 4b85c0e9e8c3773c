"""Talking to the broker: the transport protocol, the one paho module, an in-memory broker
for tests, and the durable outbox that keeps telemetry through outages.
"""

from edge.messaging.brokers import (
    DEFAULT_BROKER,
    Endpoint,
    Failover,
    join_broker_urls,
    parse_broker_urls,
)
from edge.messaging.memory import MemoryBroker, MemoryTransport, Message
from edge.messaging.outbox import Outbox
from edge.messaging.paho import MqttSettings, MqttTransport, tls_failure
from edge.messaging.protocol import PublishResult, Transport, Will, check_filter, topic_matches

__all__ = [
    "DEFAULT_BROKER",
    "Endpoint",
    "Failover",
    "MemoryBroker",
    "MemoryTransport",
    "Message",
    "MqttSettings",
    "MqttTransport",
    "Outbox",
    "PublishResult",
    "Transport",
    "Will",
    "check_filter",
    "join_broker_urls",
    "parse_broker_urls",
    "tls_failure",
    "topic_matches",
]
