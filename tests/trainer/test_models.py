"""Classifier architectures: parameter budgets, multiply-adds, forward shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trainer.models import (  # noqa: E402
    EdgeFER,
    EdgeFER2,
    FusedMBConv,
    InvertedResidual,
    build_model,
    count_macs,
    count_params,
)

REFERENCE_PARAMS = 784_263  # the reference design's published parameter count


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def seed002():
    return build_model("seed002", 7)


@pytest.fixture(scope="module")
def edgefer():
    return build_model("edgefer", 7)


def test_seed002_matches_reference_parameter_count(seed002) -> None:
    n = count_params(seed002)
    assert abs(n - REFERENCE_PARAMS) / REFERENCE_PARAMS < 0.01, n


def test_edgefer_budget(seed002, edgefer) -> None:
    assert count_params(edgefer) <= 1_000_000
    macs_edge, macs_seed = count_macs(edgefer), count_macs(seed002)
    assert macs_edge < 40e6
    assert macs_seed / macs_edge >= 5, (macs_seed, macs_edge)


@pytest.mark.parametrize("name", ["seed002", "edgefer", "edgefer2"])
def test_forward_shapes(name: str) -> None:
    for classes in (7, 5):
        m = build_model(name, classes).eval()
        with torch.no_grad():
            assert m(torch.zeros(3, 1, 48, 48)).shape == (3, classes)
    m = build_model(name, 7).train()  # batch-norm in training mode needs batch > 1
    out = m(torch.randn(2, 1, 48, 48))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_channels_last_matches(edgefer) -> None:
    edgefer.eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        a = edgefer(x)
        cl = build_model("edgefer", 7)
        cl.load_state_dict(edgefer.state_dict())
        cl = cl.eval().to(memory_format=torch.channels_last)
        b = cl(x.contiguous(memory_format=torch.channels_last))
    assert float((a - b).abs().max()) < 1e-4


def test_edgefer_width_depth_kwargs() -> None:
    small = build_model("edgefer", 7, stages=((32, 1), (64, 1), (96, 1)), head_dim=128)
    assert count_params(small) < count_params(EdgeFER())
    assert small.eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    two = build_model("edgefer", 7, stages=((64, 2), (128, 2)))  # stops at 6x6
    assert two.eval()(torch.zeros(1, 1, 48, 48)).shape == (1, 7)


def test_edgefer2_shipped_layout_budget(seed002) -> None:
    """The layout in trainer/configs/edgefer2.yaml: under 1 M parameters, and cheaper than
    the reference although it spends more at 24x24/12x12 than edgefer."""
    from trainer.config import load_train_config

    cfg = load_train_config(
        Path(__file__).resolve().parents[2] / "trainer/configs/edgefer2.yaml", []
    )
    m = build_model(cfg.model.arch, 7, dropout=cfg.model.dropout, **cfg.model.kwargs)
    assert isinstance(m, EdgeFER2)
    assert count_params(m) <= 1_000_000
    assert count_macs(m) < count_macs(seed002)
    kinds = [type(b) for b in m.features if isinstance(b, FusedMBConv | InvertedResidual)]
    assert kinds[:4] == [FusedMBConv] * 4 and kinds[4:] == [InvertedResidual] * 3


def test_fused_block_skip_and_stride() -> None:
    same = FusedMBConv(16, 16, 2).eval()
    assert same.use_skip
    with torch.no_grad():
        for p in same.block.parameters():
            p.zero_()  # the residual branch off: the block is the identity
        x = torch.randn(1, 16, 12, 12)
        assert torch.equal(same(x), x)
    down = FusedMBConv(16, 32, 2, stride=2)
    assert not down.use_skip
    assert down(torch.randn(2, 16, 12, 12)).shape == (2, 32, 6, 6)


def test_edgefer2_rejects_unknown_stage_kind() -> None:
    with pytest.raises(ValueError, match="stage kind 'x'"):
        build_model("edgefer2", 7, stages=(("x", 32, 1, 2),))


def test_count_macs_known_layers() -> None:
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),  # 48*48*8*9
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # 24*24*8*9
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 24 * 24, 7),
    ).train()
    assert count_macs(conv) == 48 * 48 * 8 * 9 + 24 * 24 * 8 * 9 + 8 * 24 * 24 * 7
    assert conv.training  # mode restored


def test_unknown_model() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", 7)
