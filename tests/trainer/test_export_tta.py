"""Mirrored-face test-time augmentation baked into the exported graph (trainer.export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge_daemon.classify.model import EmotionModel  # noqa: E402
from edge_daemon.labels import FER_LABELS  # noqa: E402
from edge_daemon.modelmeta import ModelContract  # noqa: E402
from trainer.export import HFlipTTA, export_onnx, onnx_logits  # noqa: E402


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """A small conv net with random weights: far from mirror-symmetric."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=4),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 12 * 12, len(FER_LABELS)),
    ).eval()


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


def test_wrapper_is_the_mean_of_face_and_mirror(net: torch.nn.Module) -> None:
    x = torch.from_numpy(_x(3))
    with torch.no_grad():
        plain, mirrored = net(x), net(x.flip(-1))
        assert (plain - mirrored).abs().max() > 1e-3  # the model itself is not symmetric
        torch.testing.assert_close(HFlipTTA(net)(x), (plain + mirrored) / 2)


@pytest.mark.parametrize("n", [1, 5])
def test_exported_graph_matches_torch_and_is_mirror_invariant(
    net: torch.nn.Module, tmp_path: Path, n: int
) -> None:
    path = tmp_path / "tta.onnx"
    contract = ModelContract(labels=FER_LABELS, extra={"tta": "hflip"})
    wrapped = HFlipTTA(net).eval()
    export_onnx(wrapped, contract, path)
    x = _x(n)
    with torch.no_grad():
        ref = wrapped(torch.from_numpy(x)).numpy()
    got = onnx_logits(path, x)
    assert got.shape == (n, len(FER_LABELS))  # dynamic batch: n in, n out
    np.testing.assert_allclose(got, ref, atol=1e-4)
    np.testing.assert_allclose(onnx_logits(path, x[..., ::-1].copy()), got, atol=1e-5)
    m = EmotionModel(path, providers="cpu", tta_hflip=True)
    assert m.contract.extra["tta"] == "hflip" and m.tta_hflip is False
