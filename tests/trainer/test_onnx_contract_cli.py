"""Model metadata contract, EmotionModel refusals, and the evaluate / edge_bench.latency CLIs,
on tiny ONNX graphs built with onnx.helper (no torch, no shared data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_bench import latency  # noqa: E402
from edge_daemon.classify.model import EmotionModel, ModelLoadError  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from edge_daemon.modelmeta import REQUIRED_KEYS, ModelContract, ModelContractError  # noqa: E402
from trainer import evaluate  # noqa: E402
from trainer.quantize import MIN_CALIBRATION, QuantizeError, _reader, quantize  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The model predicts class k for an image whose only bright pixel is pixel k (see _spot_images).
PERMUTED = ("happy", "neutral", "angry", "sad", "surprise", "fear", "disgust")


def tiny_onnx(
    path: Path,
    labels: tuple[str, ...] = FER_LABELS,
    *,
    metadata: dict[str, str] | None = None,
    with_metadata: bool = True,
    size: int = 48,
    n_out: int | None = None,
) -> Path:
    """Flatten -> MatMul -> Add: logits[:, col] = 10 * x[pixel k] where labels[col] is
    the FER class k. With the contract's mean=std=0.5 a 0/255 pixel becomes -1/+1."""
    n_out = len(labels) if n_out is None else n_out
    w = np.zeros((size * size, n_out), np.float32)
    for k, name in enumerate(FER_LABELS):
        if name in labels and labels.index(name) < n_out:
            w[k, labels.index(name)] = 10.0
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", n_out])],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.zeros(n_out, np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_metadata:
        meta = ModelContract(
            labels=labels, extra={"arch": "tiny", "params": str(w.size + n_out), "macs": "123"}
        ).to_metadata()
        meta.update(metadata or {})
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _spot_images(labels: np.ndarray) -> np.ndarray:
    imgs = np.zeros((len(labels), 48, 48), np.uint8)
    imgs.reshape(len(labels), -1)[np.arange(len(labels)), labels] = 255
    return imgs


def _eval_npz(path: Path, n_per_class: int = 3) -> Path:
    labels = np.repeat(np.arange(7), n_per_class).astype(np.int64)
    n = len(labels)
    np.savez(
        path,
        images=_spot_images(labels),
        labels=labels,
        split=np.array(["val"] * n),
        class_names=np.array(FER_LABELS),
        filenames=np.array([f"{i}.png" for i in range(n)]),
    )
    return path


# ---------------------------------------------------------------- contract


def test_required_keys_are_the_documented_ones() -> None:
    assert REQUIRED_KEYS == ("labels", "input_size", "color", "mean", "std", "output")


def test_contract_round_trip() -> None:
    c = ModelContract(
        labels=PERMUTED,
        input_size=64,
        color="rgb",
        mean=0.45,
        std=0.226,
        output="probs",
        crop_margin=0.2,
        temperature=1.7,
        extra={"arch": "edgefer", "val_accuracy": "0.7012"},
    )
    meta = c.to_metadata()
    assert all(isinstance(v, str) for v in meta.values())
    assert set(REQUIRED_KEYS) <= set(meta)
    assert json.loads(meta["labels"]) == list(PERMUTED)
    assert ModelContract.from_metadata(meta) == c
    assert c.channels == 3


def test_contract_normalize_and_probs() -> None:
    c = ModelContract(labels=FER_LABELS, mean=0.5, std=0.5, temperature=2.0)
    x = c.normalize(np.array([[[0, 255]]], np.uint8))
    assert x.shape == (1, 1, 1, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x.ravel(), [-1.0, 1.0])
    p = c.to_probs(np.array([[0.0, 2.0 * np.log(3.0)]], np.float32))
    np.testing.assert_allclose(p, [[0.25, 0.75]], rtol=1e-6)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"labels": '["a", "b"]'}, "lacks"),
        ({"labels": "not json"}, "malformed"),
        ({"labels": '["a", "a"]'}, "unique"),
        ({"input_size": "big"}, "malformed"),
        ({"color": "cmyk"}, "color"),
        ({"std": "0"}, "std"),
        ({"output": "scores"}, "output"),
    ],
)
def test_contract_rejects_bad_metadata(meta: dict, message: str) -> None:
    full = ModelContract(labels=FER_LABELS).to_metadata()
    if message == "lacks":
        full = meta
    else:
        full.update(meta)
    with pytest.raises(ModelContractError, match=message):
        ModelContract.from_metadata(full)


# ---------------------------------------------------------------- EmotionModel refusals


def test_emotion_model_accepts_tiny_graph(tmp_path: Path) -> None:
    m = EmotionModel(tiny_onnx(tmp_path / "ok.onnx"), providers="cpu")
    assert m.labels == FER_LABELS
    labels = np.arange(7)
    p = m.predict(_spot_images(labels))
    assert p.shape == (7, 7)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert p.argmax(1).tolist() == labels.tolist()


def test_refuses_model_without_metadata(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "bare.onnx", with_metadata=False)
    with pytest.raises(ModelLoadError, match="metadata lacks") as exc:
        EmotionModel(path, providers="cpu")
    assert "trainer.export" in str(exc.value)


def test_refuses_wrong_input_shape(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "big.onnx", size=64)  # metadata still says 48
    with pytest.raises(ModelLoadError, match=r"input shape .* does not match metadata"):
        EmotionModel(path, providers="cpu")


def test_refuses_label_count_mismatch(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "five.onnx", n_out=5)  # 5 outputs, 7 labels
    with pytest.raises(ModelLoadError, match="does not match the 7 labels"):
        EmotionModel(path, providers="cpu")


def test_refuses_non_onnx_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        EmotionModel(tmp_path / "junk.onnx", providers="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        EmotionModel(tmp_path / "missing.onnx", providers="cpu")


# ---------------------------------------------------------------- evaluate CLI


def test_evaluate_maps_labels_by_name(tmp_path: Path, capsys) -> None:
    model = tiny_onnx(tmp_path / "perm.onnx", PERMUTED)
    data = _eval_npz(tmp_path / "val.npz")
    rc = evaluate.main([str(model), "--data", str(data), "--out", str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["n"] == 21
    assert report["accuracy"] == 1.0  # 0.0 if columns were taken by index
    assert report["macro_f1"] == 1.0
    assert report["model_labels"] == list(PERMUTED)
    assert set(report["per_class"]) == set(FER_LABELS)
    assert report["support"] == dict.fromkeys(FER_LABELS, 3)
    assert 0.0 <= report["ece"] <= 1.0
    png = Path(report["confusion_png"])
    assert png.parent == tmp_path / "out" and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy: 1.0000" in captured.err  # human table on stderr with --json


def test_evaluate_text_output_and_default_out_dir(tmp_path: Path, capsys) -> None:
    model = tiny_onnx(tmp_path / "m.onnx")
    data = _eval_npz(tmp_path / "val.npz")
    assert evaluate.main([str(model), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "accuracy: 1.0000" in out and "macro F1" in out and "ECE" in out
    for name in FER_LABELS:
        assert name in out
    assert (tmp_path / "m_val_confusion.png").is_file()


def test_evaluate_refuses_mismatched_label_names(tmp_path: Path, capsys) -> None:
    names = ("anger", *FER_LABELS[1:])
    model = tiny_onnx(tmp_path / "m.onnx", names)
    data = _eval_npz(tmp_path / "val.npz")
    assert evaluate.main([str(model), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    # Refused at load now, before evaluation: the daemon could not publish 'anger'.
    assert "'anger'" in err and "not emotions the daemon publishes" in err and "angry" in err


def test_evaluate_seen_in_splits_accuracy_by_training_copies(tmp_path: Path, capsys) -> None:
    # val: 7 spot images the model gets right + two "spot 3" images labelled angry (wrong).
    val_labels = np.array([*range(7), 0, 0], np.int64)
    val_images = _spot_images(np.array([*range(7), 3, 3]))
    val_images[7, 0, 46] = 5  # same predictions as val[3], but other pixels: not copies
    val_images[8, 0, 47] = 7
    # train holds copies of val[0] (same label) and val[7] (same label), and val[8]'s
    # pixels never; plus one unrelated image.
    train_images = np.stack([val_images[0], val_images[7], _spot_images(np.array([100]))[0]])
    train_labels = np.array([0, 4, 2], np.int64)  # val[7]'s copy carries another label
    images = np.concatenate([train_images, val_images])
    labels = np.concatenate([train_labels, val_labels])
    split = np.array(["train"] * 3 + ["val"] * 9)
    data = tmp_path / "d.npz"
    np.savez(
        data,
        images=images,
        labels=labels,
        split=split,
        class_names=np.array(FER_LABELS),
        filenames=np.array([f"{i}.png" for i in range(len(labels))]),
    )
    model = tiny_onnx(tmp_path / "m.onnx")
    assert evaluate.main([str(model), "--data", str(data), "--seen-in", "train", "--json"]) == 0
    captured = capsys.readouterr()
    seen = json.loads(captured.out)["seen_in"]
    assert seen["split"] == "train"
    assert seen["seen"] == {"n": 2, "same_label": 1, "accuracy": 0.5}
    assert seen["unseen"]["n"] == 7
    assert seen["unseen"]["accuracy"] == pytest.approx(6 / 7)
    assert "also in train: 2 images (1 with the same label), accuracy 0.5000" in captured.err
    # Scoring a split against itself is a mistake, said plainly.
    assert evaluate.main([str(model), "--data", str(data), "--seen-in", "val"]) == 2
    assert "is the evaluated split itself" in capsys.readouterr().err


def test_evaluate_crowd_splits_accuracy_by_label_noise(tmp_path: Path, capsys) -> None:
    # Row 0 decides the tiny model's prediction (spot k -> FER class k); the other rows
    # are random so that every photo is distinct for the pixel matching.
    rng = np.random.default_rng(1)
    spots = np.array([3, 6, 4, 2, 1, 0])
    labels = np.array([3, 0, 4, 5, 1, 2], np.int64)  # predictions right for 0, 2, 4
    majority = ["happiness", "neutral", "fear", "surprise", None, "happiness"]
    images = _spot_images(spots)
    images[:, 1:, :] = rng.integers(0, 200, (6, 47, 48), dtype=np.uint8)
    data = tmp_path / "fer.npz"
    np.savez(
        data,
        images=images,
        labels=labels,
        split=np.array(["val"] * 6),
        class_names=np.array(FER_LABELS),
        filenames=np.array([f"{i}.png" for i in range(6)]),
    )
    # FER+ holds re-encoded copies (pixels off by one) of all but image 4, and a stranger.
    names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
    keep = [i for i, m in enumerate(majority) if m is not None]
    copies = images[keep].astype(np.int16) + rng.integers(-1, 2, (len(keep), 48, 48))
    crowd_images = np.concatenate(
        [np.clip(copies, 0, 255).astype(np.uint8), rng.integers(0, 256, (1, 48, 48), np.uint8)]
    )
    votes = np.zeros((len(crowd_images), len(names)), np.uint8)
    for row, i in enumerate(keep):
        votes[row, names.index(majority[i])] = 6
        votes[row, names.index("sadness")] += 4  # a minority view that does not win
    votes[-1, 0] = 10
    crowd = tmp_path / "ferplus.npz"
    np.savez(
        crowd,
        images=crowd_images,
        votes=votes,
        vote_names=np.array(names),
        split=np.array(["val"] * len(crowd_images)),
    )
    model = tiny_onnx(tmp_path / "m.onnx")
    argv = [str(model), "--data", str(data), "--crowd", str(crowd), "--json"]
    assert evaluate.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)["crowd"]
    assert report["matched"] == 5  # image 4 has no crowd vote
    assert report["label_is_majority"] == {"n": 2, "accuracy": 0.5}  # images 0 and 3
    assert report["label_not_majority"]["n"] == 3  # images 1, 2 and 5
    assert report["label_not_majority"]["accuracy"] == pytest.approx(1 / 3)
    # Errors: images 1, 3, 5; only image 1's prediction (neutral) is the crowd's choice.
    assert (report["errors"], report["errors_with_crowd"]) == (3, 1)
    assert "chose the majority's emotion: 1 of 3 (33%)" in captured.err
    # FER+ data already scores against the crowd: --crowd there is a mistake, said plainly.
    argv = [str(model), "--data", str(crowd), "--format", "ferplus_npz", "--crowd"]
    assert evaluate.main(argv) == 2
    assert "drop --crowd" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing_model", "junk_model", "missing_data", "no_metadata"])
def test_evaluate_errors_exit_2(tmp_path: Path, capsys, case: str) -> None:
    model = tiny_onnx(tmp_path / "m.onnx", with_metadata=case != "no_metadata")
    data = _eval_npz(tmp_path / "val.npz")
    if case == "missing_model":
        model = tmp_path / "nope.onnx"
    elif case == "junk_model":
        model.write_bytes(b"junk")
    elif case == "missing_data":
        data = tmp_path / "nope.npz"
    assert evaluate.main([str(model), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_evaluate_cli_missing_file_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.evaluate", str(tmp_path / "nope.onnx")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "nope.onnx" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- quantize guard


def test_quantize_needs_enough_calibration(tmp_path: Path) -> None:
    # Checked before the model is opened; 510 images would be trimmed to 448 (batches of 64).
    model = tiny_onnx(tmp_path / "m.onnx")
    for n in (100, 510):
        with pytest.raises(QuantizeError, match=f"at least {MIN_CALIBRATION}"):
            quantize(model, tmp_path / "q.onnx", np.zeros((n, 48, 48), np.uint8))
    assert not (tmp_path / "q.onnx").exists()


def test_calibration_reader_strides(tmp_path: Path) -> None:
    model = EmotionModel(tiny_onnx(tmp_path / "m.onnx"), providers="cpu")
    images = np.arange(150)[:, None, None].astype(np.uint8) * np.ones((1, 48, 48), np.uint8)
    reader = _reader(images, model)
    assert len(reader) == 3  # batches of 64: 64, 64, 22
    reader.set_range(start_index=1, end_index=3)
    got = list(reader)
    assert [len(b["input"]) for b in got] == [64, 22]
    np.testing.assert_array_equal(got[0]["input"], model.contract.normalize(images[64:128]))
    reader.rewind()
    assert sum(len(b["input"]) for b in reader) == 150


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_quantize_calibrates_on_every_stride(tmp_path: Path, method: str) -> None:
    # Calibration runs one batch per stride; the ranges must fold in all of them. Only
    # the last of eight batches holds bright pixels: a range from the first stride alone
    # would stop near 0 instead of covering +1 (pixel 255 after mean=std=0.5).
    calib = np.full((512, 48, 48), 128, np.uint8)
    calib[-64:] = 255
    out = tmp_path / "q.onnx"
    quantize(tiny_onnx(tmp_path / "m.onnx"), out, calib, method)
    q = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    # pre-processing fuses the graph; the first quantized activation is the flattened input
    (node,) = [n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "flat"]
    scale, zero = float(inits[node.input[1]]), int(inits[node.input[2]])
    assert scale * (255 - zero) >= 0.99


@pytest.mark.parametrize("reduce_range", [True, False])
def test_weights_are_seven_bit_unless_full_range(tmp_path: Path, reduce_range: bool) -> None:
    # 8-bit weights saturate the 16-bit sums of onnxruntime's u8s8 kernels on CPUs without
    # VNNI, so int8 results depended on the CPU; 7-bit weights cannot saturate them.
    out = tmp_path / "q.onnx"
    calib = np.random.default_rng(0).integers(0, 256, (512, 48, 48), dtype=np.uint8)
    quantize(tiny_onnx(tmp_path / "m.onnx"), out, calib, "minmax", reduce_range=reduce_range)
    q = onnx.load(str(out))
    weights = [
        numpy_helper.to_array(t)
        for t in q.graph.initializer
        if numpy_helper.to_array(t).dtype == np.int8 and numpy_helper.to_array(t).size > 1
    ]
    assert weights
    peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    # 7 bits: |w| <= 64, so 2 x 255 x 64 = 32,640 fits a 16-bit lane; 8 bits reach 127.
    assert (peak <= 64) is reduce_range and peak > 32, peak
    desc = {p.key: p.value for p in q.metadata_props}["quantization"]
    assert ("7-bit weights" in desc) is reduce_range


# ------------------------------------------------------------ edge_bench.latency CLI


def test_latency_json(tmp_path: Path, capsys) -> None:
    model = tiny_onnx(tmp_path / "m.onnx")
    argv = [str(model), "--threads", "1", "--batch", "1", "4", "--repeat", "3", "--warmup", "1"]
    assert latency.main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["arch"] == "tiny" and report["macs"] == 123
    assert report["params"] == 48 * 48 * 7 + 7
    rows = report["results"]
    assert [(r["threads"], r["batch"]) for r in rows] == [(1, 1), (1, 4)]
    for r in rows:
        assert r["repeat"] == 3
        assert r["p90_ms"] >= r["median_ms"] >= 0
        assert r["median_ms_per_face"] == pytest.approx(r["median_ms"] / r["batch"])
    assert "ms/face" in captured.err  # table on stderr with --json


def test_latency_table_and_errors(tmp_path: Path, capsys) -> None:
    model = tiny_onnx(tmp_path / "m.onnx")
    assert latency.main([str(model), "--threads", "1", "--batch", "2", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and "p90" in out and "tiny" in out
    assert latency.main([str(tmp_path / "nope.onnx"), "--repeat", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
