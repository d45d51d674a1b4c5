"""trainer.dequantize: a QDQ int8 model back to a float graph that computes what the int8
file computes (weights exactly, folded activations kept), ready to be quantized again.
Tiny graphs built with onnx.helper; no torch, no shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge_daemon.classify.model import EmotionModel  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from edge_daemon.modelmeta import ModelContract  # noqa: E402
from trainer import dequantize as dq  # noqa: E402
from trainer.quantize import quantize  # noqa: E402


def conv_relu_onnx(path: Path) -> Path:
    """Conv (8 channels, 3x3, stride 3) -> Relu -> Flatten -> Gemm -> 7 logits, random
    zero-mean weights: about half the conv outputs are negative, so the Relu matters."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 8).astype(np.float32)
    fc = rng.normal(0, 0.05, (7, 8 * 16 * 16)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "W", "B"], ["conv"], strides=[3, 3]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "FC", "FB"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "convrelu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])],
        initializer=[
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(fc, "FC"),
            numpy_helper.from_array(np.zeros(7, np.float32), "FB"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    extra = {"arch": "convrelu", "params": "14000", "macs": "1"}
    meta = ModelContract(labels=FER_LABELS, extra=extra).to_metadata()
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def images(n: int, seed: int) -> np.ndarray:
    """Smooth random images (blurred noise), closer to faces than white noise."""
    import cv2

    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    return np.stack([cv2.GaussianBlur(im, (7, 7), 2) for im in raw])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dq")
    fp32 = conv_relu_onnx(d / "fp32.onnx")
    int8 = d / "int8.onnx"
    quantize(fp32, int8, images(512, 0), "minmax", reduce_range=False)
    back = d / "back.onnx"
    dq.dequantize(int8, back)
    # 7-bit weights too, the quantizer's default: on x86 CPUs without VNNI, onnxruntime
    # adds pairs of u8 x s8 products in 16-bit lanes, which saturate for 8-bit weights,
    # so only a 7-bit int8 file computes its own arithmetic on every CPU.
    int8_7 = d / "int8_7.onnx"
    quantize(fp32, int8_7, images(512, 0), "minmax")
    back_7 = d / "back_7.onnx"
    dq.dequantize(int8_7, back_7)
    return {"fp32": fp32, "int8": int8, "back": back, "int8_7": int8_7, "back_7": back_7}


def test_the_quantizer_folds_the_relu(models: dict[str, Path]) -> None:
    # The reason dequantizing must keep each pair's range: the int8 file has no Relu.
    ops = {n.op_type for n in onnx.load(str(models["int8"])).graph.node}
    assert "Relu" not in ops and "QuantizeLinear" in ops


@pytest.mark.parametrize("bits", ["8", "7"])
def test_dequantized_model_computes_what_the_original_computes(models: dict, bits: str) -> None:
    back = models["back" if bits == "8" else "back_7"]
    g = onnx.load(str(back)).graph
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in g.node}
    x = images(64, 1)
    pb = EmotionModel(back, providers="cpu").predict(x)
    p32 = EmotionModel(models["fp32"], providers="cpu").predict(x)
    # Only weight and activation rounding separate the float copy from the original,
    # far under a dropped Relu. Both float graphs: the same on every CPU.
    assert np.abs(pb - p32).max() < 0.02


def test_dequantized_model_computes_what_the_int8_file_computes(models: dict) -> None:
    # The 7-bit pair: an 8-bit file's sums saturate on AVX2-only CPUs (the 8-bit pair
    # was 0.045 apart on a CI machine, and fails this check under qemu's Haswell model),
    # so what it computes depends on the CPU and no float graph matches it there. The
    # float copy is the file's arithmetic without that saturation.
    x = images(64, 1)
    p8 = EmotionModel(models["int8_7"], providers="cpu").predict(x)
    pb = EmotionModel(models["back_7"], providers="cpu").predict(x)
    # Only activation rounding separates the float copy from the int8 file.
    assert np.abs(pb - p8).max() < 0.02
    assert (pb.argmax(1) == p8.argmax(1)).mean() >= 0.95


def test_weights_are_the_int8_files_exact_values(models: dict) -> None:
    q = onnx.load(str(models["int8"])).graph
    inits = {t.name: numpy_helper.to_array(t) for t in q.initializer}
    (wdq,) = [
        n
        for n in q.node
        if n.op_type == "DequantizeLinear"
        and inits.get(n.input[0]) is not None
        and inits[n.input[0]].ndim == 4
    ]
    want = (
        inits[wdq.input[0]].astype(np.float64) - inits[wdq.input[2]].reshape(-1, 1, 1, 1)
    ) * inits[wdq.input[1]].reshape(-1, 1, 1, 1)
    back = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(models["back"])).graph.initializer
    }
    np.testing.assert_array_equal(back[wdq.output[0]], want.astype(np.float32))


def test_metadata_travels_and_records_the_source(models: dict) -> None:
    src = {p.key: p.value for p in onnx.load(str(models["int8"])).metadata_props}
    back = {p.key: p.value for p in onnx.load(str(models["back"])).metadata_props}
    assert "quantization" in src and "quantization" not in back
    assert len(back["dequantized_from"]) == 12
    assert {k: v for k, v in src.items() if k != "quantization"}.items() <= back.items()


def test_requantized_copy_has_seven_bit_weights(models: dict, tmp_path: Path) -> None:
    out = tmp_path / "q7.onnx"
    quantize(models["back"], out, images(512, 0), "minmax")
    q = onnx.load(str(out))
    meta = {p.key: p.value for p in q.metadata_props}
    assert "7-bit weights" in meta["quantization"] and "dequantized_from" in meta
    weights = [numpy_helper.to_array(t) for t in q.graph.initializer]
    peak = max(
        int(np.abs(w.astype(np.int32)).max()) for w in weights if w.dtype == np.int8 and w.size > 1
    )
    assert 32 < peak <= 64
    # A requantized file can go round again (its dequantized_from is replaced, not
    # duplicated: onnx refuses duplicate metadata keys).
    again = dq.dequantize_model(q)
    keys = [p.key for p in again.metadata_props]
    assert keys.count("dequantized_from") == 1


def test_float_and_unreadable_models_are_refused(models: dict, tmp_path: Path, capsys) -> None:
    with pytest.raises(dq.DequantizeError, match="not a QDQ int8 model"):
        dq.dequantize_model(onnx.load(str(models["fp32"])))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 10)
    for path in (junk, tmp_path / "missing.onnx"):
        assert dq.main([str(path), "-o", str(tmp_path / "o.onnx")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "o.onnx").exists()
