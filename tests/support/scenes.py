"""Scenes that keep a camera producing events, for tests of delivery and history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_daemon.sources.sample import _portrait_bgr

#: Tracker and policy settings under which every appearance of a face is a track and
#: its events at once (one detection confirms, 0.1 s establishes, any confidence).
PROMPT_EVENTS: dict[str, Any] = {
    "tracker": {"min_hits": 1, "max_missed_s": 0.5},
    "events": {"min_confidence": 0.0, "establish_s": 0.1},
}


def face_comes_and_goes(path: Path) -> Path:
    """A looping video: the sample face for 1 s, then 1.5 s of nothing (10 fps), so a
    track starts and ends every loop: a steady stream of events."""
    face = np.array(_portrait_bgr())
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for i in range(25):
        w.write(face if i < 10 else np.zeros_like(face))
    w.release()
    return path


def comes_and_goes_camera(tmp_path: Path, name: str = "door") -> dict[str, Any]:
    """A looping file camera on :func:`face_comes_and_goes` (written into ``tmp_path``)."""
    video = face_comes_and_goes(tmp_path / "comes_and_goes.mp4")
    return {"name": name, "source": {"type": "file", "path": str(video), "loop": True}}
