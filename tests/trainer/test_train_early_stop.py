"""Early stopping: a run whose val accuracy stops improving ends, and stays ended on resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.train import epochs_without_gain, main  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


def _rows(*accs: float) -> list[dict]:
    return [{"val_acc": a} for a in accs]


def test_epochs_without_gain_counts_from_the_first_best_epoch() -> None:
    assert epochs_without_gain([]) == 0
    assert epochs_without_gain(_rows(0.5)) == 0
    assert epochs_without_gain(_rows(0.5, 0.6)) == 0
    assert epochs_without_gain(_rows(0.5, 0.6, 0.55, 0.58)) == 2
    # A tie is no gain (best.pt is only replaced on a strict improvement).
    assert epochs_without_gain(_rows(0.6, 0.6, 0.6)) == 2


def _folder(root: Path) -> Path:
    """Random train images; val is one identical image per class, so every model scores
    exactly 1/7 on it and val accuracy can never improve after the first epoch."""
    rng = np.random.default_rng(0)
    same = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    for label in FER_LABELS:
        for split, n in (("train", 6), ("val", 1)):
            d = root / split / label
            d.mkdir(parents=True)
            for k in range(n):
                img = same if split == "val" else rng.integers(0, 256, (48, 48), dtype=np.uint8)
                cv2.imwrite(str(d / f"{k}.png"), img)
    return root


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_stops_after_patience_epochs_without_gain(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "faces")
    argv = [
        "--config",
        str(CONFIGS / "edgefer.yaml"),
        f"out_dir={tmp_path}",
        "run_name=stop",
        "data.format=folder",
        f"data.path={data}",
        "data.dedupe=false",
        "optim.batch_size=14",
        "optim.epochs=6",
        "optim.schedule=plateau",
        "optim.early_stop_patience=2",
        "optim.ema_decay=0",
        "threads=1",
    ]
    threads = torch.get_num_threads()
    run = tmp_path / "stop"
    try:
        assert main(argv) == 0
        out = capsys.readouterr().out
        # Epoch 1 sets the best; epochs 2 and 3 tie it; epoch 4 never starts.
        assert [r["val_acc"] for r in _metrics(run)] == pytest.approx([1 / 7] * 3)
        assert "early stop before epoch 4" in out and "optim.early_stop_patience=2" in out
        assert (run / "best.pt").exists()

        # Resuming a stopped run does not train again...
        assert main(["--resume", str(run)]) == 0
        assert len(_metrics(run)) == 3
        assert "early stop before epoch 4" in capsys.readouterr().out
        # ...unless the patience is raised, which a resume may change.
        assert main(["--resume", str(run), "optim.early_stop_patience=3"]) == 0
        assert len(_metrics(run)) == 4
    finally:
        torch.set_num_threads(threads)
