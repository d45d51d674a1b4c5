"""Recover a float graph from a QDQ int8 model, so that a shipped model whose fp32 export
was not kept can be quantized again (for example with 7-bit weights).

    python -m trainer.dequantize edge_daemon/models/emotion.onnx -o /tmp/emotion_fp32.onnx
    python -m trainer.quantize /tmp/emotion_fp32.onnx -o OUT.onnx --config CONFIG ...

What comes back is not the original fp32 model: every weight and bias is the int8 file's
dequantized value (``scale * (q - zero_point)``, exactly), so the weights sit on that
file's 8-bit grid, and each activation quantize/dequantize pair becomes a ``Clip`` to the
range the pair could represent (the activations are float again, and a Relu the quantizer
folded into that range stays applied). Requantizing therefore rounds twice; the model card
states what that costs, measured. The metadata contract travels unchanged, minus the
``quantization`` description (the float file is not quantized), plus
``dequantized_from`` (the int8 file's sha256 prefix).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np


class DequantizeError(Exception):
    """The model cannot be dequantized; the message says why."""


def _array(inits: dict, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(inits[name])


def _dequantized(node, inits: dict) -> np.ndarray:
    """The float value of a DequantizeLinear whose input is an initializer."""
    q = _array(inits, node.input[0]).astype(np.float64)
    scale = _array(inits, node.input[1]).astype(np.float64)
    zero = (
        _array(inits, node.input[2]).astype(np.float64)
        if len(node.input) > 2 and node.input[2]
        else np.zeros_like(scale)
    )
    if scale.ndim == 1 and scale.size > 1:  # per channel, along the node's axis
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero) * scale).astype(np.float32)


def _clip_range(q, inits: dict) -> tuple[float, float]:
    """The float interval a per-tensor QuantizeLinear can represent."""
    scale = float(_array(inits, q.input[1]))
    zp = _array(inits, q.input[2]) if len(q.input) > 2 and q.input[2] else np.uint8(0)
    info = np.iinfo(zp.dtype)
    zero = int(zp)
    return scale * (info.min - zero), scale * (info.max - zero)


def dequantize_model(model):
    """A float copy of a QDQ ``onnx.ModelProto`` (see the module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {out: n for n in g.node for out in n.output}
    if not any(n.op_type == "DequantizeLinear" for n in g.node):
        raise DequantizeError("the model has no DequantizeLinear nodes: it is not a QDQ int8 model")
    nodes, new_inits, dropped_q = [], [], set()
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            nodes.append(n)
            continue
        if n.input[0] in inits:  # a weight or a bias: becomes a float initializer
            new_inits.append(numpy_helper.from_array(_dequantized(n, inits), n.output[0]))
            continue
        q = producer.get(n.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            raise DequantizeError(
                f"DequantizeLinear {n.name!r} reads {n.input[0]!r}, which no QuantizeLinear "
                "writes: not a QDQ graph this tool understands"
            )
        # A Clip to the pair's representable range, not an Identity: onnxruntime's
        # quantizer folds a Relu or Relu6 that follows a Conv into the range of its
        # QuantizeLinear (zero point 0), so the clamp is part of the model. The output
        # keeps its name, so a graph output or several consumers need no special case.
        lo, hi = _clip_range(q, inits)
        names = (f"{n.output[0]}_clip_min", f"{n.output[0]}_clip_max")
        new_inits.append(numpy_helper.from_array(np.array(lo, np.float32), names[0]))
        new_inits.append(numpy_helper.from_array(np.array(hi, np.float32), names[1]))
        nodes.append(helper.make_node("Clip", [q.input[0], *names], [n.output[0]], name=n.name))
        dropped_q.add(q.output[0])
    nodes = [n for n in nodes if not (n.op_type == "QuantizeLinear" and n.output[0] in dropped_q)]
    left = [n.name or n.output[0] for n in nodes if n.op_type == "QuantizeLinear"]
    if left:
        raise DequantizeError(f"QuantizeLinear nodes without a DequantizeLinear: {left[:3]}")
    used = {i for n in nodes for i in n.input} | {o.name for o in g.output}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    del out.graph.initializer[:]
    out.graph.initializer.extend(
        [t for t in g.initializer if t.name in used and t.name not in {i.name for i in new_inits}]
        + new_inits
    )
    # Value infos of the removed int8 tensors would contradict the float graph.
    kept = {o for n in nodes for o in n.output}
    infos = [v for v in g.value_info if v.name in kept and v.name not in dropped_q]
    del out.graph.value_info[:]
    out.graph.value_info.extend(infos)
    # The float file is not quantized, and an earlier round's source is replaced.
    dropped = ("quantization", "dequantized_from")
    meta = [(p.key, p.value) for p in model.metadata_props if p.key not in dropped]
    del out.metadata_props[:]
    for key, value in meta:
        out.metadata_props.add(key=key, value=value)
    sha = hashlib.sha256(model.SerializeToString()).hexdigest()[:12]
    out.metadata_props.add(key="dequantized_from", value=sha)
    onnx.checker.check_model(out)
    return out


def dequantize(src: Path, dst: Path) -> dict:
    """Write the float copy of ``src`` to ``dst``; returns a small report: the number of
    float tensors restored and the largest probability change on 64 synthetic crops."""
    import onnx
    from google.protobuf.message import DecodeError

    from edge_daemon.classify.model import EmotionModel

    try:
        model = onnx.load(str(src))
    except DecodeError as exc:
        raise DequantizeError(f"{src}: not an ONNX file ({exc})") from exc
    fp = dequantize_model(model)
    onnx.save(fp, str(dst))
    a, b = EmotionModel(src, providers="cpu"), EmotionModel(dst, providers="cpu")
    c = a.contract
    rng = np.random.default_rng(0)
    shape = (64, c.input_size, c.input_size) + ((3,) if c.channels == 3 else ())
    crops = rng.integers(0, 256, shape, dtype=np.uint8)
    diff = float(np.abs(a.predict(crops) - b.predict(crops)).max())
    inits = {t.name for t in model.graph.initializer}
    restored = sum(
        1 for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    )
    return {"tensors_restored": restored, "max_prob_change": diff}


def main(argv: list[str] | None = None) -> int:
    from edge_daemon.classify.model import ModelLoadError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path, help="QDQ int8 ONNX (e.g. a bundled model)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    import onnx

    try:
        if not args.model.is_file():
            raise DequantizeError(f"{args.model}: no such model file")
        r = dequantize(args.model, args.output)
    except (DequantizeError, ModelLoadError, onnx.checker.ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.output}: {r['tensors_restored']} weight/bias tensors restored; largest "
        f"probability change against the int8 file on 64 synthetic crops "
        f"{r['max_prob_change']:.4f} (activation rounding only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
