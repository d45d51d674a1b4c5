"""Reading trainer checkpoints (``best.pt``, ``last.pt``) safely.

``torch.load(weights_only=True)``: a checkpoint from elsewhere cannot run code while it is
read. Anything that is not a trainer checkpoint (a truncated download, another tool's
``.pt``, a text file) is one :class:`CheckpointError` naming the file, whatever torch or
pickle raised underneath, so every CLI can report it in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

REQUIRED = ("arch", "labels", "model")


class CheckpointError(ValueError):
    """Not a readable trainer checkpoint; the message names the file."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (a trainer best.pt or last.pt)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and pickle raise many unrelated types for a foreign file
        raise CheckpointError(
            f"{path} is not a trainer checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [k for k in REQUIRED if k not in ck] if isinstance(ck, dict) else list(REQUIRED)
    if missing:
        raise CheckpointError(f"{path} is not a trainer checkpoint (no {', '.join(missing)})")
    return ck
