"""Pacer: absolute deadlines, re-anchoring after lag, and restart after a planned pause.

Replayed on a fake clock: the pacer's sleeps advance it exactly, so the schedule is
checked to the microsecond and no test depends on how busy the machine is.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from edge_daemon.sources.base import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, cancel: threading.Event, seconds: float) -> bool:
        self.now += seconds
        return not cancel.is_set()


def release_times(pacer: Pacer, clock: FakeClock, n: int, work_s: float = 0.0) -> list[float]:
    """Times at which ``n`` frames are released, the caller working ``work_s`` on each."""
    cancel = threading.Event()
    out = []
    for _ in range(n):
        assert pacer.wait(cancel)
        out.append(clock.now)
        clock.now += work_s
    return out


def make(fps: float = 50.0, max_lag_s: float = 1.0) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    return Pacer(fps, max_lag_s, clock=clock, sleep=clock.sleep), clock


def test_releases_at_the_rate_without_drift() -> None:
    pacer, clock = make()
    # The caller's own work (7 ms a frame) is absorbed: deadlines are absolute.
    times = release_times(pacer, clock, 26, work_s=0.007)
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert steps == pytest.approx([0.02] * 25, abs=1e-9)


def test_short_pause_is_caught_up_but_restart_is_not() -> None:
    pacer, clock = make()
    release_times(pacer, clock, 3)
    clock.now += 0.2  # ten frames late, less than max_lag_s: the schedule catches up
    burst = release_times(pacer, clock, 5)
    assert burst[-1] == burst[0]  # released back to back
    clock.now += 0.2
    pacer.restart()  # e.g. a looping file was reopened: start a new schedule
    steady = release_times(pacer, clock, 5)
    assert steady[-1] - steady[0] == pytest.approx(0.08, abs=1e-9)  # four intervals, no burst


def test_lag_beyond_the_limit_re_anchors_instead_of_bursting() -> None:
    pacer, clock = make(max_lag_s=1.0)
    release_times(pacer, clock, 3)
    clock.now += 5.0  # CPU starvation: far behind
    times = release_times(pacer, clock, 4)
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(clock.now - 3 * 0.02)  # released at once, then...
    assert steps == pytest.approx([0.02] * 3, abs=1e-9)  # ...at the rate again, no burst


def test_a_cancelled_wait_returns_false() -> None:
    pacer, _ = make()
    cancel = threading.Event()
    assert pacer.wait(cancel)
    cancel.set()
    assert not pacer.wait(cancel)  # the next deadline is in the future: sleep is cut short


def test_the_real_clock_still_paces() -> None:
    # One real-time check that the defaults are wired (loose: a busy machine is slower).
    import time

    pacer, cancel = Pacer(100.0), threading.Event()
    t0 = time.monotonic()
    for _ in range(6):
        pacer.wait(cancel)
    assert time.monotonic() - t0 >= 0.05 - 1e-3  # five intervals of 10 ms at least
