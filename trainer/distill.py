"""Knowledge distillation from exported ONNX models (``distill.teachers``).

Teachers are ONNX files with the daemon's metadata contract, e.g. earlier runs exported
by ``trainer.export`` (an in-graph mirrored pass, ``--tta-hflip``, makes a better
teacher). Each training batch is shown to the teachers *after* augmentation, the same
pixels the student sees ("consistent teaching"): soft targets computed once on the
clean images would disagree with a crop or rotation that cut the mouth off.

Teachers run in onnxruntime, not torch: an int8 teacher of the bundled model's size costs
about 0.3 ms per image per pass on one thread, where a torch fp32 forward pass costs
about a third of a training step. Measured (1 thread, 2,048 images, a busy machine): an
epoch took 15 s without and 17-19 s with an int8 edgefer2 teacher that mirrors each face
in its graph (two passes).

Loss: ``(1 - weight) * CE(labels) + weight * T^2 * KL(teacher_T || student_T)`` with
both softened at temperature ``T``; the ``T^2`` keeps the gradient scale of the two
terms comparable as ``T`` changes (Hinton et al., 2015). Several teachers are averaged
in probability space. ``distill.hflip`` mirrors each batch for the teachers that do not
already mirror inside their graph (mean logits of the two passes, as ``--tta-hflip``
does), so a shipped file can teach with its mirrored pass without a re-export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from edge_daemon.labels import FER_LABELS
from trainer.config import DistillConfig, TrainConfigError

if TYPE_CHECKING:
    from edge_daemon.classify.model import EmotionModel


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def distill_loss(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, t: float
) -> torch.Tensor:
    """``T^2 * KL(teacher || softmax(student / T))``, averaged over the batch."""
    log_p = F.log_softmax(student_logits / t, 1)
    return F.kl_div(log_p, teacher_probs, reduction="batchmean") * (t * t)


class Teachers:
    """The configured teachers, loaded and checked against the student's input.

    ``soft_targets(x)`` takes the student's batch *before* normalisation (float
    [N, 1, S, S] in 0..1) and returns the teachers' mean probabilities at the
    distillation temperature, columns in FER order.
    """

    def __init__(self, cfg: DistillConfig, input_size: int, threads: int) -> None:
        from edge_daemon.classify.model import EmotionModel, ModelLoadError
        from trainer.evaluate import EvaluateError, label_columns

        if not 0.0 < cfg.weight <= 1.0:
            raise TrainConfigError(f"distill.weight must be in (0, 1], got {cfg.weight}")
        if cfg.temperature <= 0:
            raise TrainConfigError(f"distill.temperature must be > 0, got {cfg.temperature}")
        self.temperature = cfg.temperature
        self._models: list[tuple[EmotionModel, np.ndarray, bool]] = []
        self.info: list[dict[str, str]] = []
        # A student learns what its teachers learnt: the in-the-wild people a teacher
        # was trained on count as seen by the student too, or evaluate_e2e would score
        # it on them as if they were new.
        self.inthewild_people: set[str] = set()
        for p in cfg.teachers:
            path = Path(p)
            where = f"distill.teachers: {path}"
            try:
                m = EmotionModel(path, providers="cpu", threads=threads)
            except ModelLoadError as exc:
                raise TrainConfigError(f"distill.teachers: {exc}") from exc
            c = m.contract
            if c.color != "gray" or c.input_size != input_size:
                raise TrainConfigError(
                    f"{where} reads {c.input_size}x{c.input_size} {c.color} crops; a teacher "
                    f"must read the student's {input_size}x{input_size} gray crops"
                )
            try:
                cols = label_columns(c.labels, FER_LABELS)
            except EvaluateError as exc:
                raise TrainConfigError(f"{where}: {exc}") from exc
            # A file that already mirrors inside its graph is invariant to the mirror.
            mirror = cfg.hflip and c.extra.get("tta") != "hflip"
            self._models.append((m, cols, mirror))
            self.inthewild_people |= {
                p for p in c.extra.get("trained_on_inthewild", "").split(",") if p
            }
            self.info.append(
                {
                    "path": str(path),
                    "sha256": file_sha256(path),
                    "arch": c.extra.get("arch", "?"),
                    "tta": c.extra.get("tta", "none"),
                    "hflip": str(mirror).lower(),
                }
            )

    def __len__(self) -> int:
        return len(self._models)

    @staticmethod
    def _logits(m: EmotionModel, inp: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = m.session.run(None, {m.input_name: inp})[0][:, cols]
        # A "probs" model gives probabilities: their log is logits up to a constant.
        z: np.ndarray = np.log(np.clip(out, 1e-8, None)) if m.contract.output == "probs" else out
        return z

    def soft_targets(self, x01: torch.Tensor) -> torch.Tensor:
        x = x01.detach().float().contiguous().numpy()
        total = None
        for m, cols, mirror in self._models:
            c = m.contract
            inp = ((x - c.mean) / c.std).astype(np.float32, copy=False)
            z = self._logits(m, inp, cols)
            if mirror:
                z = (z + self._logits(m, np.ascontiguousarray(inp[..., ::-1]), cols)) * 0.5
            p = torch.softmax(torch.from_numpy(np.ascontiguousarray(z)) / self.temperature, 1)
            total = p if total is None else total + p
        assert total is not None
        return total / len(self._models)


def check_teachers_unchanged(
    saved: Sequence[dict[str, str]], now: Sequence[dict[str, str]]
) -> None:
    """A resumed run must be taught by the same teacher files it started with."""
    a = [t["sha256"] for t in saved]
    b = [t["sha256"] for t in now]
    if a != b:
        raise TrainConfigError(
            "--resume: the distillation teacher files changed since the run started "
            f"(sha256 {a} -> {b}); restore them or start a new run_name"
        )
    # Checkpoints from before distill.hflip existed taught without the mirrored pass.
    fa = [t.get("hflip", "false") for t in saved]
    fb = [t.get("hflip", "false") for t in now]
    if fa != fb:
        raise TrainConfigError(
            f"--resume: distill.hflip changed since the run started (teachers mirrored: "
            f"{fa} -> {fb}); set it back or start a new run_name"
        )
