"""Emotion classifier architectures for 48x48 grayscale faces.

Two families:

* ``seed002``: a faithful reproduction of the reference design (two plain convolutions,
  the second 5x5 at full resolution, 2x2 max pooling between stages, four inverted
  residual blocks with expanded widths 256/256/512/512, flatten + fully connected head;
  784,263 parameters). It is the baseline the shipped model is compared with.
* ``edgefer``: this project's CPU-first MobileNetV2-style design. The expensive part of
  the reference is a dense 5x5 convolution at 48x48; here full resolution only sees one
  cheap 3x3 stem, resolution drops early, and capacity (parameters) is spent at 6x6 and
  3x3 where it costs few multiply-adds. Width/depth are constructor arguments so a
  recipe can trade accuracy for latency.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection (+ skip)."""

    def __init__(
        self, cin: int, cout: int, expand: int, stride: int = 1, project_skip: bool = False
    ) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_skip = stride == 1 and cin == cout
        # Optional skip through a 1x1 projection where the width changes; MobileNetV2
        # proper (and Seed002: its published parameter count rules it out) drops it.
        self.proj: nn.Module | None = None
        if project_skip and stride == 1 and cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.block = nn.Sequential(
            conv_bn_relu(cin, hidden, 1),
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        if self.proj is not None:
            return self.proj(x) + y
        return x + y if self.use_skip else y


class Seed002(nn.Module):
    """Reference reproduction: 782,311 parameters with 7 classes (reference: 784,263).

    The reference publishes widths and layer kinds but not every detail; this layout
    matches its description (3x3 then 5x5 plain convolutions at 48x48, 2x2 max pooling
    between stages, four inverted residual blocks expanded to 256/256/512/512 with skip
    connections where the width is unchanged, flatten + fully connected head) and its
    parameter count within 0.3%. (Projected skips on the two widening blocks would add
    41,728 parameters: 824,039, 5% over the reference.)
    """

    def __init__(self, num_classes: int = 7, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 32, 3),
            conv_bn_relu(32, 64, 5),  # the costly layer: 5x5 at full resolution
            nn.MaxPool2d(2),  # 24
            InvertedResidual(64, 128, 4),  # expanded 256
            nn.MaxPool2d(2),  # 12
            InvertedResidual(128, 128, 2),  # expanded 256
            nn.MaxPool2d(2),  # 6
            InvertedResidual(128, 256, 4),  # expanded 512
            InvertedResidual(256, 256, 2),  # expanded 512
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _FlattenHeadNet(nn.Module):
    """``features`` then a flattened spatial head: ``head_dim`` 1x1 channels at the last
    resolution, dropout, one linear layer. Flatten keeps *where* on the face a feature
    fired (mouth vs. brows); global pooling would throw that away at 3x3."""

    def _finish(
        self,
        layers: list[nn.Module],
        cin: int,
        head_dim: int,
        side: int,
        dropout: float,
        num_classes: int,
    ) -> None:
        layers.append(conv_bn_relu(cin, head_dim, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(head_dim * side * side, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class EdgeFER(_FlattenHeadNet):
    """CPU-first MobileNetV2-style classifier (see module docstring for the trade-off).

    ``stages`` lists (output width, blocks) for the 24->12, 12->6 and 6->3 transitions;
    each stage's first block downsamples. About 25 M multiply-adds and 0.76 M parameters
    with the defaults, against 175 M for ``seed002``.
    """

    def __init__(
        self,
        num_classes: int = 7,
        stem: tuple[int, int] = (24, 32),
        stages: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (192, 2)),
        expand: int = 4,
        head_dim: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        s0, s1 = stem
        layers: list[nn.Module] = [
            conv_bn_relu(1, s0, 3),  # 48x48: the only full-resolution layer
            conv_bn_relu(s0, s0, 3, 2, groups=s0),  # depthwise downsample -> 24
            conv_bn_relu(s0, s1, 1),
        ]
        cin = s1
        for cout, n in stages:
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, expand, 2 if i == 0 else 1))
                cin = cout
        self._finish(layers, cin, head_dim, 24 // 2 ** len(stages), dropout, num_classes)


class FusedMBConv(nn.Module):
    """EfficientNetV2's fused inverted residual: dense 3x3 expand (with the stride) ->
    1x1 linear projection (+ skip). At 24x24 and 12x12 with few channels a dense 3x3 runs
    far better on CPU int8 kernels (VNNI/dot-product) than 1x1 + depthwise, and it sees
    more of the face per multiply-add than a depthwise filter does.
    """

    def __init__(self, cin: int, cout: int, expand: int, stride: int = 1) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.block = nn.Sequential(
            conv_bn_relu(cin, hidden, 3, stride),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_skip else y


class EdgeFER2(_FlattenHeadNet):
    """Second-generation CPU design: fused inverted residuals where the resolution is high,
    MobileNetV2 inverted residuals where it is low.

    ``stages`` lists (kind, output width, blocks, expansion) for the 48->24, 24->12,
    12->6 and 6->3 transitions, kind ``"f"`` (FusedMBConv) or ``"m"`` (InvertedResidual);
    each stage's first block downsamples. The trade-off against ``edgefer``: about 3x the
    multiply-adds, spent on dense 3x3 filters at 24x24 and 12x12 where expression cues
    (mouth corners, brow furrows) are a few pixels wide, for roughly the same latency on
    CPUs with int8 dot-product instructions.
    """

    def __init__(
        self,
        num_classes: int = 7,
        stem: int = 32,
        stages: tuple[tuple[str, int, int, int], ...] = (
            ("f", 48, 2, 2),
            ("f", 96, 2, 2),
            ("m", 160, 3, 4),
            ("m", 224, 1, 4),
        ),
        head_dim: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu(1, stem, 3)]  # 48x48
        cin = stem
        for kind, cout, n, expand in stages:
            if kind not in ("f", "m"):
                raise ValueError(f"stage kind {kind!r} (allowed: f, m)")
            block = FusedMBConv if kind == "f" else InvertedResidual
            for i in range(n):
                layers.append(block(cin, cout, expand, 2 if i == 0 else 1))
                cin = cout
        self._finish(layers, cin, head_dim, 48 // 2 ** len(stages), dropout, num_classes)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "seed002": Seed002,
    "edgefer": EdgeFER,
    "edgefer2": EdgeFER2,
}


def build_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (allowed: {', '.join(sorted(MODELS))})")
    return MODELS[name](num_classes=num_classes, **kwargs)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, size: int = 48) -> int:
    """Multiply-adds of one forward pass (conv and linear layers), via forward hooks."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out.numel() // out.shape[0] * k

    def lin_hook(m: nn.Linear, _inp: tuple[torch.Tensor], _out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total
