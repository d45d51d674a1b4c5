"""Start a training from a trained checkpoint's weights (``model.init``): fine-tuning.

An exported ``.onnx`` is accepted too (trainer/onnx_init.py: the shipped models have no
checkpoint beside them).

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
from trainer.onnx_init import (
    MAX_DISAGREEMENT,
    STAT_IMAGES,
    OnnxInitError,
    OnnxWeights,
    check_contract,
    import_report,
    load_folded,
    read_onnx_weights,
    unfold_norms,
)


@dataclass(frozen=True)
class InitWeights:
    state: dict[str, torch.Tensor] | None  # the checkpoint's model state_dict
    record: dict[str, Any]  # what the run stores about the file (path, sha256, ...)
    exported: OnnxWeights | None = None  # set instead of ``state`` for an .onnx file


def read_init(cfg: TrainConfig) -> InitWeights | None:
    """The weights named by ``cfg.model.init``, checked against ``cfg``; None when unset."""
    if not cfg.model.init:
        return None
    path = Path(cfg.model.init)
    if path.suffix == ".onnx":
        return _read_exported(cfg, path)
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
        # Photos the init has seen stay seen by every model fine-tuned from it.
        "inthewild_people": list(ck.get("inthewild_people", [])),
    }
    return InitWeights(weights, record)


def _read_exported(cfg: TrainConfig, path: Path) -> InitWeights:
    if not path.is_file():
        raise TrainConfigError(f"model.init: {path} does not exist")
    try:
        weights = read_onnx_weights(path)
        check_contract(
            weights.meta,
            path,
            cfg.model.arch,
            list(FER_LABELS),
            cfg.preprocess.mean,
            cfg.preprocess.std,
        )
    except OnnxInitError as exc:
        raise TrainConfigError(str(exc)) from exc
    record = {
        "path": str(path),
        "sha256": file_sha256(path),
        "arch": cfg.model.arch,
        "epoch": weights.meta.get("train_epoch"),
        "val_accuracy": weights.meta.get("val_accuracy_fp32"),
        "exported": True,
        "inthewild_people": [
            p for p in weights.meta.get("trained_on_inthewild", "").split(",") if p
        ],
    }
    return InitWeights(None, record, weights)


def apply_init(
    model: torch.nn.Module, init: InitWeights, images: torch.Tensor | None = None
) -> None:
    """Load the checkpoint's weights into ``model``; every tensor must match.

    For an exported file (``.onnx``), ``images`` (normalised training inputs) measure the
    batch-norm statistics, and the imported network is checked against the file: the run
    is refused when they disagree on more than ``MAX_DISAGREEMENT`` of those images. The
    measured agreement goes into ``init.record["import"]``.
    """
    if init.exported is not None:
        path = Path(init.record["path"])
        if images is None:
            raise ValueError("apply_init needs training images for an exported model.init")
        x = images[:STAT_IMAGES]
        try:
            norms = load_folded(model, init.exported, path)
        except OnnxInitError as exc:
            raise TrainConfigError(str(exc)) from exc
        report = import_report(model, init.exported.float_model, x)
        if report["top1_disagreement"] > MAX_DISAGREEMENT:
            raise TrainConfigError(
                f"model.init: the network imported from {path} names a different class "
                f"than the file on {report['top1_disagreement']:.1%} of {len(x)} training "
                f"images (largest logit difference {report['max_logit_diff']:.3g}): it "
                "cannot be reproduced in PyTorch"
            )
        unfold_norms(model, norms, x)
        init.record["import"] = report
        return
    assert init.state is not None
    try:
        model.load_state_dict(init.state, strict=True)
    except RuntimeError as exc:
        raise TrainConfigError(
            f"model.init: {init.record['path']} does not fit this model: {exc}"
        ) from exc
