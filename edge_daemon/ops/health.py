"""The daemon's health, judged from what its threads report: a pure function of a
snapshot (no threads are touched here), so every rule is tested with made-up snapshots
and an injected clock (tests/ops/test_health.py). The app takes the snapshot; the
metrics endpoint and the systemd watchdog act on the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_daemon.types import StreamStatus

#: A pipeline whose loop has not turned for this long is stuck (its loop turns at least
#: every 0.25 s; one frame takes tens of ms). Long enough for a slow first inference.
PIPELINE_STALL_S = 15.0
#: Capture states in which a capture thread has finished on purpose.
FINISHED = (StreamStatus.ENDED, StreamStatus.FAILED, StreamStatus.STOPPED)


@dataclass(frozen=True)
class Health:
    """``healthy``: every pipeline thread alive and turning (what the watchdog pings on).
    ``ready``: started and every pipeline entered its loop. Camera outages are reported
    in ``cameras`` but do not make the daemon unhealthy: restarting it would not bring a
    dead camera back.
    """

    healthy: bool
    ready: bool
    problems: list[str]
    cameras: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "ready": self.ready,
            "problems": self.problems,
            "cameras": self.cameras,
        }


@dataclass(frozen=True)
class CameraThreads:
    """What one camera's threads report at one moment."""

    name: str
    status: StreamStatus  # the capture's stream status
    pipeline_alive: bool
    pipeline_ready: bool  # the pipeline opened its stages and entered its loop
    heartbeat: float  # monotonic time of the pipeline loop's last turn; 0 = never
    capture_alive: bool


def assess(
    now: float,
    cameras: Sequence[CameraThreads],
    publisher_alive: bool | None,
    started: bool,
    stall_s: float | None = None,
) -> Health:
    """The verdict on a snapshot taken at monotonic time ``now`` (``publisher_alive``
    None: there is no publisher yet; ``stall_s`` None: ``PIPELINE_STALL_S``)."""
    stall_s = PIPELINE_STALL_S if stall_s is None else stall_s
    problems: list[str] = []
    cams: dict[str, dict[str, Any]] = {}
    for c in cameras:
        if not c.pipeline_alive:
            problems.append(f"camera {c.name}: pipeline thread is not running")
        elif c.pipeline_ready and now - c.heartbeat > stall_s:
            problems.append(f"camera {c.name}: pipeline stuck for {now - c.heartbeat:.0f} s")
        if not c.capture_alive and c.status not in FINISHED:
            problems.append(f"camera {c.name}: capture thread is not running")
        cams[c.name] = {
            "status": c.status.value,
            "ready": c.pipeline_ready,
            "heartbeat_age_s": round(now - c.heartbeat, 2) if c.heartbeat else None,
        }
    if publisher_alive is False:
        problems.append("mqtt publisher thread is not running")
    ready = started and all(c.pipeline_ready for c in cameras)
    return Health(not problems, ready, problems, cams)
