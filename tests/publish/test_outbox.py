"""The outbox's rules on their own: order, bound, in-flight window, acknowledgement and
resending after a lost connection (no broker, no threads)."""

from __future__ import annotations

import pytest

from edge_daemon.publish.outbox import Outbox


def fill(box: Outbox, n: int, qos: int = 1, start: int = 1) -> None:
    for seq in range(start, start + n):
        box.add("cam", seq, "edge/cam/events", b"{}", qos)


def test_sends_oldest_first_within_the_window() -> None:
    box = Outbox(maxlen=10, window=3)
    fill(box, 5)
    batch = list(box.sendable())  # nothing marked sent: the window is not used yet
    assert [e.seq for e in batch] == [1, 2, 3, 4, 5]
    for mid, e in enumerate(box.sendable(), start=100):
        box.sent(e, mid, now=1.0)
    assert box.inflight == 3 and len(box) == 5  # the window stopped the iteration at 3
    assert [e.seq for e in box.sendable()] == []


def test_an_event_leaves_only_when_acknowledged() -> None:
    box = Outbox(maxlen=10, window=8)
    fill(box, 2)
    for mid, e in enumerate(box.sendable(), start=1):
        box.sent(e, mid, now=5.0)
    assert box.oldest_inflight().seq == 1 and box.oldest_inflight().sent_at == 5.0
    acked = box.acked(1)
    assert acked is not None and acked.seq == 1 and len(box) == 1
    assert box.acked(1) is None and box.acked(999) is None  # duplicates, other messages


def test_qos0_leaves_when_handed_over() -> None:
    box = Outbox(maxlen=10, window=2)
    fill(box, 4, qos=0)
    for e in box.sendable():
        box.delivered(e)  # no acknowledgement exists: the window never fills
    assert len(box) == 0


def test_full_outbox_drops_the_oldest_and_ignores_its_late_ack() -> None:
    box = Outbox(maxlen=3, window=8)
    fill(box, 3)
    first = next(box.sendable())
    box.sent(first, 7, now=0.0)
    _, dropped = box.add("cam", 4, "edge/cam/events", b"{}", 1)
    assert dropped == [first] and box.full and box.inflight == 0
    assert box.acked(7) is None  # the late PUBACK of the dropped event changes nothing
    assert [e.seq for e in box.sendable()] == [2, 3, 4]


def test_lost_connection_resends_in_flight_events_in_order() -> None:
    box = Outbox(maxlen=10, window=8)
    fill(box, 3)
    for mid, e in enumerate(box.sendable(), start=1):
        box.sent(e, mid, now=0.0)
    assert box.requeue_inflight() == 3 and box.inflight == 0
    assert [e.seq for e in box.sendable()] == [1, 2, 3] and len(box) == 3


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        Outbox(maxlen=0, window=1)


def test_the_byte_bound_drops_as_many_oldest_as_needed_but_never_the_newest() -> None:
    box = Outbox(maxlen=100, window=8, max_bytes=10)
    for seq in (1, 2, 3):
        box.add("cam", seq, "t", b"abc", 1)  # 9 bytes
    assert box.bytes == 9 and not box.full
    entry, dropped = box.add("cam", 4, "t", b"abcdefg", 1)  # 7 more: 2 must go
    assert [e.seq for e in dropped] == [1, 2] and box.bytes == 10
    assert [e.seq for e in box] == [3, 4] and box.full
    entry, dropped = box.add("cam", 5, "t", b"x" * 50, 1)  # larger than the bound alone
    assert [e.seq for e in dropped] == [3, 4] and [e.seq for e in box] == [5]
    box.sent(entry, 1, now=0.0)
    assert box.acked(1) is entry and box.bytes == 0 and len(box) == 0


def test_events_older_than_the_age_bound_expire_oldest_first() -> None:
    box = Outbox(maxlen=100, window=8, max_age_s=60)
    for seq, created in ((1, 1000.0), (2, 1030.0), (3, 1090.0)):
        box.add("cam", seq, "t", b"{}", 1, created=created)
    inflight = next(box.sendable())
    box.sent(inflight, 5, now=0.0)
    assert box.expire(now=1080.0) == [inflight]  # 80 s old; seq 2 is 50 s old
    assert box.acked(5) is None and box.inflight == 0  # its late PUBACK is ignored
    assert [e.seq for e in box.expire(now=1200.0)] == [2, 3] and box.bytes == 0
    assert Outbox(maxlen=5, window=1).expire(now=1e12) == []  # no age bound


@pytest.mark.parametrize(
    "kwargs", [{"maxlen": 0}, {"window": 0}, {"max_bytes": 0}, {"max_age_s": 0.0}]
)
def test_bounds_must_be_positive(kwargs: dict[str, float]) -> None:
    args = {"maxlen": 5, "window": 1, **kwargs}
    with pytest.raises(ValueError, match="must be"):
        Outbox(**args)  # type: ignore[arg-type]
