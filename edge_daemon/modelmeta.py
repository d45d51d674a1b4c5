"""The contract an emotion model carries with it, as ONNX ``metadata_props``.

The trainer writes it at export; the daemon reads it at load and derives *all*
pre-processing from it, so preprocessing travels with the model and is never copied
between scripts. Required keys: ``labels`` (JSON list, output order), ``input_size``
("48"), ``color`` ("gray"), ``mean`` and ``std`` (input = (pixel/255 - mean) / std),
``output`` ("logits" or "probs"). Optional: ``crop_margin`` (fraction of the face box
added on each side before cropping), ``temperature`` (fitted softmax temperature),
``arch``, ``train_commit``, ``val_accuracy``, ``tta`` ("hflip": the graph averages each
face with its mirror image, so the daemon's own mirrored pass is skipped).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

REQUIRED_KEYS = ("labels", "input_size", "color", "mean", "std", "output")


class ModelContractError(ValueError):
    """Model metadata missing or inconsistent; the message says which key and why."""


@dataclass(frozen=True)
class ModelContract:
    labels: tuple[str, ...]
    input_size: int = 48
    color: str = "gray"
    mean: float = 0.5
    std: float = 0.5
    output: str = "logits"
    crop_margin: float = 0.15
    temperature: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ModelContractError(f"labels must be >= 2 unique names, got {self.labels}")
        if not 8 <= self.input_size <= 512:
            raise ModelContractError(f"input_size must be 8..512, got {self.input_size}")
        if self.color not in ("gray", "rgb", "bgr"):
            raise ModelContractError(f"color must be gray, rgb or bgr, got {self.color!r}")
        for key in ("mean", "std", "temperature", "crop_margin"):
            # NaN passes every comparison below and then turns every probability into NaN.
            if not math.isfinite(getattr(self, key)):
                raise ModelContractError(f"{key} must be a finite number, got {getattr(self, key)}")
        if self.std <= 0:
            raise ModelContractError(f"std must be > 0, got {self.std}")
        if self.output not in ("logits", "probs"):
            raise ModelContractError(f"output must be logits or probs, got {self.output!r}")
        if not 0 <= self.crop_margin <= 1:
            raise ModelContractError(f"crop_margin must be 0..1, got {self.crop_margin}")
        if self.temperature <= 0:
            raise ModelContractError(f"temperature must be > 0, got {self.temperature}")

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_metadata(self) -> dict[str, str]:
        d = asdict(self)
        extra = d.pop("extra")
        meta = {
            k: json.dumps(list(v)) if k == "labels" else str(v)
            for k, v in d.items()
            if k != "extra"
        }
        meta.update(extra)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> ModelContract:
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ModelContractError(
                f"model metadata lacks {missing}: export the model with `python -m "
                "trainer.export`, which writes the preprocessing contract into the file"
            )
        try:
            labels = json.loads(meta["labels"])
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise ValueError("labels must be a JSON list of strings")
            known = {f for f in cls.__dataclass_fields__ if f != "extra"}
            return cls(
                labels=tuple(labels),
                input_size=int(meta["input_size"]),
                color=meta["color"],
                mean=float(meta["mean"]),
                std=float(meta["std"]),
                output=meta["output"],
                crop_margin=float(meta.get("crop_margin", 0.15)),
                temperature=float(meta.get("temperature", 1.0)),
                extra={k: v for k, v in meta.items() if k not in known},
            )
        except (ValueError, TypeError) as exc:
            raise ModelContractError(f"model metadata is malformed: {exc}") from exc

    def normalize(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops [N, H, W] (gray) or [N, H, W, 3] -> float32 NCHW model input."""
        x = crops.astype(np.float32) * np.float32(1.0 / 255.0)
        x = (x - np.float32(self.mean)) / np.float32(self.std)
        return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def to_probs(self, out: np.ndarray) -> np.ndarray:
        """Model output [N, C] -> calibrated probabilities [N, C] (float32)."""
        out = out.astype(np.float32)
        if self.output == "probs":
            return out
        z = out / np.float32(self.temperature)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return probs
