"""The bundled model loads with its contract and gives probabilities; TTA averages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_daemon.classify.model import BUNDLED_MODEL, EmotionModel, ModelLoadError, choose_providers
from edge_daemon.labels import FER_LABELS


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


def test_tta_is_the_mean_of_the_face_and_its_mirror(crops: np.ndarray) -> None:
    plain = EmotionModel(threads=1)
    tta = EmotionModel(threads=1, tta_hflip=True)
    expected = (plain.predict(crops) + plain.predict(crops[:, :, ::-1].copy())) / 2
    np.testing.assert_allclose(tta.predict(crops), expected, atol=1e-5)


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        EmotionModel(tmp_path / "nope.onnx")


def test_cpu_provider_is_always_available() -> None:
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
