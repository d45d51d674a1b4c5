"""Small face videos generated in tests (scikit-image's public-domain astronaut)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data


def write_face_video(path: Path, frames: int, fps: float = 10, shift_px: int = 1) -> Path:
    """``frames`` 512x512 MPEG-4 frames of the astronaut sliding right ``shift_px`` a frame."""
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (512, 512))
    for i in range(frames):
        writer.write(np.roll(face, i * shift_px, axis=1))
    writer.release()
    return path
