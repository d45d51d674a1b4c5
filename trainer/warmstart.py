"""Start a training from a trained checkpoint's weights (``model.init``): fine-tuning.

The typical use is adapting the shipped model to one's own faces (an infrared
driver-monitoring camera, a different population) from a folder of labelled crops::

    python -m trainer.train --config trainer/configs/edgefer2.yaml run_name=my_ft \\
        model.init=runs/edgefer2/best.pt data.format=folder data.path=/data/faces \\
        optim.epochs=15 optim.lr=0.004 optim.warmup_epochs=0

Only the weights are taken: optimizer, schedule and epoch count start afresh (``--resume``
is the way to continue a run). The checkpoint must be the same architecture with the
same ``model.kwargs`` (dropout may differ: it has no weights), the same label order and
the same input normalisation; anything else is refused before any data is read, naming
the setting to change. The file's sha256 goes into the run's checkpoints and the exported
model's metadata (``init_from``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edge_daemon.labels import FER_LABELS
from trainer.checkpoint import CheckpointError, read_checkpoint
from trainer.config import TrainConfig, TrainConfigError
from trainer.distill import file_sha256


@dataclass(frozen=True)
class InitWeights:
    state: dict[str, torch.Tensor]  # the checkpoint's model state_dict
    record: dict[str, Any]  # what the run stores about the file (path, sha256, ...)


def read_init(cfg: TrainConfig) -> InitWeights | None:
    """The weights named by ``cfg.model.init``, checked against ``cfg``; None when unset."""
    if not cfg.model.init:
        return None
    path = Path(cfg.model.init)
    try:
        ck = read_checkpoint(path)
    except CheckpointError as exc:
        raise TrainConfigError(f"model.init: {exc}") from exc
    arch, weights = ck["arch"], ck["model"]
    kwargs = {k: v for k, v in ck.get("model_kwargs", {}).items() if k != "dropout"}
    if arch != cfg.model.arch or kwargs != dict(cfg.model.kwargs):
        raise TrainConfigError(
            f"model.init: {path} holds a {arch!r} with kwargs {kwargs}, this run builds "
            f"{cfg.model.arch!r} with {dict(cfg.model.kwargs)}: set model.arch and "
            "model.kwargs to the checkpoint's (e.g. use the config it was trained with)"
        )
    if list(ck.get("labels", [])) != list(FER_LABELS):
        raise TrainConfigError(
            f"model.init: {path} outputs {ck.get('labels')}, the trainer {list(FER_LABELS)}"
        )
    pre = ck.get("preprocess", {})
    ours = {"mean": cfg.preprocess.mean, "std": cfg.preprocess.std}
    theirs = {k: pre.get(k) for k in ours}
    if theirs != ours:
        raise TrainConfigError(
            f"model.init: {path} was trained on inputs normalised with {theirs}, this run "
            f"uses {ours}: set preprocess.mean and preprocess.std to the checkpoint's"
        )
    record = {
        "path": str(path),
        "sha256": file_sha256(path),
        "arch": arch,
        "epoch": ck.get("epoch"),
        "val_accuracy": ck.get("val", {}).get("accuracy"),
    }
    return InitWeights(weights, record)


def apply_init(model: torch.nn.Module, init: InitWeights) -> None:
    """Load the checkpoint's weights into ``model``; every tensor must match."""
    try:
        model.load_state_dict(init.state, strict=True)
    except RuntimeError as exc:
        raise TrainConfigError(
            f"model.init: {init.record['path']} does not fit this model: {exc}"
        ) from exc
