"""The bundled model loads with its contract and gives probabilities; TTA averages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_daemon.classify.model import BUNDLED_MODEL, EmotionModel, ModelLoadError, choose_providers
from edge_daemon.labels import FER_LABELS
from edge_daemon.modelmeta import ModelContract


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)


def test_bundled_model_carries_the_contract(crops: np.ndarray) -> None:
    m = EmotionModel()
    assert m.info.path == BUNDLED_MODEL
    assert m.labels == FER_LABELS
    p = m.predict(crops)
    assert p.shape == (5, 7) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert m.predict(crops[:0]).shape == (0, 7)


def test_accurate_bundled_model_is_the_default_with_its_mirrored_pass(
    crops: np.ndarray,
) -> None:
    from edge_daemon.config import BUNDLED_MODELS

    fast, accurate = EmotionModel(BUNDLED_MODELS["fast"]), EmotionModel(BUNDLED_MODELS["accurate"])
    assert accurate.labels == fast.labels == FER_LABELS
    for key in ("input_size", "color", "mean", "std", "crop_margin"):
        assert getattr(accurate.contract, key) == getattr(fast.contract, key), key
    # The same training run, mirrored inside the graph: twice the work of one pass.
    for key in ("arch", "params", "macs", "train_commit", "init_from"):
        assert accurate.contract.extra[key] == fast.contract.extra[key], key
    assert accurate.contract.extra["tta"] == "hflip" and fast.contract.extra["tta"] == "none"
    p = accurate.predict(crops)
    assert p.shape == (5, 7)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(accurate.predict(crops[..., ::-1].copy()), p, atol=1e-6)


def _linear_model(
    path: Path,
    tta: str | None = None,
    meta_overrides: dict[str, str] | None = None,
    weights: np.ndarray | None = None,
) -> Path:
    """Flatten -> MatMul with random weights: a model that is not mirror-symmetric."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(1).normal(0, 0.05, (48 * 48, 7)).astype(np.float32)
    if weights is not None:
        w = weights.astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelContract(labels=FER_LABELS).to_metadata()
    if tta is not None:
        meta["tta"] = tta
    meta.update(meta_overrides or {})
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_tta_is_the_mean_of_the_face_and_its_mirror(crops: np.ndarray, tmp_path: Path) -> None:
    path = _linear_model(tmp_path / "linear.onnx")
    plain = EmotionModel(path, threads=1)
    tta = EmotionModel(path, threads=1, tta_hflip=True)
    mirrored = plain.predict(crops[:, :, ::-1].copy())
    assert np.abs(mirrored - plain.predict(crops)).max() > 1e-3  # the check can fail
    expected = (plain.predict(crops) + mirrored) / 2
    np.testing.assert_allclose(tta.predict(crops), expected, atol=1e-5)


def test_mirrored_pass_for_the_uncertain_faces_only(crops: np.ndarray, tmp_path: Path) -> None:
    """tta_hflip_below: the faces whose top probability is under the floor get the mean
    with their mirror image (as tta_hflip), the others keep their single pass."""
    path = _linear_model(tmp_path / "linear.onnx")
    plain, full = EmotionModel(path, threads=1), EmotionModel(path, threads=1, tta_hflip=True)
    p, f = plain.predict(crops), full.predict(crops)
    floor = float(np.median(p.max(1)))  # about half the faces under it
    unsure = p.max(1) < floor
    assert 0 < unsure.sum() < len(crops)
    m = EmotionModel(path, threads=1, tta_hflip_below=floor)
    got, mirrored = m.predict_counted(crops)
    assert mirrored == unsure.sum()
    np.testing.assert_allclose(got[unsure], f[unsure], atol=1e-5)
    np.testing.assert_array_equal(got[~unsure], p[~unsure])
    np.testing.assert_array_equal(m.predict(crops), got)
    assert m.info.describe()["tta_hflip_below"] == floor
    # Off (0) is the single pass; the full mirrored pass counts every face.
    assert EmotionModel(path, threads=1).predict_counted(crops)[1] == 0
    assert full.predict_counted(crops)[1] == len(crops)
    assert m.predict_counted(crops[:0])[1] == 0
    # Unused where every face is mirrored anyway (and so not claimed in the stats).
    assert EmotionModel(path, tta_hflip=True, tta_hflip_below=0.7).tta_hflip_below == 0.0
    graph = _linear_model(tmp_path / "in_graph.onnx", tta="hflip")
    assert EmotionModel(graph, tta_hflip_below=0.7).predict_counted(crops)[1] == 0
    with pytest.raises(ValueError, match="tta_hflip_below"):
        EmotionModel(path, tta_hflip_below=1.5)


def test_outer_tta_is_skipped_when_the_graph_mirrors(crops: np.ndarray, tmp_path: Path) -> None:
    path = _linear_model(tmp_path / "in_graph.onnx", tta="hflip")
    m = EmotionModel(path, threads=1, tta_hflip=True)
    assert m.tta_hflip is False
    assert EmotionModel(_linear_model(tmp_path / "plain.onnx"), tta_hflip=True).tta_hflip


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        EmotionModel(tmp_path / "nope.onnx")


def test_cpu_provider_is_always_available() -> None:
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    assert choose_providers("cpu") == ["CPUExecutionProvider"]


@pytest.mark.parametrize("key", ["mean", "std", "temperature", "crop_margin"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_preprocessing_metadata_is_refused(tmp_path: Path, key: str, value: str) -> None:
    # NaN passed "std > 0"-style checks and made every probability NaN.
    path = _linear_model(tmp_path / "m.onnx", meta_overrides={key: value})
    with pytest.raises(ModelLoadError, match=f"{key} must be a finite number"):
        EmotionModel(path)


def test_labels_the_events_cannot_name_are_refused_at_load(tmp_path: Path) -> None:
    import json

    labels = ["anger", "disgust", "fear", "joy", "sad", "surprise", "neutral"]
    path = _linear_model(tmp_path / "m.onnx", meta_overrides={"labels": json.dumps(labels)})
    with pytest.raises(ModelLoadError, match=r"\['anger', 'joy'\] are not emotions"):
        EmotionModel(path)
    # The seven names in another order are fine: labels are matched by name.
    shuffled = json.dumps(list(reversed(FER_LABELS)))
    m = EmotionModel(_linear_model(tmp_path / "r.onnx", meta_overrides={"labels": shuffled}))
    assert m.labels == tuple(reversed(FER_LABELS))
