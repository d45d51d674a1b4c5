"""Static int8 quantization (QDQ, per-channel weights) with real calibration images.

    python -m trainer.quantize runs/edgefer/emotion_fp32.onnx -o edge_daemon/models/emotion.onnx

Calibrates on training images (never the validation split), then evaluates fp32 and int8
on validation side by side and fails (exit 1) if int8 loses more than ``--max-drop``
accuracy points. The metadata contract is copied into the quantized file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from edge_daemon.classify.model import EmotionModel
from trainer.data import DataError, FaceDataset
from trainer.metrics import summarize

MIN_CALIBRATION = 500


class QuantizeError(Exception):
    pass


def _reader(images: np.ndarray, model: EmotionModel, batch: int = 64):
    """Calibration batches of ``batch`` images, addressable by batch index.

    ``__len__``/``set_range`` let onnxruntime calibrate in strides (``CalibStridedMinMax``):
    it folds each stride's activations into its running histograms and frees them, so
    peak memory is one stride's activations instead of all calibration images' (the
    whole set kept every intermediate tensor: 2,000 images of a two-model ensemble with
    the mirrored pass ran this 24 GiB machine out of memory).
    """
    from onnxruntime.quantization import CalibrationDataReader

    n_batches = -(-len(images) // batch)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def __len__(self) -> int:
            return n_batches

        def set_range(self, start_index: int, end_index: int) -> None:
            self.i, self.end = start_index, min(end_index, n_batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= self.end:
                return None
            x = model.contract.normalize(images[self.i * batch : (self.i + 1) * batch])
            self.i += 1
            return {model.input_name: x}

        def rewind(self) -> None:
            self.i, self.end = 0, n_batches

    return Reader()


_COMPUTE = ("Conv", "Gemm", "MatMul")


def _compute_reach(g: onnx.GraphProto) -> tuple[Callable, Callable]:
    """``(before, after)``: whether a node has a Conv/Gemm/MatMul upstream / downstream."""
    producer = {out: n for n in g.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for inp in n.input:
            consumers.setdefault(inp, []).append(n)

    def reaches(start, step) -> bool:
        seen, todo = set(), list(step(start))
        while todo:
            n = todo.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if n.op_type in _COMPUTE:
                return True
            todo.extend(step(n))
        return False

    def up(n):
        return [producer[i] for i in n.input if i in producer]

    def down(n):
        return [c for out in n.output for c in consumers.get(out, [])]

    return (lambda n: reaches(n, up)), (lambda n: reaches(n, down))


def edge_nodes(model_path: Path) -> list[str]:
    """The first convolutions and the final classifiers: the layers int8 hurts most
    (raw pixels in, logits out) and that cost least to keep in float.

    "First" is a Conv with no Conv/Gemm/MatMul before it, "final" a Gemm/MatMul with none
    after it: one of each for a plain model, one per member for an ensemble graph
    (``trainer.export A.pt B.pt``).
    """
    g = onnx.load(str(model_path)).graph
    before, after = _compute_reach(g)
    firsts = [n.name for n in g.node if n.op_type == "Conv" and not before(n)]
    heads = [n.name for n in g.node if n.op_type in ("Gemm", "MatMul") and not after(n)]
    return firsts + heads


def float_glue_nodes(model_path: Path) -> list[str]:
    """Nodes with no Conv/Gemm/MatMul before them or none after them: the glue around the
    network, e.g. the mirrored copy of the input and the mean of the two passes that
    ``trainer.export --tta-hflip`` adds, or an ensemble's mean of its members' logits.

    Why keep them float: quantized, each slice of the logits gets its own calibrated
    scale, so a face and its mirror image were rounded differently and the mirrored file
    answered a mirrored face differently (up to 0.015 in probability); in float the mean
    is exactly symmetric. They cost nothing next to the convolutions.
    """
    g = onnx.load(str(model_path)).graph
    before, after = _compute_reach(g)
    # Only the data path: nodes fed by the graph's input, not weight plumbing (Identity).
    live = {i.name for i in g.input}
    data_path = []
    for n in g.node:  # ONNX nodes are topologically sorted
        if any(i in live for i in n.input):
            live.update(n.output)
            data_path.append(n)
    return [n.name for n in data_path if n.op_type not in _COMPUTE and not (before(n) and after(n))]


def quantize(
    fp32: Path,
    out: Path,
    calib: np.ndarray,
    method: str = "percentile",
    keep_edges_float: bool = False,
    reduce_range: bool = True,
) -> None:
    """Static int8 QDQ quantization of ``fp32`` into ``out``.

    ``reduce_range`` (the default) quantizes weights to 7 bits. Why: on x86 CPUs without
    VNNI, onnxruntime's u8s8 kernels add pairs of u8 x s8 products into 16-bit lanes
    (``vpmaddubsw``), which saturate for 8-bit weights (2 x 255 x 127 > 32767) but not
    for 7-bit ones (2 x 255 x 64 = 32,640); with VNNI they do not saturate at all.
    Full-range weights therefore give different results on the two kinds of CPU (the
    former 8-bit `accurate` file: 68.40% on an AVX2 CPU against 68.57% with VNNI); 7-bit
    ones cannot saturate, so both kinds compute the same sums: measured under an emulated
    AVX2-only CPU, bit-identical probabilities (tests/classify/test_int8_isa.py), at the
    accuracy cost the model card states.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Equal batches: onnxruntime's percentile calibrator cannot stack ragged ones. Trim
    # before checking the minimum, else 500..511 images would silently calibrate on 448.
    usable = len(calib) // 64 * 64
    if usable < MIN_CALIBRATION:
        raise QuantizeError(
            f"need at least {MIN_CALIBRATION} calibration images in whole batches of 64 "
            f"(so >= {-(-MIN_CALIBRATION // 64) * 64}), got {len(calib)}"
        )
    calib = calib[:usable]
    model = EmotionModel(fp32, providers="cpu")
    src = onnx.load(str(fp32))
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        glue = float_glue_nodes(pre)
        methods = {
            "percentile": CalibrationMethod.Percentile,
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
        }
        if method not in methods:
            raise QuantizeError(f"calibration method {method!r} (allowed: {', '.join(methods)})")
        quantize_static(
            str(pre),
            str(out),
            _reader(calib, model),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            reduce_range=reduce_range,
            nodes_to_exclude=edge_nodes(pre) + glue if keep_edges_float else [],
            # One batch per stride: a calibrator keeps every intermediate tensor of what it
            # has been fed until the stride ends (see _reader).
            extra_options={"CalibPercentile": 99.99, "CalibStridedMinMax": 1},
        )
    q = onnx.load(str(out))
    del q.metadata_props[:]
    for p in src.metadata_props:
        q.metadata_props.add(key=p.key, value=p.value)
    bits = "7-bit weights (reduce_range)" if reduce_range else "8-bit weights"
    desc = f"int8 static QDQ per-channel, {bits}, {method} calibration on {len(calib)} train images"
    if keep_edges_float:
        desc += ", first conv and classifier kept float"
        if glue:  # a mirrored pass or an ensemble's mean
            desc += " (and the ops around them)"
    q.metadata_props.add(key="quantization", value=desc)
    q.doc_string = src.doc_string
    onnx.checker.check_model(q)
    onnx.save(q, str(out))


def evaluate_model(path: Path, val: FaceDataset, threads: int = 2) -> dict:
    model = EmotionModel(path, providers="cpu", threads=threads)
    probs = np.concatenate(
        [model.predict(val.images[i : i + 256]) for i in range(0, len(val), 256)]
    )
    return summarize(val.labels, probs, model.labels)


def main(argv: list[str] | None = None) -> int:
    from trainer.config import TrainConfigError, load_train_config
    from trainer.train import load_data

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path, help="fp32 ONNX exported by trainer.export")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--config", type=Path, help="training config naming the data (default: run's)")
    ap.add_argument("--calibration", type=int, default=2000, help="calibration images (>= 512)")
    ap.add_argument("--method", default="percentile", help="percentile | minmax | entropy")
    ap.add_argument(
        "--keep-edges-float", action="store_true", help="keep first conv and classifier float"
    )
    ap.add_argument(
        "--full-range",
        action="store_true",
        help="8-bit weights: results then differ between CPUs with and without VNNI",
    )
    ap.add_argument("--max-drop", type=float, default=0.5, help="allowed accuracy loss, points")
    ap.add_argument("--report", type=Path, help="write fp32/int8 metrics as JSON here")
    args = ap.parse_args(argv)
    from edge_daemon.classify.model import ModelLoadError

    cfg_path = args.config or args.model.parent / "config.yaml"
    try:
        if not args.model.is_file():
            raise QuantizeError(f"{args.model}: no such model file (trainer.export writes one)")
        EmotionModel(args.model, providers="cpu")  # a bad file is refused before data is read
        cfg = load_train_config(cfg_path if cfg_path.exists() else None, [])
        train, val = load_data(cfg, log=False)
        rng = np.random.default_rng(0)
        calib = train.images[rng.permutation(len(train))[: args.calibration]]
        quantize(
            args.model,
            args.output,
            calib,
            args.method,
            args.keep_edges_float,
            reduce_range=not args.full_range,
        )
        fp = evaluate_model(args.model, val)
        q = evaluate_model(args.output, val)
    except (QuantizeError, DataError, ModelLoadError, TrainConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    drop = (fp["accuracy"] - q["accuracy"]) * 100
    print(f"{'':8s} {'accuracy':>9s} {'macro F1':>9s} {'ECE':>7s}")
    for name, r in (("fp32", fp), ("int8", q)):
        print(f"{name:8s} {r['accuracy']:9.4f} {r['macro_f1']:9.4f} {r['ece']:7.4f}")
    print(f"int8 accuracy change: {-drop:+.2f} points (limit -{args.max_drop})")
    if args.report:
        args.report.write_text(json.dumps({"fp32": fp, "int8": q, "drop_points": drop}, indent=1))
    if drop > args.max_drop:
        print(f"error: int8 loses {drop:.2f} points > {args.max_drop}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
