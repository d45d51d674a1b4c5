"""Classifier architectures: parameter budgets, multiply-adds, forward shapes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainer.models import EdgeFER, build_model, count_macs, count_params  # noqa: E402

REFERENCE_PARAMS = 784_263  # the reference design's published parameter count


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.mark.parametrize("name", ["seed002", "edgefer"])
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
