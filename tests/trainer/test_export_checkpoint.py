"""Which weights ``trainer.export`` takes from a checkpoint: the ones validation scored."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.export import load_checkpoint  # noqa: E402
from trainer.models import build_model  # noqa: E402


def _states() -> tuple[dict, dict]:
    torch.manual_seed(0)
    raw = build_model("edgefer", len(FER_LABELS)).state_dict()
    ema = {k: v + 1.0 if v.is_floating_point() else v.clone() for k, v in raw.items()}
    return raw, ema


def _save(path: Path, **extra: object) -> Path:
    torch.save({"arch": "edgefer", "labels": list(FER_LABELS), **extra}, path)
    return path


def _same(model: torch.nn.Module, state: dict) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_last_pt_exports_its_ema_weights(tmp_path: Path) -> None:
    # last.pt: raw weights to resume from, EMA weights as the epoch was validated
    raw, ema = _states()
    model, _ = load_checkpoint(_save(tmp_path / "last.pt", model=raw, ema=ema))
    assert _same(model, ema) and not _same(model, raw)


@pytest.mark.parametrize("extra", [{}, {"ema": None}], ids=["best.pt", "no EMA"])
def test_without_ema_exports_the_model_weights(tmp_path: Path, extra: dict) -> None:
    raw, _ = _states()
    model, _ = load_checkpoint(_save(tmp_path / "best.pt", model=raw, **extra))
    assert _same(model, raw)
