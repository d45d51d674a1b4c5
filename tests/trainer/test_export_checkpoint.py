"""Which weights ``trainer.export`` takes from a checkpoint: the ones validation scored,
with that epoch's number and val accuracy in the file's contract."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.export import contract_from_checkpoint, load_checkpoint  # noqa: E402
from trainer.models import build_model  # noqa: E402

PRE = {"mean": 0.5, "std": 0.5, "crop_margin": 0.15}


def _states() -> tuple[dict, dict]:
    torch.manual_seed(0)
    raw = build_model("edgefer", len(FER_LABELS)).state_dict()
    ema = {k: v + 1.0 if v.is_floating_point() else v.clone() for k, v in raw.items()}
    return raw, ema


def _save(path: Path, **extra: object) -> Path:
    torch.save({"arch": "edgefer", "labels": list(FER_LABELS), "preprocess": PRE, **extra}, path)
    return path


def _same(model: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_last_pt_exports_its_last_epoch_as_validated(tmp_path: Path) -> None:
    # last.pt: raw weights to resume from, EMA weights as the epoch was validated, the
    # 0-based epoch to resume after, and the val figures in history
    raw, ema = _states()
    history = [{"epoch": 1, "val_acc": 0.81}, {"epoch": 2, "val_acc": 0.8245}]
    path = _save(tmp_path / "last.pt", model=raw, ema=ema, optimizer={}, epoch=1, history=history)
    model, ck = load_checkpoint(path)
    assert _same(model, ema) and not _same(model, raw)
    extra = contract_from_checkpoint(ck, 1.0).extra
    assert extra["train_epoch"] == "2"
    assert extra["val_accuracy_fp32"] == "0.8245"


def test_last_pt_without_ema_exports_its_weights(tmp_path: Path) -> None:
    raw, _ = _states()
    path = _save(tmp_path / "last.pt", model=raw, ema=None, optimizer={}, epoch=0, history=[])
    model, ck = load_checkpoint(path)
    assert _same(model, raw)
    assert contract_from_checkpoint(ck, 1.0).extra["val_accuracy_fp32"] == "nan"


def test_best_pt_exports_as_saved(tmp_path: Path) -> None:
    raw, _ = _states()
    path = _save(tmp_path / "best.pt", model=raw, epoch=3, val={"accuracy": 0.8})
    model, ck = load_checkpoint(path)
    assert _same(model, raw)
    extra = contract_from_checkpoint(ck, 1.0).extra
    assert (extra["train_epoch"], extra["val_accuracy_fp32"]) == ("3", "0.8000")
