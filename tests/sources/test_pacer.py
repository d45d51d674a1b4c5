"""Pacer: absolute deadlines, re-anchoring after lag, and restart after a planned pause."""

from __future__ import annotations

import threading
import time

from edge_daemon.sources.base import Pacer


def release_times(pacer: Pacer, n: int) -> list[float]:
    cancel = threading.Event()
    out = []
    for _ in range(n):
        pacer.wait(cancel)
        out.append(time.monotonic())
    return out


def test_releases_at_the_rate_without_drift() -> None:
    times = release_times(Pacer(50.0), 26)
    assert 0.45 <= times[-1] - times[0] <= 0.6  # 25 intervals of 20 ms


def test_short_pause_is_caught_up_but_restart_is_not() -> None:
    pacer = Pacer(50.0)
    release_times(pacer, 3)
    time.sleep(0.2)  # ten frames late, less than max_lag_s: the schedule catches up
    burst = release_times(pacer, 5)
    assert burst[-1] - burst[0] < 0.02  # released back to back
    time.sleep(0.2)
    pacer.restart()  # e.g. a looping file was reopened: start a new schedule
    steady = release_times(pacer, 5)
    assert steady[-1] - steady[0] >= 0.07  # four intervals of 20 ms, no burst
