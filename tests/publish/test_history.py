"""The event history: written by the store beside the outbox, bounded by age and size,
read through publish.history's one query (filters, order, limit), on real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_daemon.publish.history import (
    MAX_LIMIT,
    HistoryError,
    HistoryQuery,
    parse_time,
    query,
)
from edge_daemon.publish.store import OutboxStore

T0 = 1_764_600_000.0  # 2025-12-01T14:40:00Z


def record(
    store: OutboxStore,
    camera: str,
    seq: int,
    ts: float,
    kind: str = "start",
    emotion: str = "happy",
    size: int = 0,
) -> None:
    doc = {
        "camera": camera,
        "seq": seq,
        "ts": ts,
        "type": kind,
        "emotion": emotion,
        "pad": "x" * size,
    }
    row = store.add(
        camera, seq, f"edge/{camera}/events", json.dumps(doc).encode(), 1, ts, (ts, kind, emotion)
    )
    assert row is not None


@pytest.fixture
def history(tmp_path: Path) -> Path:
    store = OutboxStore.open(tmp_path, history_days=30)
    for i in range(10):
        record(
            store,
            "door" if i % 2 == 0 else "yard",
            i // 2 + 1,
            T0 + i * 60,
            kind="end" if i % 4 == 3 else "start",
        )
    assert store.commit()
    store.remove([1, 2, 3])  # delivered: leaves the outbox, stays in the history
    assert store.commit()
    store.close()
    return tmp_path


def test_every_event_is_kept_delivered_or_not_and_filters_apply(history: Path) -> None:
    events, more = query(history, HistoryQuery(limit=100, order="asc"))
    assert [e["ts"] for e in events] == [T0 + i * 60 for i in range(10)] and not more
    door, _ = query(history, HistoryQuery(camera="door", order="asc"))
    assert [e["seq"] for e in door] == [1, 2, 3, 4, 5]
    window, _ = query(history, HistoryQuery(since=T0 + 120, until=T0 + 300, order="asc"))
    assert [e["ts"] for e in window] == [T0 + 120, T0 + 180, T0 + 240, T0 + 300]
    ends, _ = query(history, HistoryQuery(type="end"))
    assert [e["ts"] for e in ends] == [T0 + 420, T0 + 180]  # newest first by default


def test_limit_returns_the_newest_and_says_more_matched(history: Path) -> None:
    events, more = query(history, HistoryQuery(limit=3))
    assert [e["ts"] for e in events] == [T0 + 540, T0 + 480, T0 + 420] and more
    events, more = query(history, HistoryQuery(limit=10))
    assert len(events) == 10 and not more


def test_retention_by_age_and_by_size_drops_the_oldest(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path, history_days=1, history_max_bytes=20_000)
    for seq in range(1, 4):
        record(store, "door", seq, T0 - 2 * 86400 + seq)  # two days old
    for seq in range(4, 30):
        record(store, "door", seq, T0 + seq, size=1000)  # ~26 KB of recent events
    assert store.commit()
    deleted = store.prune(now=T0 + 100)
    assert store.commit()
    events, _ = query(tmp_path, HistoryQuery(limit=100, order="asc"))
    kept = [e["seq"] for e in events]
    assert 1 not in kept and 2 not in kept and 3 not in kept  # older than a day
    assert kept == list(range(kept[0], 30))  # the newest survive, oldest go first
    assert sum(len(json.dumps(e)) + 64 for e in events) <= 20_000
    assert deleted == 29 - len(kept) and store.history_pruned == deleted
    store.close()


def test_no_history_is_written_when_none_is_kept(tmp_path: Path) -> None:
    store = OutboxStore.open(tmp_path)  # history_days 0
    record(store, "door", 1, T0)
    assert store.commit() and store.prune(T0) == 0
    store.close()
    assert query(tmp_path, HistoryQuery()) == ([], False)


def test_parse_time_takes_epoch_iso_and_durations_back_from_now() -> None:
    assert parse_time("1764600000") == T0
    assert parse_time("2025-12-01T14:40:00+00:00") == T0
    assert parse_time("30m", now=T0) == T0 - 1800 and parse_time("2d", now=T0) == T0 - 172800
    assert parse_time("90s", now=T0) == T0 - 90 and parse_time("1.5h", now=T0) == T0 - 5400
    for bad in ("yesterday", "-5", "nan", "10x"):
        with pytest.raises(HistoryError, match="time"):
            parse_time(bad)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"camera": "a/b"}, "camera"),
        ({"type": "begin"}, "type 'begin'"),
        ({"limit": "0"}, f"limit must be 1..{MAX_LIMIT}"),
        ({"limit": "ten"}, "limit must be a number"),
        ({"order": "up"}, "order must be asc or desc"),
        ({"since": "2h", "until": "3h"}, "since is after until"),
        ({"camra": "door"}, "unknown parameter 'camra'"),
    ],
)
def test_a_bad_query_is_refused_by_name(params: dict[str, str], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        HistoryQuery.from_params(params)


def test_no_history_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no event history at"):
        query(tmp_path / "nowhere", HistoryQuery())


def test_alert_pictures_are_kept_with_their_events_and_go_with_them(tmp_path: Path) -> None:
    from edge_daemon.publish.history import picture

    store = OutboxStore.open(tmp_path, history_days=1, history_max_bytes=30_000)
    record(store, "door", 1, T0 - 2 * 86400, kind="alert")  # older than a day
    store.add_snapshot("door", 1, T0 - 2 * 86400, b"\xff\xd8old")
    record(store, "door", 2, T0, kind="alert")
    store.add_snapshot("door", 2, T0, b"\xff\xd8new")
    assert store.commit()
    events, _ = query(tmp_path, HistoryQuery(order="asc"))
    assert [(e["seq"], e.get("picture")) for e in events] == [(1, True), (2, True)]
    assert store.prune(now=T0) == 1 and store.commit()
    assert picture(tmp_path, "door", 1) is None  # went with its event
    assert picture(tmp_path, "door", 2) == b"\xff\xd8new"
    # Pictures count toward the size bound: a big one pushes old events out.
    for seq in range(3, 8):
        record(store, "door", seq, T0 + seq, kind="alert")
        store.add_snapshot("door", seq, T0 + seq, b"\xff\xd8" + b"x" * 9000)
    assert store.commit() and store.prune(now=T0 + 10) > 0 and store.commit()
    assert store._history_size == store._measured_history()  # tracked, not re-scanned
    events, _ = query(tmp_path, HistoryQuery(order="asc"))
    assert events[-1]["seq"] == 7 and len(events) < 6
    assert all(picture(tmp_path, "door", e["seq"]) is not None for e in events)
    store.close()
