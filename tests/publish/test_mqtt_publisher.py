"""MqttPublisher against a real Mosquitto (tests/fixtures/mqtt.py)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_daemon.publish import EMOTIONS, MqttPublisher, MqttSettings, load_schema
from edge_daemon.types import Event, StreamStatus

REPO = Path(__file__).resolve().parents[2]
EVENT_VALIDATOR = jsonschema.Draft202012Validator(load_schema("event"))
STATE_VALIDATOR = jsonschema.Draft202012Validator(load_schema("state"))

# Short backoff so reconnect tests take ~a second, not the production 0.5..30 s.
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.4, "connect_timeout_s": 2.0}


def make_event(camera: str = "cam1", i: int = 0, **kw: Any) -> Event:
    scores = dict.fromkeys(EMOTIONS, 0.05)
    scores["sad"] = 0.7
    args: dict[str, Any] = {
        "type": "update",
        "camera": camera,
        "track_id": 1,
        "emotion": "sad",
        "confidence": 0.7,
        "scores": scores,
        "bbox": (0.1, 0.1, 0.2, 0.2),
        "ts": time.time(),
        "extra": {"i": i},
    }
    args.update(kw)
    return Event(**args)


def settings_for(broker: Any, **kw: Any) -> MqttSettings:
    return MqttSettings(**{"host": broker.host, "port": broker.port, **FAST, **kw})


@pytest.fixture
def publisher() -> Iterator[Callable[..., MqttPublisher]]:
    made: list[MqttPublisher] = []

    def make(settings: MqttSettings, wait: bool = True) -> MqttPublisher:
        pub = MqttPublisher(settings)
        made.append(pub)
        pub.start()
        if wait:
            assert pub.connected_event.wait(5), f"not connected: {pub.stats()}"
        return pub

    yield make
    for pub in made:
        pub.stop()


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.02)


def seqs(collector: Any, topic: str) -> list[int]:
    return [m.json()["seq"] for m in collector.on(topic)]


def test_availability_online_retained_then_offline_on_stop(mosquitto, mqtt_collector, publisher):
    # A subscriber that is there first sees "online" arrive: the broker has it then
    # (connected_event is set as the publish is queued, not when the broker stored it).
    first = mqtt_collector(mosquitto, "edge/available")
    pub = publisher(settings_for(mosquitto))
    first.wait_topic("edge/available")
    # Subscribing after that: "online" must come back as a retained message.
    late = mqtt_collector(mosquitto, "edge/available")
    (msg,) = late.wait_topic("edge/available")
    assert msg.payload == b"online" and msg.retain
    t0 = time.monotonic()
    pub.stop(timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    msgs = late.wait_topic("edge/available", 2)
    assert msgs[-1].payload == b"offline"
    assert not pub.connected_event.is_set() and not pub.stats()["connected"]
    after = mqtt_collector(mosquitto, "edge/available")
    (msg,) = after.wait_topic("edge/available")
    assert msg.payload == b"offline" and msg.retain


def test_last_will_offline_when_process_is_killed(mosquitto, mqtt_collector):
    script = textwrap.dedent(
        f"""
        import sys, time
        from edge_daemon.publish import MqttPublisher, MqttSettings
        pub = MqttPublisher(MqttSettings(host={mosquitto.host!r}, port={mosquitto.port},
                                         topic_prefix="killme", keepalive_s=5))
        pub.start()
        assert pub.connected_event.wait(10)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    watcher = mqtt_collector(mosquitto, "killme/available")
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        watcher.wait_for(lambda ms: any(m.payload == b"online" for m in ms), what="online")
        proc.send_signal(signal.SIGKILL)  # no clean DISCONNECT: the broker sends the will
        proc.wait(5)
        msgs = watcher.wait_for(lambda ms: ms[-1].payload == b"offline", timeout=5, what="will")
        assert msgs[-1].topic == "killme/available"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    late = mqtt_collector(mosquitto, "killme/available")
    (msg,) = late.wait_topic("killme/available")
    assert msg.payload == b"offline" and msg.retain


def test_events_topic_schema_and_per_camera_seq(mosquitto, mqtt_collector, publisher):
    sub = mqtt_collector(mosquitto, "edge/+/events")
    pub = publisher(settings_for(mosquitto))
    for i in range(5):
        assert pub.publish_event(make_event("cam1", i))
        if i < 3:
            pub.publish_event(make_event("cam2", i, type="alert", extra={"alert": "sad_long"}))
    sub.wait_for(lambda ms: len(ms) == 8, what="8 events")
    for m in sub.messages:
        EVENT_VALIDATOR.validate(m.json())
        assert not m.retain and m.qos == 1
        assert m.topic == f"edge/{m.json()['camera']}/events"
    assert seqs(sub, "edge/cam1/events") == [1, 2, 3, 4, 5]
    assert [m.json()["i"] for m in sub.on("edge/cam1/events")] == [0, 1, 2, 3, 4]
    assert seqs(sub, "edge/cam2/events") == [1, 2, 3]
    assert sub.on("edge/cam2/events")[0].json()["alert"] == "sad_long"
    wait_until(lambda: pub.stats()["events_published"] == 8, what="8 acked")
    stats = pub.stats()
    assert stats["outbox"] == 0 and stats["events_dropped"] == 0 and stats["connected"]


def test_broker_restart_delivers_every_event_in_order(mosquitto_factory, mqtt_collector, publisher):
    # A persistent broker and a durable (clean_session=False) subscriber, so the test's
    # subscriber misses nothing while the broker is down; the publisher must do the rest.
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_collector(broker, "edge/cam1/events", client_id="durable-sub", clean_session=False)
    pub = publisher(settings_for(broker))
    for i in range(3):
        pub.publish_event(make_event(i=i))
    sub.wait_for(lambda ms: len(ms) == 3, what="first 3")

    broker.stop()
    wait_until(lambda: not pub.connected_event.is_set(), what="publisher sees the loss")
    for i in range(3, 13):
        pub.publish_event(make_event(i=i))
    wait_until(lambda: pub.stats()["outbox"] == 10, what="10 in the outbox")
    failed = pub.stats()["connect_failures"]
    wait_until(lambda: pub.stats()["connect_failures"] >= failed + 3, what="3 failed reconnects")
    assert not pub.stats()["connected"]
    broker.start()

    sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, 14)), timeout=10)
    got = seqs(sub, "edge/cam1/events")
    # At-least-once: a duplicate is allowed, a gap or reordering is not.
    firsts = list(dict.fromkeys(got))
    assert firsts == list(range(1, 14)), got
    wait_until(lambda: pub.stats()["outbox"] == 0, what="outbox drained")
    stats = pub.stats()
    assert stats["reconnects"] >= 1 and stats["events_dropped"] == 0
    assert stats["events_published"] == 13


def test_outbox_overflow_drops_oldest_and_logs_once(
    mosquitto_factory, mqtt_collector, publisher, caplog
):
    caplog.set_level(logging.DEBUG, logger="edge_daemon.publish")
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_collector(broker, "edge/cam1/events", client_id="durable-sub2", clean_session=False)
    broker.stop()
    pub = publisher(settings_for(broker, outbox_max=5), wait=False)
    t0 = time.perf_counter()
    for i in range(12):
        assert pub.publish_event(make_event(i=i))
    assert time.perf_counter() - t0 < 0.5, "publish_event must not block"
    wait_until(lambda: pub.stats()["events_dropped"] == 7, what="7 dropped")
    assert pub.stats()["outbox"] == 5
    wait_until(lambda: pub.stats()["connect_failures"] >= 4, what="several refused reconnects")
    refused = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len([r for r in refused if r.levelno == logging.WARNING]) == 1  # ...logged once
    assert "is the broker running?" in refused[0].getMessage()
    assert not any(r.exc_info for r in caplog.records), "no tracebacks for network errors"
    overflow = [r for r in caplog.records if "outbox full" in r.getMessage()]
    assert len(overflow) == 1

    broker.start()
    sub.wait_for(lambda ms: len({m.json()["seq"] for m in ms}) >= 5, timeout=10)
    wait_until(lambda: pub.stats()["events_published"] + pub.stats()["events_dropped"] == 12)
    sub.sync()  # whatever the broker acknowledged has reached the subscriber
    assert sorted(set(seqs(sub, "edge/cam1/events"))) == [8, 9, 10, 11, 12]  # newest kept
    assert [m.json()["i"] for m in sub.messages][:5] == [7, 8, 9, 10, 11]
    stats = pub.stats()
    assert stats["events_published"] == 5 and stats["events_dropped"] == 7


def test_retained_state_latest_per_camera_and_reasserted_after_restart(
    mosquitto, mqtt_collector, publisher
):
    pub = publisher(settings_for(mosquitto))
    pub.publish_state("cam1", {"status": StreamStatus.STARTING})
    pub.publish_state("cam1", {"status": StreamStatus.ONLINE, "fps": 15.0})
    pub.publish_state("cam2", {"status": "reconnecting", "error": "timeout"})
    sub = mqtt_collector(mosquitto, "edge/+/state")
    sub.wait_for(lambda ms: {m.topic for m in ms} == {"edge/cam1/state", "edge/cam2/state"})
    sub.sync()
    for m in sub.messages:
        STATE_VALIDATOR.validate(m.json())
    assert sub.on("edge/cam1/state")[-1].json()["status"] == "online"

    # Broker restarts WITHOUT persistence: all retained messages are gone. States
    # submitted meanwhile collapse to the latest, and everything is re-asserted.
    mosquitto.stop()
    wait_until(lambda: not pub.connected_event.is_set())
    pub.publish_state("cam1", {"status": StreamStatus.RECONNECTING})
    pub.publish_state("cam1", {"status": StreamStatus.STOPPED})
    mosquitto.start()
    assert pub.connected_event.wait(5)
    time.sleep(0.2)  # let the re-published retained messages reach the broker
    late = mqtt_collector(mosquitto, ["edge/+/state", "edge/available"])
    late.wait_for(lambda ms: len(ms) >= 3, what="retained state + availability")
    msgs = late.sync()
    assert all(m.retain for m in msgs)
    by_topic = {m.topic: m for m in msgs}
    assert by_topic["edge/cam1/state"].json()["status"] == "stopped"
    assert by_topic["edge/cam2/state"].json()["status"] == "reconnecting"
    assert by_topic["edge/available"].payload == b"online"
    assert len(late.on("edge/cam1/state")) == 1


def test_username_password_success(mosquitto_factory, mqtt_collector, publisher, caplog):
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(auth=("edge", "pw-Secret-42"))
    sub = mqtt_collector(broker, "edge/#", username="edge", password="pw-Secret-42")
    pub = publisher(settings_for(broker, username="edge", password="pw-Secret-42"))
    pub.publish_event(make_event())
    sub.wait_for(lambda ms: any(m.topic == "edge/cam1/events" for m in ms))
    assert "pw-Secret-42" not in caplog.text
    assert "pw-Secret-42" not in repr(pub.settings)


def test_username_password_failure_is_reported_once(mosquitto_factory, publisher, caplog):
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(auth=("edge", "right-password"))
    pub = publisher(settings_for(broker, username="edge", password="WRONG-pw-77"), wait=False)
    wait_until(lambda: pub.stats()["last_error"] is not None, what="auth failure")
    wait_until(lambda: pub.stats()["connect_failures"] >= 4, what="several refused attempts")
    assert not pub.connected_event.is_set()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    msg = warnings[0].getMessage()
    assert "check mqtt.username/mqtt.password" in msg and "Not authorized" in msg
    assert "WRONG-pw-77" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


def test_tls_with_generated_ca(mosquitto_factory, mqtt_collector, mqtt_tls_files, publisher):
    tls = mqtt_tls_files
    broker = mosquitto_factory(tls=tls)
    sub = mqtt_collector(broker, "edge/#", tls_ca=tls.ca_cert)
    # "localhost" matches the certificate's DNS name (127.0.0.1 is in the SAN too).
    pub = publisher(settings_for(broker, host="localhost", use_tls=True, tls_ca_file=tls.ca_cert))
    pub.publish_event(make_event())
    (msg,) = sub.wait_topic("edge/cam1/events")
    EVENT_VALIDATOR.validate(msg.json())


def test_tls_untrusted_ca_is_reported_and_insecure_connects(
    mosquitto_factory, mqtt_tls_files, publisher, caplog
):
    caplog.set_level(logging.WARNING, logger="edge_daemon.publish")
    broker = mosquitto_factory(tls=mqtt_tls_files)
    base = settings_for(broker, use_tls=True, tls_ca_file=mqtt_tls_files.other_ca_cert)
    bad = publisher(base, wait=False)
    wait_until(lambda: bad.stats()["last_error"] is not None, what="TLS failure")
    assert "not trusted" in bad.stats()["last_error"]
    assert "mqtt.tls.ca_file" in bad.stats()["last_error"]
    bad.stop()
    # tls_insecure: no verification at all (testing only), and a warning says so.
    publisher(replace(base, tls_ca_file=None, tls_insecure=True))
    assert any("NOT verified" in r.getMessage() for r in caplog.records)


def test_plain_client_on_tls_port_gets_a_hint(mosquitto_factory, mqtt_tls_files, publisher):
    broker = mosquitto_factory(tls=mqtt_tls_files)
    pub = publisher(settings_for(broker), wait=False)
    wait_until(lambda: pub.stats()["last_error"] is not None, what="failure")
    assert "mqtt.tls" in pub.stats()["last_error"]


def test_tls_client_certificate(mosquitto_factory, mqtt_collector, mqtt_tls_files, publisher):
    tls = mqtt_tls_files
    broker = mosquitto_factory(tls=tls, require_certificate=True)
    sub = mqtt_collector(
        broker, "edge/#", tls_ca=tls.ca_cert, tls_cert=tls.client_cert, tls_key=tls.client_key
    )
    base = settings_for(broker, use_tls=True, tls_ca_file=tls.ca_cert)
    no_cert = publisher(base, wait=False)
    wait_until(lambda: no_cert.stats()["last_error"] is not None, what="refused without cert")
    assert not no_cert.connected_event.is_set()
    no_cert.stop()
    pub = publisher(replace(base, tls_cert_file=tls.client_cert, tls_key_file=tls.client_key))
    pub.publish_event(make_event())
    sub.wait_topic("edge/cam1/events")


def test_snapshots_only_when_enabled(mosquitto, mqtt_collector, publisher):
    sub = mqtt_collector(mosquitto, "edge/+/snapshot/+")
    off = publisher(settings_for(mosquitto, topic_prefix="edge"))
    assert off.publish_snapshot("cam1", "start", b"\xff\xd8fake-jpeg") is False
    assert off.stats()["snapshots_refused"] == 1
    on = publisher(settings_for(mosquitto, client_id="with-images", publish_images=True))
    assert on.publish_snapshot("cam1", "start", b"\xff\xd8first")
    assert on.publish_snapshot("cam1", "start", b"\xff\xd8latest")
    assert on.publish_snapshot("cam1", "alert", b"\xff\xd8alert")
    sub.wait_for(lambda ms: len(ms) >= 3, what="three pictures")
    assert [m.payload for m in sub.on("edge/cam1/snapshot/start")] == [
        b"\xff\xd8first",
        b"\xff\xd8latest",
    ]
    with pytest.raises(ValueError, match="not an event type"):
        on.publish_snapshot("cam1", "selfie", b"x")
    # Retained: a subscriber that comes later gets the latest of each kind.
    late = mqtt_collector(mosquitto, "edge/+/snapshot/+")
    late.wait_for(lambda ms: len(ms) >= 2, what="the retained pictures")
    got = {m.topic: (m.payload, m.retain) for m in late.sync()}
    assert got == {
        "edge/cam1/snapshot/start": (b"\xff\xd8latest", True),
        "edge/cam1/snapshot/alert": (b"\xff\xd8alert", True),
    }


def test_publish_raw_stats_and_absolute_topic(mosquitto, mqtt_collector, publisher):
    sub = mqtt_collector(mosquitto, ["edge/#", "homeassistant/#"])
    pub = publisher(settings_for(mosquitto))
    pub.publish_stats({"uptime_s": 1.5, "mqtt": pub.stats()})
    pub.publish_raw("homeassistant/sensor/x/config", '{"a":1}', retain=True, qos=1, absolute=True)
    pub.publish_raw("debug/ping", b"1")
    sub.wait_for(lambda ms: len(ms) >= 4, what="stats, discovery, ping, available")
    (stats,) = sub.on("edge/stats")
    jsonschema.validate(stats.json(), load_schema("stats"))
    assert sub.on("homeassistant/sensor/x/config")[0].payload == b'{"a":1}'
    assert sub.on("edge/debug/ping")[0].payload == b"1"
    with pytest.raises(ValueError, match="invalid MQTT topic"):
        pub.publish_raw("a/#", b"")
    with pytest.raises(ValueError, match="cannot be used in an MQTT topic"):
        pub.publish_event(make_event("bad/camera"))


def test_invalid_event_is_counted_without_a_seq_gap(mosquitto, mqtt_collector, publisher, caplog):
    sub = mqtt_collector(mosquitto, "edge/cam1/events")
    pub = publisher(settings_for(mosquitto))
    pub.publish_event(make_event(i=0))
    pub.publish_event(make_event(i=1, emotion="bored"))  # not a class: a bug upstream
    pub.publish_event(make_event(i=2))
    sub.wait_for(lambda ms: len(ms) == 2)
    assert seqs(sub, "edge/cam1/events") == [1, 2]
    assert pub.stats()["events_invalid"] == 1
    assert any("invalid event" in r.getMessage() for r in caplog.records)


def test_stop_is_fast_when_broker_is_unreachable(publisher):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pub = publisher(MqttSettings(host="127.0.0.1", port=port, **FAST), wait=False)
    for i in range(100):
        pub.publish_event(make_event(i=i))
    wait_until(lambda: pub.stats()["connect_failures"] >= 1, what="a refused attempt")
    t0 = time.monotonic()
    pub.stop(timeout=2.0)
    assert time.monotonic() - t0 < 1.0
    assert pub.stats()["outbox"] == 100
    assert pub.publish_event(make_event()) is False  # after stop: refused, never blocks


def test_silent_port_times_out_waiting_for_connack(publisher):
    with socket.socket() as server:  # accepts TCP (kernel backlog) but never answers MQTT
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        settings = MqttSettings(
            host="127.0.0.1", port=server.getsockname()[1], **{**FAST, "connect_timeout_s": 0.5}
        )
        pub = publisher(settings, wait=False)
        pub.publish_event(make_event())
        wait_until(lambda: pub.stats()["last_error"] is not None, what="CONNACK timeout")
        assert "did not answer CONNECT" in pub.stats()["last_error"]
        assert pub.stats()["outbox"] == 1 and not pub.stats()["connected"]


def test_publishes_the_broker_refuses_are_failures_not_published(
    mosquitto_factory, publisher, caplog
):
    # Before: the publisher spoke MQTT 3.1.1, Mosquitto acknowledged the publishes its ACL
    # denied, and the metrics counted them as published.
    broker = mosquitto_factory(acl="topic readwrite edge/available\ntopic readwrite edge/+/state\n")
    pub = publisher(settings_for(broker))
    for i in range(3):
        assert pub.publish_event(make_event("cam1", i))
    wait_until(lambda: pub.stats()["publish_failures"] >= 3, what="3 refused publishes")
    stats = pub.stats()
    assert stats["events_published"] == 0 and stats["events_dropped"] == 3
    assert stats["outbox"] == 0  # a refused publish is not retried: the broker said no
    assert "broker rejected event cam1 seq 1: Not authorized" in caplog.text


class SilentBroker:
    """Accepts MQTT 3.1.1 connections, sends CONNACK, and never acknowledges a publish
    (what a 3.1.1 broker that drops denied publishes looks like)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(conn)
            conn.recv(4096)  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK, accepted

    def close(self) -> None:
        self.server.close()
        for c in self.conns:
            c.close()


def test_an_event_never_acknowledged_is_a_failure_and_reconnects(publisher, monkeypatch, caplog):
    import edge_daemon.publish.mqtt as mqtt_module

    monkeypatch.setattr(mqtt_module, "PUBACK_TIMEOUT_S", 0.5)
    broker = SilentBroker()
    try:
        settings = MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            protocol="3.1.1",
            **{**FAST, "connect_timeout_s": 1.0},
        )
        pub = publisher(settings)
        pub.publish_event(make_event())
        wait_until(lambda: broker.connections >= 2, what="a reconnect after no PUBACK")
        stats = pub.stats()
        assert stats["publish_failures"] >= 1 and stats["events_published"] == 0
        assert "acknowledged no event for 0.5 s (oldest unacknowledged: cam1 seq 1)" in caplog.text
        assert stats["outbox"] == 1  # kept, to be resent on the new connection
    finally:
        broker.close()


def test_tls_client_on_plain_port_gets_a_hint(mosquitto, mqtt_tls_files, publisher):
    settings = settings_for(mosquitto, use_tls=True, tls_ca_file=mqtt_tls_files.ca_cert)
    pub = publisher(settings, wait=False)
    wait_until(lambda: pub.stats()["last_error"] is not None, what="failure")
    assert "TLS" in pub.stats()["last_error"], pub.stats()["last_error"]


def test_missing_tls_file_is_reported(tmp_path, publisher):
    settings = MqttSettings(use_tls=True, tls_ca_file=tmp_path / "nope.crt", **FAST)
    pub = publisher(settings, wait=False)
    wait_until(lambda: pub.stats()["last_error"] is not None, what="failure")
    assert "mqtt.tls.ca_file" in pub.stats()["last_error"]
