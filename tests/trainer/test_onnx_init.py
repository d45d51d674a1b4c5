"""model.init: FILE.onnx: a run starts from an exported model's weights, its folded batch
norms unfolded so that the network computes what the file computes (trainer.onnx_init).
A tiny edgefer2 with random weights and random batch-norm statistics, exported for real
with trainer.export; no shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from edge_daemon.labels import FER_LABELS  # noqa: E402
from edge_daemon.modelmeta import ModelContract  # noqa: E402
from trainer.config import TrainConfigError, load_train_config  # noqa: E402
from trainer.export import export_onnx  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.onnx_init import module_path  # noqa: E402
from trainer.warmstart import apply_init, read_init  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "stem": 8,
    "stages": [["f", 8, 1, 2], ["f", 16, 2, 2], ["m", 16, 2, 2], ["m", 24, 1, 2]],
    "head_dim": 16,
}
TINY_OVERRIDE = (
    "model.kwargs={stem: 8, stages: [[f, 8, 1, 2], [f, 16, 2, 2], [m, 16, 2, 2], "
    "[m, 24, 1, 2]], head_dim: 16}"
)


def _tiny(seed: int) -> torch.nn.Module:
    """A tiny edgefer2 whose batch norms are far from the identity, so that folding them
    into the convolutions (as export does) changes every weight."""
    torch.manual_seed(seed)
    model = build_model("edgefer2", len(FER_LABELS), dropout=0.2, **TINY)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _export(model: torch.nn.Module, path: Path, **extra: str) -> Path:
    meta = {"arch": "edgefer2", "train_epoch": "3", "val_accuracy_fp32": "0.5000", "tta": "none"}
    meta.update(extra)
    export_onnx(model, ModelContract(labels=FER_LABELS, extra=meta), path)
    return path


def _inputs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 48, 48, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2)  # smoother than white noise, like faces
    return (x - 0.5) / 0.5


def _cfg(path: Path, *more: str):
    return load_train_config(
        REPO / "trainer" / "configs" / "wild.yaml", [f"model.init={path}", TINY_OVERRIDE, *more]
    )


def test_module_path_follows_the_export_scope_names() -> None:
    assert module_path("/features/features.1/block/block.0/block.0.0/Conv") == (
        "features.1.block.0.0"
    )
    assert module_path("/features/features.8/features.8.0/Conv") == "features.8.0"
    assert module_path("/head/head.2/Gemm") == "head.2"


def test_the_imported_network_computes_what_the_file_computes(tmp_path: Path) -> None:
    source = _tiny(seed=1)
    path = _export(source, tmp_path / "m.onnx")
    init = read_init(_cfg(path))
    assert init is not None and init.exported is not None
    assert init.record["exported"] is True and init.record["epoch"] == "3"

    model = _tiny(seed=2).train()  # different weights and norms: all of it must be replaced
    x = _inputs(512, seed=0)
    with torch.no_grad():
        want = source(x)
        assert not torch.allclose(model.eval()(x), want, atol=1e-2)
    model.train()
    apply_init(model, init, x)
    assert init.record["import"]["top1_disagreement"] == 0.0
    assert init.record["import"]["max_logit_diff"] < 1e-4
    with torch.no_grad():
        got = model.eval()(_inputs(64, seed=5))
        ref = source(_inputs(64, seed=5))
    assert torch.allclose(got, ref, atol=1e-4), float((got - ref).abs().max())
    # The norms carry the measured statistics, not the identity: in training mode the
    # batch statistics then match the running ones and the function barely moves.
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_var.min()) != pytest.approx(1.0) for m in norms)
    model.train()
    with torch.no_grad():
        trained_mode = model.features(x[:256])
        model.eval()
        eval_mode = model.features(x[:256])
    rel = float((trained_mode - eval_mode).abs().mean() / eval_mode.abs().mean())
    assert rel < 0.05, rel


def test_an_int8_file_is_dequantized_and_imported(tmp_path: Path) -> None:
    from trainer.quantize import quantize

    source = _tiny(seed=4)
    fp32 = _export(source, tmp_path / "fp32.onnx")
    int8 = tmp_path / "int8.onnx"
    calib = np.clip(_inputs(512, seed=9).numpy() * 127.5 + 127.5, 0, 255).astype(np.uint8)[:, 0]
    quantize(fp32, int8, calib, method="minmax")
    init = read_init(_cfg(int8))
    assert init is not None
    model = _tiny(seed=5).train()
    apply_init(model, init, _inputs(256, seed=1))
    # The imported weights are the int8 file's rounded ones: close to the source network.
    assert init.record["import"]["top1_disagreement"] <= 0.01
    with torch.no_grad():
        got, ref = model.eval()(_inputs(64, seed=5)), source(_inputs(64, seed=5))
    assert float((got.argmax(1) == ref.argmax(1)).float().mean()) >= 0.9


@pytest.mark.parametrize(
    ("extra", "overrides", "message"),
    [
        ({"arch": "edgefer"}, [], "is a 'edgefer', this run builds 'edgefer2'"),
        ({"tta": "hflip"}, [], "mirrored-face pass built in"),
        ({}, ["preprocess.mean=0.4"], "set preprocess.mean"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_before_any_data_is_read(
    tmp_path: Path, extra: dict[str, str], overrides: list[str], message: str
) -> None:
    path = _export(_tiny(seed=1), tmp_path / "m.onnx", **extra)
    with pytest.raises(TrainConfigError, match=message):
        read_init(_cfg(path, *overrides))


def test_a_file_of_another_shape_is_refused_by_layer(tmp_path: Path) -> None:
    path = _export(_tiny(seed=1), tmp_path / "m.onnx")
    init = read_init(_cfg(path))
    assert init is not None
    other = build_model("edgefer2", len(FER_LABELS), **{**TINY, "head_dim": 24})
    with pytest.raises(TrainConfigError, match=r"head.2 has weights|features.\d+.0 has weights"):
        apply_init(other, init, _inputs(64, seed=0))


def test_not_an_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"garbage")
    with pytest.raises(TrainConfigError, match="not a readable ONNX file"):
        read_init(_cfg(path))
    with pytest.raises(TrainConfigError, match="does not exist"):
        read_init(_cfg(tmp_path / "missing.onnx"))
