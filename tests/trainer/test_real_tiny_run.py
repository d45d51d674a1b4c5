"""A tiny REAL training run on a few hundred FER-2013 images: train -> resume -> export
(parity) -> int8 quantization -> load through the daemon's EmotionModel -> evaluate.

Needs ../shared/data (the ``data_dir`` fixture skips with a reason when it is absent).
Accuracy is not asserted: one epoch on 384 images says nothing about the recipe.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge_bench import latency  # noqa: E402
from edge_daemon.classify.model import EmotionModel  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from edge_daemon.modelmeta import REQUIRED_KEYS  # noqa: E402
from trainer import evaluate  # noqa: E402
from trainer.config import TrainConfigError, load_train_config  # noqa: E402
from trainer.export import PARITY_TOL, export_checkpoint  # noqa: E402
from trainer.quantize import MIN_CALIBRATION, quantize  # noqa: E402
from trainer.train import load_data, train  # noqa: E402

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"


@pytest.fixture(scope="module")
def tiny(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_run")
    npz = data_dir / "fer2013" / "fer2013_trainval.npz"
    overrides = [
        f"out_dir={out}",
        "run_name=tiny",
        f"data.path={npz}",
        "data.limit_train=384",
        "data.limit_val=256",
        "optim.batch_size=64",
        "threads=1",
    ]
    r: dict = {"npz": npz}
    try:
        cfg1 = load_train_config(CONFIGS / "edgefer.yaml", [*overrides, "optim.epochs=1"])
        run_dir = train(cfg1, quiet=True)
        r["run_dir"] = run_dir
        r["after_1"] = {p.name for p in run_dir.iterdir()}
        r["metrics_1"] = (run_dir / "metrics.jsonl").read_text().splitlines()
        r["last_1"] = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
        with pytest.raises(TrainConfigError, match="already holds a run"):
            train(cfg1, quiet=True)  # refuses to overwrite without resume

        # As if killed after writing epoch 2's metrics line but before its checkpoint.
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"epoch": 2, "killed": True}) + "\n")
        cfg2 = load_train_config(CONFIGS / "edgefer.yaml", [*overrides, "optim.epochs=2"])
        r["cfg2"] = cfg2
        assert train(cfg2, resume=True, quiet=True) == run_dir
        r["metrics_2"] = (run_dir / "metrics.jsonl").read_text().splitlines()
        r["last_2"] = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)

        _, val_ds = load_data(cfg2, log=False)
        r["val"] = val_ds
        fp32 = run_dir / "emotion_fp32.onnx"
        r["export"] = export_checkpoint(run_dir / "best.pt", fp32, val_ds)
        # Calibration: >= 500 images from the TRAIN split (never val).
        calib_cfg = dataclasses.replace(
            cfg2, data=dataclasses.replace(cfg2.data, limit_train=576, limit_val=1)
        )
        calib_ds, _ = load_data(calib_cfg, log=False)
        r["calib_n"] = len(calib_ds)
        int8 = run_dir / "emotion_int8.onnx"
        quantize(fp32, int8, calib_ds.images)
        r["fp32"], r["int8"] = fp32, int8
    finally:
        torch.set_num_threads(threads)
    return r


def test_train_writes_run_files(tiny: dict) -> None:
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png"):
        assert name in tiny["after_1"], name
    assert "confusion.png" in tiny["after_1"]
    assert len(tiny["metrics_1"]) == 1
    rec = json.loads(tiny["metrics_1"][0])
    assert rec["epoch"] == 1
    for key in ("train_loss", "val_loss", "val_acc", "val_macro_f1", "lr", "wall_s"):
        assert np.isfinite(rec[key]), key
    assert 0.0 <= rec["val_acc"] <= 1.0
    ck = tiny["last_1"]
    assert ck["epoch"] == 0 and ck["arch"] == "edgefer" and ck["labels"] == list(FER_LABELS)
    assert ck["step"] == 384 // 64
    for png in ("curves.png", "confusion.png"):
        assert (tiny["run_dir"] / png).read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_at_epoch_2(tiny: dict) -> None:
    lines = [json.loads(x) for x in tiny["metrics_2"]]
    assert [x["epoch"] for x in lines] == [1, 2]  # the killed epoch's line is gone
    assert not any("killed" in x for x in lines)
    assert tiny["metrics_2"][0] == tiny["metrics_1"][0]  # first line untouched
    ck = tiny["last_2"]
    assert ck["epoch"] == 1 and ck["step"] == 2 * (384 // 64)
    assert [h["epoch"] for h in ck["history"]] == [1, 2]
    assert lines[1]["wall_s"] > lines[0]["wall_s"]


def test_resolved_config_saved(tiny: dict) -> None:
    saved = load_train_config(tiny["run_dir"] / "config.yaml", [])
    assert saved == tiny["cfg2"]
    assert saved.optim.epochs == 2 and saved.data.limit_train == 384


def test_export_parity(tiny: dict) -> None:
    rep = tiny["export"]
    assert rep["parity_images"] == len(tiny["val"]) == 256
    assert rep["parity_max_abs_diff"] < PARITY_TOL
    assert 0.3 <= rep["temperature"] <= 5.0


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_models_load_with_contract(tiny: dict, which: str) -> None:
    model = EmotionModel(tiny[which], providers="cpu", threads=1)
    meta = model.session.get_modelmeta().custom_metadata_map
    assert set(REQUIRED_KEYS) == {"labels", "input_size", "color", "mean", "std", "output"}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    assert not missing
    assert json.loads(meta["labels"]) == list(FER_LABELS)
    assert model.labels == FER_LABELS
    c = model.contract
    cfg = tiny["cfg2"]
    assert (c.input_size, c.color, c.output) == (48, "gray", "logits")
    assert (c.mean, c.std, c.crop_margin) == (
        cfg.preprocess.mean,
        cfg.preprocess.std,
        cfg.preprocess.crop_margin,
    )
    assert c.temperature == pytest.approx(tiny["export"]["temperature"])
    assert c.extra["arch"] == "edgefer" and int(c.extra["params"]) > 0
    if which == "int8":
        assert "int8" in meta["quantization"]
    probs = model.predict(tiny["val"].images[:64])
    assert probs.shape == (64, 7) and probs.dtype == np.float32
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_int8_is_quantized(tiny: dict) -> None:
    import onnx

    assert tiny["calib_n"] >= MIN_CALIBRATION
    ops = {n.op_type for n in onnx.load(str(tiny["int8"])).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert tiny["int8"].stat().st_size < tiny["fp32"].stat().st_size


def test_evaluate_cli_on_tiny_model(tiny: dict, tmp_path: Path, capsys) -> None:
    argv = [str(tiny["int8"]), "--data", str(tiny["npz"]), "--limit", "200", "--out"]
    assert evaluate.main([*argv, str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "macro F1:" in out and "200 images" in out
    assert (tmp_path / "emotion_int8_val_confusion.png").is_file()


def test_latency_on_tiny_model(tiny: dict, capsys) -> None:
    r = latency.bench(tiny["fp32"], [1], [1, 8], repeat=3, warmup=1)
    assert r["arch"] == "edgefer" and r["params"] > 0 and r["macs"] > 0
    assert [x["batch"] for x in r["results"]] == [1, 8]


def test_distillation_run_records_its_teacher(tiny: dict, tmp_path: Path) -> None:
    """A real run taught by the tiny int8 model: the checkpoint names the teacher by
    hash, the export says it was distilled, and a resume with another teacher file is
    refused."""
    from trainer.distill import file_sha256

    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(tiny["int8"].read_bytes())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = [
            f"out_dir={tmp_path}",
            "run_name=kd",
            f"data.path={tiny['npz']}",
            "data.limit_train=192",
            "data.limit_val=64",
            "optim.batch_size=64",
            "threads=1",
            f"distill.teachers=[{teacher}]",
            "distill.weight=1.0",
        ]
        cfg = load_train_config(CONFIGS / "edgefer.yaml", [*base, "optim.epochs=1"])
        run_dir = train(cfg, quiet=True)
        ck = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
        assert ck["teachers"] == [
            {
                "path": str(teacher),
                "sha256": file_sha256(teacher),
                "arch": "edgefer",
                "tta": "none",
                "hflip": "false",
            }
        ]
        rec = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
        # weight 1: the loss is the KL to the teacher alone, not label cross-entropy
        # (which starts near ln 7 = 1.95 for an untrained 7-class model).
        assert np.isfinite(rec["train_loss"]) and rec["train_loss"] < 1.0
        out = export_checkpoint(run_dir / "best.pt", run_dir / "kd.onnx", tiny["val"])
        assert out["parity_max_abs_diff"] < PARITY_TOL
        meta = EmotionModel(run_dir / "kd.onnx", providers="cpu").contract.extra
        assert json.loads(meta["distilled_from"]) == [file_sha256(teacher)[:12]]

        teacher.write_bytes(tiny["fp32"].read_bytes())  # same path, other weights
        cfg2 = load_train_config(CONFIGS / "edgefer.yaml", [*base, "optim.epochs=2"])
        with pytest.raises(TrainConfigError, match="teacher files changed"):
            train(cfg2, resume=True, quiet=True)
    finally:
        torch.set_num_threads(threads)


def test_fine_tuning_run_starts_from_the_given_weights(tiny: dict, tmp_path: Path) -> None:
    """model.init: a real run on real images starts from the tiny run's weights (at a
    learning rate of ~0 they stay put), records the file, and the export says so."""
    from trainer.distill import file_sha256

    init = tiny["run_dir"] / "best.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_train_config(
            CONFIGS / "edgefer.yaml",
            [
                f"out_dir={tmp_path}",
                "run_name=ft",
                f"data.path={tiny['npz']}",
                "data.limit_train=128",
                "data.limit_val=64",
                "optim.batch_size=64",
                "optim.epochs=1",
                "optim.lr=1e-9",
                "threads=1",
                f"model.init={init}",
            ],
        )
        run_dir = train(cfg, quiet=True)
    finally:
        torch.set_num_threads(threads)
    start = torch.load(init, map_location="cpu", weights_only=False)["model"]
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    learned = [k for k in start if "running_" not in k and "num_batches" not in k]
    assert len(learned) > 10
    for k in learned:  # batch-norm statistics move in train mode; weights do not
        torch.testing.assert_close(last["model"][k], start[k], atol=1e-6, rtol=0)
    assert last["init"]["sha256"] == file_sha256(init)
    export_checkpoint(run_dir / "best.pt", run_dir / "ft.onnx", None)
    meta = EmotionModel(run_dir / "ft.onnx", providers="cpu").contract.extra
    assert meta["init_from"] == file_sha256(init)[:12]
