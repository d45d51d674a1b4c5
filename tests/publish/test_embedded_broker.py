"""EmbeddedBroker (amqtt in its own thread) with real paho 2.x clients."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_daemon.publish import BrokerStartError, EmbeddedBroker, MqttPublisher, MqttSettings
from tests.fixtures.mqtt import MqttCollector
from tests.support.net import free_port


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker("127.0.0.1", free_port())
    b.start()
    yield b
    b.stop()


def paho_publish(host: str, port: int, topic: str, payload: bytes, retain: bool) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_paho_pub_sub_and_retained(broker: EmbeddedBroker) -> None:
    assert broker.running
    sub = MqttCollector(broker.host, broker.port, "t/#").start()
    try:
        paho_publish(broker.host, broker.port, "t/live", b"hello", retain=False)
        paho_publish(broker.host, broker.port, "t/kept", b"retained!", retain=True)
        sub.wait_for(lambda ms: {m.topic for m in ms} == {"t/live", "t/kept"})
    finally:
        sub.close()
    # A late subscriber gets the retained message, flagged as retained.
    late = MqttCollector(broker.host, broker.port, "t/#").start()
    try:
        (msg,) = late.wait_topic("t/kept")
        assert msg.payload == b"retained!" and msg.retain
        # Only its own subscription's retained messages, once (amqtt 0.12 sent other
        # sessions' matches too; EmbeddedBroker fixes that).
        other = MqttCollector(broker.host, broker.port, "unrelated/#").start()
        time.sleep(0.3)
        assert [m.topic for m in late.messages] == ["t/kept"]
        assert other.messages == []
        other.close()
    finally:
        late.close()


@pytest.mark.parametrize("protocol", ["3.1.1", "auto"])
def test_publisher_against_embedded_broker(broker: EmbeddedBroker, protocol: str) -> None:
    """amqtt speaks MQTT 3.1.1 only; ``auto`` finds that out (it tries 5 first, and amqtt
    does not even answer an MQTT 5 CONNECT that carries a will)."""
    sub = MqttCollector(broker.host, broker.port, "edge/#").start()
    settings = MqttSettings(
        host=broker.host,
        port=broker.port,
        protocol=protocol,
        connect_timeout_s=1.0,  # type: ignore[arg-type]
    )
    pub = MqttPublisher(settings)
    pub.start()
    try:
        assert pub.connected_event.wait(5)
        pub.publish_state("cam1", {"status": "online"})
        msgs = sub.wait_for(
            lambda ms: {"edge/available", "edge/cam1/state"} <= {m.topic for m in ms}
        )
        assert any(m.topic == "edge/available" and m.payload == b"online" for m in msgs)
    finally:
        pub.stop()
        sub.close()


def test_stop_is_fast_with_connected_clients() -> None:
    b = EmbeddedBroker("127.0.0.1", free_port())
    b.start()
    sub = MqttCollector(b.host, b.port, "#").start()
    try:
        t0 = time.monotonic()
        b.stop(timeout=2.0)
        assert time.monotonic() - t0 < 2.0
        assert not b.running
        # The port is free again: a new broker can take it at once.
        again = EmbeddedBroker(b.host, b.port)
        again.start()
        again.stop()
    finally:
        sub.close()


def test_port_in_use_gives_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        b = EmbeddedBroker("127.0.0.1", port)
        t0 = time.monotonic()
        with pytest.raises(BrokerStartError, match=rf"port {port} .*in use") as info:
            b.start()
        assert "mqtt.embedded_broker.port" in str(info.value)
        assert time.monotonic() - t0 < 2.0
        assert not b.running
    assert threading.active_count() < 50  # no thread leak per failed start


def test_port_taken_by_mosquitto(mosquitto) -> None:
    with pytest.raises(BrokerStartError, match="another broker"):
        EmbeddedBroker(mosquitto.host, mosquitto.port).start()
