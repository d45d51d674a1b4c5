"""Health rules on made-up snapshots with an injected clock (no threads)."""

from __future__ import annotations

from dataclasses import replace

from edge_daemon.ops.health import PIPELINE_STALL_S, CameraThreads, assess
from edge_daemon.types import StreamStatus

NOW = 1000.0
OK = CameraThreads("door", StreamStatus.ONLINE, True, True, NOW - 0.2, True)


def test_turning_pipelines_and_a_live_publisher_are_healthy_and_ready() -> None:
    h = assess(NOW, [OK, replace(OK, name="yard")], True, started=True)
    assert h.healthy and h.ready and h.problems == []
    assert h.cameras["door"] == {"status": "online", "ready": True, "heartbeat_age_s": 0.2}


def test_a_dead_or_stuck_pipeline_is_unhealthy() -> None:
    dead = assess(NOW, [replace(OK, pipeline_alive=False)], True, started=True)
    assert not dead.healthy and "pipeline thread is not running" in dead.problems[0]
    stuck = replace(OK, heartbeat=NOW - PIPELINE_STALL_S - 1)
    h = assess(NOW, [stuck], True, started=True)
    assert not h.healthy and h.problems == ["camera door: pipeline stuck for 16 s"]
    # Just under the limit, or not yet in its loop (a slow first inference): fine.
    assert assess(NOW, [replace(stuck, heartbeat=NOW - PIPELINE_STALL_S + 1)], True, True).healthy
    assert assess(NOW, [replace(stuck, pipeline_ready=False)], True, True).healthy


def test_a_capture_thread_may_end_only_with_its_stream() -> None:
    gone = replace(OK, capture_alive=False)
    assert not assess(NOW, [gone], True, True).healthy  # died while online
    for status in (StreamStatus.ENDED, StreamStatus.FAILED, StreamStatus.STOPPED):
        assert assess(NOW, [replace(gone, status=status)], True, True).healthy


def test_camera_outages_do_not_make_the_daemon_unhealthy() -> None:
    # Restarting the daemon would not bring a camera back.
    h = assess(NOW, [replace(OK, status=StreamStatus.RECONNECTING)], True, True)
    assert h.healthy and h.cameras["door"]["status"] == "reconnecting"


def test_publisher_and_readiness() -> None:
    assert not assess(NOW, [OK], False, True).healthy  # publisher thread died
    assert assess(NOW, [OK], None, True).healthy  # no publisher yet
    assert not assess(NOW, [OK], True, started=False).ready
    waiting = replace(OK, pipeline_ready=False, heartbeat=0.0)
    h = assess(NOW, [OK, waiting], True, True)
    assert h.healthy and not h.ready
