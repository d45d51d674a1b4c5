"""Warm-start from an exported model (``model.init: FILE.onnx``): fine-tune a shipped
model whose PyTorch checkpoint was not kept.

An exported file has its batch norms folded into the convolutions (``W' = W * g / s``,
``b' = beta - g * mu / s``) and, when it is int8, its weights on an 8-bit grid. Both are
undone as far as they can be:

- The weights are the file's (dequantized first if it is QDQ int8), matched to the
  PyTorch modules by the module path that ``torch.onnx.export`` writes into each node
  name (``/features/features.1/block/block.0/block.0.0/Conv`` is ``features.1.block.0.0``),
  with every shape checked.
- Each batch norm is *unfolded* so that the network computes what the file computes and
  still trains like a normal one: its running mean and variance are set to the measured
  per-channel statistics of its input on training images (``mu``, ``var``), its scale to
  ``sqrt(var + eps)`` and its shift to ``mu + b'``. In eval mode it is then exactly
  ``x + b'``; in training mode its batch statistics are close to the running ones, so
  the first steps start from the shipped model's function instead of a rescaled one
  (setting the norms to the identity instead would make training-mode batch statistics
  rescale every layer at the first step).

What cannot be undone: the int8 file's weights are its rounded values, and a Relu that
the quantizer folded into an activation range also clipped from above (a ``Clip`` in the
dequantized graph); PyTorch's Relu does not. :func:`import_report` measures the result
against the file, and training refuses to start when the two disagree on more than
:data:`MAX_DISAGREEMENT` of the crops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Share of crops on which the imported network and the file may name different classes.
MAX_DISAGREEMENT = 0.01
# Training images the batch-norm statistics are measured on (a few batches' worth is
# plenty for per-channel means; more only costs time before the first epoch).
STAT_IMAGES = 2048


class OnnxInitError(ValueError):
    """The file cannot seed this model; the message names what differs."""


@dataclass(frozen=True)
class FoldedLayer:
    module: str  # PyTorch module path of the Conv2d or Linear
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class OnnxWeights:
    layers: tuple[FoldedLayer, ...]
    meta: dict[str, str]
    float_model: Any  # the float onnx.ModelProto the layers came from (for the check)


def module_path(node_name: str) -> str:
    """``/features/features.1/block/block.0/block.0.0/Conv`` -> ``features.1.block.0.0``.

    torch.onnx.export names a node by its scope: each segment is the child's qualified
    name relative to the module whose attribute it is (``features.1`` under ``features``).
    """
    segments = [s for s in node_name.split("/") if s][:-1]
    parts: list[str] = []
    prev = ""
    for seg in segments:
        parts.append(seg[len(prev) + 1 :] if prev and seg.startswith(prev + ".") else seg)
        prev = seg
    return ".".join(parts)


def read_onnx_weights(path: Path) -> OnnxWeights:
    """The Conv and Gemm weights of an exported model, float, keyed by module path."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    from trainer.dequantize import dequantize_model

    try:
        model = onnx.load(str(path))
    except (DecodeError, OSError) as exc:
        raise OnnxInitError(f"{path}: not a readable ONNX file ({exc})") from exc
    if any(n.op_type == "DequantizeLinear" for n in model.graph.node):
        model = dequantize_model(model)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = []
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        if not n.name or n.input[1] not in inits:
            raise OnnxInitError(
                f"{path}: node {n.name or n.output[0]!r} has no module path or no constant "
                "weight: only files written by trainer.export can seed a training"
            )
        bias = inits.get(n.input[2]) if len(n.input) > 2 else None
        layers.append(FoldedLayer(module_path(n.name), inits[n.input[1]], bias))
    meta = {p.key: p.value for p in model.metadata_props}
    return OnnxWeights(tuple(layers), meta, model)


def check_contract(
    meta: dict[str, str], path: Path, arch: str, labels: list[str], mean: float, std: float
) -> None:
    """Refuse a file whose architecture, labels or normalisation differ from the run's."""
    if meta.get("arch") != arch:
        raise OnnxInitError(
            f"model.init: {path} is a {meta.get('arch')!r}, this run builds {arch!r}"
        )
    if json.loads(meta.get("labels", "[]")) != labels:
        raise OnnxInitError(
            f"model.init: {path} outputs {meta.get('labels')}, the trainer {labels}"
        )
    theirs = (float(meta.get("mean", "nan")), float(meta.get("std", "nan")))
    if theirs != (mean, std):
        raise OnnxInitError(
            f"model.init: {path} was trained on inputs normalised with mean/std {theirs}, "
            f"this run uses {(mean, std)}: set preprocess.mean and preprocess.std to the file's"
        )
    if meta.get("tta", "none") != "none":
        raise OnnxInitError(
            f"model.init: {path} has a mirrored-face pass built in: seed from a file "
            "exported without --tta"
        )


def _following_norm(model: nn.Module, name: str) -> nn.BatchNorm2d | None:
    """The BatchNorm2d right after module ``name`` in its parent Sequential, if any."""
    parent_name, _, index = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if not isinstance(parent, nn.Sequential) or not index.isdigit():
        return None
    nxt = int(index) + 1
    if nxt < len(parent) and isinstance(parent[nxt], nn.BatchNorm2d):
        norm = parent[nxt]
        assert isinstance(norm, nn.BatchNorm2d)
        return norm
    return None


def load_folded(model: nn.Module, weights: OnnxWeights, path: Path) -> list[nn.BatchNorm2d]:
    """Copy the file's weights into ``model`` with every following batch norm set to the
    identity plus the folded bias; returns those norms (for :func:`unfold_norms`)."""
    wanted = {name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    found = {layer.module for layer in weights.layers}
    if wanted != found:
        raise OnnxInitError(
            f"model.init: {path} does not fit this model: layers only in the file "
            f"{sorted(found - wanted)[:4]}, only in the model {sorted(wanted - found)[:4]} "
            "(set model.kwargs to the ones it was trained with)"
        )
    norms = []
    with torch.no_grad():
        for layer in weights.layers:
            m = model.get_submodule(layer.module)
            assert isinstance(m, (nn.Conv2d, nn.Linear))
            w = torch.from_numpy(np.array(layer.weight, dtype=np.float32))
            if isinstance(m, nn.Linear) and w.shape != m.weight.shape:
                w = w.T  # a Gemm with transB=0 stores the transpose
            if w.shape != m.weight.shape:
                raise OnnxInitError(
                    f"model.init: {path}: {layer.module} has weights {tuple(w.shape)}, the "
                    f"model {tuple(m.weight.shape)} (set model.kwargs to the file's)"
                )
            m.weight.copy_(w)
            bias = (
                torch.zeros(m.weight.shape[0])
                if layer.bias is None
                else torch.from_numpy(np.array(layer.bias, dtype=np.float32))
            )
            norm = _following_norm(model, layer.module) if isinstance(m, nn.Conv2d) else None
            if norm is not None:
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(1) = x exactly
                norm.weight.fill_(1.0)
                norm.bias.copy_(bias)
                norms.append(norm)
            elif m.bias is not None:
                m.bias.copy_(bias)
            elif layer.bias is not None and np.any(layer.bias):
                raise OnnxInitError(
                    f"model.init: {path}: {layer.module} has a bias in the file but neither "
                    "a bias nor a batch norm in the model"
                )
    return norms


def unfold_norms(model: nn.Module, norms: list[nn.BatchNorm2d], x: torch.Tensor) -> None:
    """Give each identity norm the statistics of its input on ``x`` without changing what
    the network computes in eval mode (see the module docstring)."""
    stats: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        t = inp[0].detach().double()
        s, sq, n = stats.get(id(mod), (0.0, 0.0, 0))
        stats[id(mod)] = (
            s + t.sum(dim=(0, 2, 3)),
            sq + (t * t).sum(dim=(0, 2, 3)),
            n + t.shape[0] * t.shape[2] * t.shape[3],
        )

    handles = [nm.register_forward_hook(hook) for nm in norms]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in torch.split(x, 256):
                model(batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    with torch.no_grad():
        for nm in norms:
            s, sq, n = stats[id(nm)]
            mu = s / n
            var = (sq / n - mu * mu).clamp_min(0.0)
            nm.running_mean.copy_(mu.float())
            nm.running_var.copy_(var.float())
            nm.weight.copy_(torch.sqrt(var + nm.eps).float())
            nm.bias.add_(mu.float())


def import_report(model: nn.Module, float_model: Any, x: torch.Tensor) -> dict[str, float]:
    """How far the imported network (eval mode) is from the file: the largest logit
    difference and the share of crops whose top class differs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = sess.run(None, {name: x.numpy()})[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ours = model(x).numpy()
    model.train(was_training)
    return {
        "max_logit_diff": float(np.abs(ours - ref).max()),
        "top1_disagreement": float(np.mean(ours.argmax(1) != ref.argmax(1))),
    }
