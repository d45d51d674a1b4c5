"""The publisher with a durable store, against a real Mosquitto: events produced while the
broker is down survive a publisher restart, in order, and seq continues; the identity
in the payloads says which run produced what; events past the age bound are dropped
and counted, not delivered."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edge_daemon.publish import MqttPublisher
from edge_daemon.publish.store import OutboxStore
from tests.publish.test_mqtt_publisher import make_event, settings_for, wait_until


def run_publisher(settings: Any, state: Path) -> tuple[MqttPublisher, OutboxStore]:
    store = OutboxStore.open(state)
    pub = MqttPublisher(settings, store)
    pub.start()
    return pub, store


def stop(pub: MqttPublisher, store: OutboxStore) -> None:
    pub.stop(timeout=2.0)
    assert not pub.alive
    store.close()


def test_events_waiting_for_the_broker_survive_a_restart_and_seq_continues(
    tmp_path: Path, mosquitto_factory: Any, mqtt_collector: Any
) -> None:
    broker = mosquitto_factory(start=False)  # down while the first run produces
    state = tmp_path / "state"
    pub, store = run_publisher(settings_for(broker), state)
    first = store.origin
    for i in range(5):
        assert pub.publish_event(make_event("door", i=i))
    pub.publish_event(make_event("yard", i=100))
    wait_until(lambda: pub.stats()["outbox"] == 6, what="6 in the outbox")
    stop(pub, store)

    broker.start()
    sub = mqtt_collector(broker, "edge/+/events")
    pub, store = run_publisher(settings_for(broker), state)
    assert pub.stats()["events_restored"] == 6
    assert store.origin.instance_id == first.instance_id and store.origin.boot == 2
    sub.wait_for(lambda ms: len({(m.topic, m.json()["seq"]) for m in ms}) >= 6, timeout=10)
    pub.publish_event(make_event("door", i=5))
    sub.wait_for(lambda ms: any(m.json()["i"] == 5 for m in ms), timeout=10)
    wait_until(lambda: pub.stats()["outbox"] == 0, what="outbox drained")
    stop(pub, store)

    door = [m.json() for m in sub.on("edge/door/events")]
    firsts = list({d["seq"]: d for d in door}.values())  # QoS 1: a repeat is allowed
    assert [d["seq"] for d in firsts] == [1, 2, 3, 4, 5, 6]
    assert [d["i"] for d in firsts] == [0, 1, 2, 3, 4, 5]
    assert {d["instance_id"] for d in firsts} == {first.instance_id}
    assert [d["boot"] for d in firsts] == [1, 1, 1, 1, 1, 2]  # who produced each one
    assert [m.json()["seq"] for m in sub.on("edge/yard/events")][:1] == [1]
    assert list(OutboxStore.open(state).pending()) == []  # acknowledged: deleted


def test_restored_events_past_the_age_bound_are_dropped_and_counted(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    state = tmp_path / "state"
    store = OutboxStore.open(state)
    now = time.time()
    for seq, age_s in ((1, 7200.0), (2, 7100.0), (3, 10.0)):
        store.add("door", seq, "edge/door/events", b'{"seq": %d}' % seq, 1, now - age_s)
    assert store.commit()
    store.close()
    sub = mqtt_collector(mosquitto, "edge/door/events")
    pub, store = run_publisher(settings_for(mosquitto, outbox_max_age_s=3600.0), state)
    sub.wait_for(lambda ms: len(ms) >= 1, timeout=10)
    wait_until(lambda: pub.stats()["outbox"] == 0, what="outbox drained")
    sub.sync()
    stats = pub.stats()
    stop(pub, store)
    assert [m.payload for m in sub.messages] == [b'{"seq": 3}']
    assert stats["events_expired"] == 2 and stats["events_dropped"] == 2
    assert stats["events_restored"] == 3


def test_the_history_holds_each_event_under_its_published_ts(
    tmp_path: Path, mosquitto_factory: Any
) -> None:
    """A query by the ts a subscriber saw finds that event: the history keeps the
    payload's rounded ts, not the unrounded one (which a query could miss by 0.5 ms)."""
    from edge_daemon.publish.history import HistoryQuery, query

    broker = mosquitto_factory(start=False)  # no broker needed: history is written at once
    store = OutboxStore.open(tmp_path, history_days=1)
    pub = MqttPublisher(settings_for(broker), store)
    pub.start()
    now = time.time()
    for ts in (now + 0.0006, now + 1.0004):  # rounds up, rounds down
        pub.publish_event(make_event("door", ts=ts))
    wait_until(lambda: pub.stats()["outbox"] == 2, what="2 stored")
    stop(pub, store)
    events, _ = query(tmp_path, HistoryQuery(order="asc"))
    for e in events:
        found, _ = query(tmp_path, HistoryQuery(since=e["ts"], until=e["ts"]))
        assert [f["seq"] for f in found] == [e["seq"]], e["ts"]
