"""Batched augmentation: shape and range kept, identity when every setting is zero."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from trainer.augment import AugmentConfig, augment  # noqa: E402

IDENTITY = AugmentConfig(
    hflip=0.0,
    rotate_deg=0.0,
    scale=(1.0, 1.0),
    shift=0.0,
    brightness=0.0,
    contrast=0.0,
    erase_p=0.0,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(b: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 48, 48, generator=g)


def test_default_keeps_shape_and_range() -> None:
    x = _batch()
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.allclose(x, y)  # it did something
    assert torch.equal(x, _batch())  # input not modified in place


def test_extreme_settings_stay_in_range() -> None:
    cfg = AugmentConfig(
        hflip=1.0,
        rotate_deg=180.0,
        scale=(0.5, 2.0),
        shift=0.5,
        brightness=1.0,
        contrast=1.0,
        erase_p=1.0,
        erase_area=(0.5, 1.0),
    )
    y = augment(_batch(16), cfg, torch.Generator().manual_seed(2))
    assert y.shape == (16, 1, 48, 48)
    assert torch.isfinite(y).all()
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_all_zero_settings_is_identity() -> None:
    x = _batch()
    y = augment(x, IDENTITY, torch.Generator().manual_seed(3))
    assert y.shape == x.shape
    assert float((y - x).abs().max()) < 1e-5


def test_hflip_only_mirrors() -> None:
    x = _batch(4)
    y = augment(x, dataclasses.replace(IDENTITY, hflip=1.0), torch.Generator().manual_seed(4))
    assert float((y - x.flip(-1)).abs().max()) < 1e-5


def test_erase_only_touches_one_rectangle() -> None:
    x = torch.zeros(6, 1, 48, 48)
    cfg = dataclasses.replace(IDENTITY, erase_p=1.0, erase_area=(0.1, 0.1))
    y = augment(x, cfg, torch.Generator().manual_seed(5))
    for img in y[:, 0]:
        rows = (img != 0).any(1).nonzero().flatten()
        cols = (img != 0).any(0).nonzero().flatten()
        assert len(rows) and len(cols)
        h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert 0.03 * 48 * 48 <= h * w <= 0.2 * 48 * 48  # one box of about 10% area


def test_seeded_generator_is_reproducible() -> None:
    x = _batch()
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(7))
    c = augment(x, AugmentConfig(), torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
