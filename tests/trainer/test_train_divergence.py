"""A diverging training stops at once with a clear error instead of training on NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.config import load_train_config  # noqa: E402
from trainer.train import main  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


def _folder(root: Path, per_class: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c, label in enumerate(FER_LABELS):
            d = root / split / label
            d.mkdir(parents=True)
            for k in range(n):
                img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                img[:, : 4 + 6 * c] //= 2  # a little class signal
                cv2.imwrite(str(d / f"{k}.png"), img)
    return root


def test_nan_loss_stops_the_run_with_the_fix(tmp_path: Path, capsys) -> None:
    data = _folder(tmp_path / "faces", {"train": 10, "val": 2})
    argv = [
        "--config",
        str(CONFIGS / "edgefer.yaml"),
        f"out_dir={tmp_path}",
        "run_name=boom",
        "data.format=folder",
        f"data.path={data}",
        "data.dedupe=false",
        "optim.batch_size=16",
        "optim.epochs=3",
        "optim.warmup_epochs=0",
        "optim.lr=1e30",
        "optim.ema_decay=0",
        "threads=1",
    ]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 2
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "training diverged: the loss is" in err and "epoch 1" in err
    assert "lower optim.lr" in err and "Traceback" not in err
    assert not (tmp_path / "boom" / "last.pt").exists()  # no NaN checkpoint written

    # The same data at a sane rate trains: the guard does not fire on a healthy run.
    ok = [a if not a.startswith("optim.lr=") else "optim.lr=0.01" for a in argv]
    ok = [a if a != "run_name=boom" else "run_name=fine" for a in ok]
    ok = [a if a != "optim.epochs=3" else "optim.epochs=1" for a in ok]
    try:
        assert main(ok) == 0
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "fine" / "last.pt").exists()
    assert load_train_config(tmp_path / "fine" / "config.yaml", []).optim.lr == 0.01
