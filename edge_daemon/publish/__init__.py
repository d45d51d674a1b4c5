"""Publishing to MQTT: the publisher thread, an embedded broker and the payload formats.

- ``MqttPublisher`` (``mqtt.py``): thread-owned paho 2.x client with a bounded outbox,
  at-least-once event delivery, retained availability/state and reconnect with backoff.
- ``EmbeddedBroker`` (``broker.py``): amqtt broker in its own thread, for a single box.
- ``event_payload``/``state_payload``/``stats_payload`` (``payloads.py``): the JSON
  documents, described by ``edge_daemon/schemas/*.schema.json``.
"""

from edge_daemon.publish.broker import BrokerStartError, EmbeddedBroker
from edge_daemon.publish.mqtt import MqttPublisher
from edge_daemon.publish.payloads import (
    EMOTIONS,
    SCHEMA_VERSION,
    event_payload,
    load_schema,
    state_payload,
    stats_payload,
)
from edge_daemon.publish.settings import MqttSettings

__all__ = [
    "EMOTIONS",
    "SCHEMA_VERSION",
    "BrokerStartError",
    "EmbeddedBroker",
    "MqttPublisher",
    "MqttSettings",
    "event_payload",
    "load_schema",
    "state_payload",
    "stats_payload",
]
