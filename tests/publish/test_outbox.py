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
    dropped = box.add("cam", 4, "edge/cam/events", b"{}", 1)
    assert dropped is first and box.full and box.inflight == 0
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
