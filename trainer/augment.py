"""On-the-fly augmentation, batched in torch (no torchvision: it does not work with the
CPU torch wheel used here). One affine warp per batch covers shift/crop, rotation, scale
and flip, so the cost is a single ``grid_sample`` instead of per-image Python work.

The camera-condition settings (``gamma_p`` ... ``band_p``) imitate what a real camera
does to a face that FER-2013's clean crops never show: low light (gamma), sensor noise,
motion blur, small faces (down- then up-sampled), glasses-like bands over the eyes.
They are off by default so older recipes reproduce exactly; the camera-condition suite
of ``trainer.evaluate_e2e`` measures what each one buys.
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
    # Camera conditions, each applied to a random share (probability) of the batch.
    gamma_p: float = 0.0  # pixel ** g with log g uniform in +-log(gamma_max)
    gamma_max: float = 2.5  # g = 2.5 darkens like a dim room, 0.4 lifts shadows
    noise_p: float = 0.0  # additive Gaussian sensor noise, sigma uniform in 0..noise_std
    noise_std: float = 0.08
    blur_p: float = 0.0  # linear motion blur, random direction, length 2..blur_max px
    blur_max: int = 7
    lowres_p: float = 0.0  # down-sample to lowres_min..47 px, then back up (small faces)
    lowres_min: int = 12
    band_p: float = 0.0  # a dark or light horizontal band over the eyes (glasses, visor)


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
    return camera_conditions(x, cfg, gen)


def _pick(b: int, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Bool [B]: which images of the batch get an augmentation of probability ``p``."""
    return torch.rand(b, generator=gen) < p


def camera_conditions(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None
) -> torch.Tensor:
    """The camera-condition part of :func:`augment`: x float [B, 1, H, W] in 0..1."""
    b, c, h, w = x.shape
    if cfg.gamma_p > 0:
        on = _pick(b, cfg.gamma_p, gen).view(b, 1, 1, 1)
        lg = (torch.rand(b, generator=gen) * 2 - 1) * math.log(cfg.gamma_max)
        g = torch.exp(lg).view(b, 1, 1, 1)
        x = torch.where(on, x.clamp(1e-4, 1).pow(g), x)
    if cfg.blur_p > 0 and cfg.blur_max >= 2:
        on = _pick(b, cfg.blur_p, gen)
        if on.any():
            x = torch.where(on.view(b, 1, 1, 1), _motion_blur(x, cfg.blur_max, gen), x)
    if cfg.lowres_p > 0:
        on = _pick(b, cfg.lowres_p, gen)
        if on.any():
            # One size per batch keeps it one interpolate call; sizes vary across batches.
            side = int(torch.randint(cfg.lowres_min, h, (1,), generator=gen))
            small = F.interpolate(x, size=(side, side * w // h), mode="area")
            up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
            x = torch.where(on.view(b, 1, 1, 1), up, x)
    if cfg.band_p > 0:
        on = _pick(b, cfg.band_p, gen).view(b, 1, 1)
        # Eyes sit at about 35-45% of the crop's height in FER-style framing.
        top = (torch.rand(b, generator=gen) * 0.12 + 0.3) * h
        height = (torch.rand(b, generator=gen) * 0.1 + 0.1) * h
        ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
        band = (ys >= top.view(b, 1, 1)) & (ys < (top + height).view(b, 1, 1)) & on
        shade = torch.where(torch.rand(b, generator=gen) < 0.8, 0.05, 0.9).view(b, 1, 1, 1)
        x = torch.where(band.unsqueeze(1).expand(b, c, h, w), shade.expand(b, c, h, w), x)
    if cfg.noise_p > 0:
        on = _pick(b, cfg.noise_p, gen).view(b, 1, 1, 1)
        sigma = (torch.rand(b, generator=gen) * cfg.noise_std).view(b, 1, 1, 1)
        x = x + torch.randn(x.shape, generator=gen) * sigma * on
    return x.clamp(0, 1)


def _motion_blur(x: torch.Tensor, max_len: int, gen: torch.Generator | None) -> torch.Tensor:
    """Each image blurred along its own random direction (one grouped convolution)."""
    b, c, h, w = x.shape
    k = max_len if max_len % 2 else max_len + 1
    r = k // 2
    length = torch.randint(2, max_len + 1, (b,), generator=gen).float()
    ang = torch.rand(b, generator=gen) * math.pi
    ys, xs = torch.meshgrid(
        torch.arange(k, dtype=torch.float32) - r,
        torch.arange(k, dtype=torch.float32) - r,
        indexing="ij",
    )
    # Distance of each tap from the line through the centre, and position along it.
    dx, dy = torch.cos(ang).view(b, 1, 1), torch.sin(ang).view(b, 1, 1)
    across = (xs * dy - ys * dx).abs()
    along = (xs * dx + ys * dy).abs()
    kern = ((1 - across).clamp(min=0) * (along <= length.view(b, 1, 1) / 2)).float()
    kern = kern / kern.sum((1, 2), keepdim=True).clamp(min=1e-6)
    weight = kern.repeat_interleave(c, 0).unsqueeze(1)  # [B*C, 1, k, k]
    padded = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)
