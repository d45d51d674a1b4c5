"""FrameQueue: bounded, drop-oldest, never blocks the producer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_daemon.sources import FrameQueue
from edge_daemon.types import Frame

IMG = np.zeros((2, 2, 3), np.uint8)


def frame(seq: int) -> Frame:
    return Frame(camera="c", seq=seq, ts=0.0, mono=0.0, image=IMG)


@pytest.mark.parametrize("bad", [0, 9, -1, 2.0])
def test_maxsize_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match=r"maxsize must be 1\.\.8"):
        FrameQueue(bad)  # type: ignore[arg-type]


def test_drops_oldest_and_counts() -> None:
    q = FrameQueue(3)
    dropped = [q.put(frame(i)) for i in range(5)]
    assert dropped == [False, False, False, True, True]
    assert q.dropped == 2
    assert q.qsize() == 3
    assert [q.get(0).seq for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert q.get(0) is None


def test_get_times_out_and_wakes_on_put() -> None:
    q = FrameQueue(1)
    t0 = time.monotonic()
    assert q.get(0.1) is None
    assert 0.09 <= time.monotonic() - t0 < 1.0

    threading.Timer(0.05, q.put, args=(frame(7),)).start()
    got = q.get(5.0)
    assert got is not None and got.seq == 7


def test_concurrent_producers_never_block_and_counts_add_up() -> None:
    q = FrameQueue(2)
    n_threads, per_thread = 4, 2000
    received: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or q.qsize():
            f = q.get(0.01)
            if f is not None:
                received.append(f.seq)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [
        threading.Thread(target=lambda: [q.put(frame(i)) for i in range(per_thread)])
        for _ in range(n_threads)
    ]
    for p in producers:
        p.start()
    for p in producers:
        p.join(10)
    done.set()
    consumer.join(10)
    assert len(received) + q.dropped == n_threads * per_thread
    assert q.qsize() == 0
