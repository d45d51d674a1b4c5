"""data.extra: extra training crops (trainer.wild_crops files) join a real, tiny training
run, and the people they show follow the model into its checkpoint, its export and every
model fine-tuned from it. Generated images, a tiny edgefer2; no shared data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge_daemon.classify.model import EmotionModel  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from trainer.config import TrainConfigError, load_train_config  # noqa: E402
from trainer.export import export_checkpoint  # noqa: E402
from trainer.train import load_data, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = (
    "model.kwargs={stem: 8, stages: [[f, 8, 1, 2], [f, 16, 2, 2], [m, 16, 2, 2], "
    "[m, 24, 1, 2]], head_dim: 16}"
)


def _folder(root: Path, per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for cls in FER_LABELS:
        (root / cls).mkdir(parents=True)
        for k in range(per_class):
            img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            cv2.imwrite(str(root / cls / f"{k}.png"), img)


def _crops(path: Path, n: int, people: str | None) -> Path:
    rng = np.random.default_rng(7)
    arrays = {
        "images": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        "labels": rng.integers(0, len(FER_LABELS), n),
    }
    if people is not None:
        arrays["meta"] = np.array(json.dumps({"people": people}))
    np.savez(path, **arrays)
    return path


def _cfg(tmp_path: Path, name: str, *more: str):
    return load_train_config(
        REPO / "trainer" / "configs" / "wild.yaml",
        [
            f"out_dir={tmp_path / 'runs'}",
            f"run_name={name}",
            "data.format=folder",
            f"data.path={tmp_path / 'faces'}",
            "data.dedupe=false",
            "optim.epochs=1",
            "optim.batch_size=16",
            "threads=1",
            "device=cpu",
            TINY,
            *more,
        ],
    )


def test_extra_crops_train_and_the_people_seen_follow_the_model(
    tmp_path: Path, one_torch_thread: None, capsys
) -> None:
    _folder(tmp_path / "faces" / "train", 4, seed=1)
    _folder(tmp_path / "faces" / "val", 2, seed=2)
    crops = _crops(tmp_path / "wild.npz", 5, "train")
    other = _crops(tmp_path / "other.npz", 3, None)  # crops from elsewhere: no people
    cfg = _cfg(tmp_path, "a", f"data.extra=[{crops}, {other}]", "data.extra_repeat=2")
    train_ds, val_ds = load_data(cfg)
    assert f"extra: 5 crops from {crops}" in capsys.readouterr().out
    assert len(train_ds) == 7 * 4 + 2 * 5 + 2 * 3  # base + each extra file twice
    assert len(val_ds) == 7 * 2  # never into val
    with np.load(crops) as z:
        # each crop twice in a row, after the base set
        assert np.array_equal(train_ds.images[28:38:2], z["images"])
        assert np.array_equal(train_ds.labels[29:38:2], z["labels"])

    run = train(cfg, quiet=True)
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
    assert ck["inthewild_people"] == ["train"]
    onnx_path = run / "m.onnx"
    export_checkpoint(run / "best.pt", onnx_path, val_ds)
    assert EmotionModel(onnx_path, "cpu", 1).contract.extra["trained_on_inthewild"] == "train"

    # Fine-tuned from the export without any extra crops: it has still seen them.
    run_b = train(_cfg(tmp_path, "b", f"model.init={onnx_path}"), quiet=True)
    ck_b = torch.load(run_b / "last.pt", map_location="cpu", weights_only=False)
    assert ck_b["inthewild_people"] == ["train"]

    # Distilled from the export, with neither the crops nor that init: it has learnt
    # from a teacher that saw them, so it has seen them too.
    run_d = train(_cfg(tmp_path, "d", f"distill.teachers=[{onnx_path}]"), quiet=True)
    assert torch.load(run_d / "last.pt", weights_only=False)["inthewild_people"] == ["train"]

    # A run without extras and without such an init or teacher has seen none.
    run_c = train(_cfg(tmp_path, "c"), quiet=True)
    assert torch.load(run_c / "last.pt", weights_only=False)["inthewild_people"] == []
    export_checkpoint(run_c / "last.pt", run_c / "m.onnx", None)
    assert "trained_on_inthewild" not in EmotionModel(run_c / "m.onnx", "cpu", 1).contract.extra


def test_bad_extra_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    _folder(tmp_path / "faces" / "train", 1, seed=1)
    _folder(tmp_path / "faces" / "val", 1, seed=2)
    with pytest.raises(TrainConfigError, match="extra_repeat: 0 must be at least 1"):
        _cfg(tmp_path, "x", "data.extra_repeat=0")
    from trainer.data import DataError

    with pytest.raises(DataError, match="no such file"):
        load_data(_cfg(tmp_path, "x", f"data.extra=[{tmp_path / 'gone.npz'}]"), log=False)
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 48, 48), np.float32), labels=np.zeros(2))
    with pytest.raises(DataError, match="images must be uint8"):
        load_data(_cfg(tmp_path, "x", f"data.extra=[{tmp_path / 'f.npz'}]"), log=False)
    np.savez(tmp_path / "g.npz", images=np.zeros((2, 48, 48), np.uint8), labels=np.full(2, 9))
    with pytest.raises(DataError, match="labels outside"):
        load_data(_cfg(tmp_path, "x", f"data.extra=[{tmp_path / 'g.npz'}]"), log=False)
