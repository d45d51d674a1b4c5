"""On-the-fly augmentation, batched in torch (no torchvision: it does not work with the
CPU torch wheel used here). One affine warp per batch covers shift/crop, rotation, scale
and flip, so the cost is a single ``grid_sample`` instead of per-image Python work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5  # probability
    rotate_deg: float = 15.0  # uniform in +-rotate_deg
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.1  # fraction of the image side, uniform in +-shift
    brightness: float = 0.2  # additive, in units of full scale
    contrast: float = 0.3  # multiplicative, uniform in 1 +- contrast
    erase_p: float = 0.25  # probability of one random-erasing rectangle
    erase_area: tuple[float, float] = (0.02, 0.15)


def augment(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None
) -> torch.Tensor:
    """x: float [B, C, H, W] in 0..1 -> augmented batch, same shape, clamped to 0..1."""
    b, _, h, w = x.shape

    def uni(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=gen) * (hi - lo) + lo

    ang = uni(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180)
    sc = uni(*cfg.scale)
    flip = torch.where(torch.rand(b, generator=gen) < cfg.hflip, -1.0, 1.0)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = uni(-cfg.shift, cfg.shift) * 2
    theta[:, 1, 2] = uni(-cfg.shift, cfg.shift) * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    c = uni(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
    br = uni(-cfg.brightness, cfg.brightness).view(b, 1, 1, 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - m) * c + m + br).clamp_(0, 1)

    if cfg.erase_p > 0:
        area = uni(*cfg.erase_area) * h * w
        aspect = torch.exp(uni(math.log(0.3), math.log(3.3)))
        eh = (area * aspect).sqrt().clamp(1, h).long()
        ew = (area / aspect).sqrt().clamp(1, w).long()
        y0 = (torch.rand(b, generator=gen) * (h - eh + 1)).long()
        x0 = (torch.rand(b, generator=gen) * (w - ew + 1)).long()
        ys = torch.arange(h).view(1, h, 1)
        xs = torch.arange(w).view(1, 1, w)
        box = (
            (ys >= y0.view(b, 1, 1))
            & (ys < (y0 + eh).view(b, 1, 1))
            & (xs >= x0.view(b, 1, 1))
            & (xs < (x0 + ew).view(b, 1, 1))
        )
        on = (torch.rand(b, generator=gen) < cfg.erase_p).view(b, 1, 1)
        mask = (box & on).unsqueeze(1)
        noise = torch.rand(x.shape, generator=gen)
        x = torch.where(mask, noise, x)
    return x
