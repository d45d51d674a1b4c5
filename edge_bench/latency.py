"""Per-face latency of an ONNX emotion model in onnxruntime (CPU).

    edge-bench latency MODEL.onnx [--threads 1 2] [--batch 1 8] [--repeat N] [--json]
    python -m edge_bench.latency MODEL.onnx [--threads 1 2] [--batch 1 8] [--repeat N] [--json]

For every (threads, batch) pair: one session with that many intra-op threads, warm-up
runs, then ``--repeat`` timed ``session.run`` calls on already normalised input (the
model alone, no cropping). Reports median and p90 milliseconds per call and per face,
plus parameters and multiply-adds when the model metadata carries them. Prints a table;
with ``--json`` the JSON goes to stdout and the table to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        return None


def bench(
    path: Path,
    threads: list[int],
    batches: list[int],
    repeat: int = 100,
    warmup: int = 10,
) -> dict[str, Any]:
    import onnxruntime as ort

    from edge_daemon.classify.model import EmotionModel

    rows = []
    contract = None
    rng = np.random.default_rng(0)
    for t in threads:
        model = EmotionModel(path, providers="cpu", threads=t)
        contract = model.contract
        s = contract.input_size
        for b in batches:
            shape = (b, s, s) if contract.channels == 1 else (b, s, s, 3)
            x = contract.normalize(rng.integers(0, 256, shape, dtype=np.uint8))
            feed = {model.input_name: x}
            for _ in range(warmup):
                model.session.run(None, feed)
            times = np.empty(repeat)
            for i in range(repeat):
                t0 = time.perf_counter()
                model.session.run(None, feed)
                times[i] = time.perf_counter() - t0
            ms = times * 1000
            med, p90 = float(np.median(ms)), float(np.percentile(ms, 90))
            rows.append(
                {
                    "threads": t,
                    "batch": b,
                    "median_ms": med,
                    "p90_ms": p90,
                    "median_ms_per_face": med / b,
                    "p90_ms_per_face": p90 / b,
                    "faces_per_s": 1000 * b / med if med > 0 else None,
                    "repeat": repeat,
                }
            )
    extra = contract.extra if contract is not None else {}
    return {
        "model": str(path),
        "arch": extra.get("arch"),
        "quantization": extra.get("quantization"),
        "params": _int_or_none(extra.get("params")),
        "macs": _int_or_none(extra.get("macs")),
        "input_size": None if contract is None else contract.input_size,
        "onnxruntime": ort.__version__,
        "cpu": platform.processor() or platform.machine(),
        "warmup": warmup,
        "results": rows,
    }


def format_table(r: dict[str, Any]) -> str:
    head = [f"model: {r['model']}"]
    info = []
    if r["arch"]:
        info.append(f"arch {r['arch']}")
    if r["params"] is not None:
        info.append(f"{r['params']:,} params")
    if r["macs"] is not None:
        info.append(f"{r['macs'] / 1e6:.1f} M MACs")
    if r["quantization"]:
        info.append(r["quantization"])
    if info:
        head.append(", ".join(info))
    head.append(
        f"{'threads':>7s} {'batch':>5s} {'median ms':>10s} {'p90 ms':>8s} "
        f"{'ms/face':>8s} {'p90/face':>8s} {'faces/s':>8s}"
    )
    for x in r["results"]:
        fps = x["faces_per_s"]
        head.append(
            f"{x['threads']:7d} {x['batch']:5d} {x['median_ms']:10.3f} {x['p90_ms']:8.3f} "
            f"{x['median_ms_per_face']:8.3f} {x['p90_ms_per_face']:8.3f} "
            f"{fps if fps is not None else float('nan'):8.0f}"
        )
    return "\n".join(head)


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The command line of ``edge-bench latency`` and ``python -m edge_bench.latency``."""
    ap.add_argument("model", type=Path)
    ap.add_argument("--threads", type=_positive, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=_positive, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=_positive, default=100, help="timed runs per setting")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per setting")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")


def run(args: argparse.Namespace) -> int:
    """Bench, print; 0 done, 2 the model cannot be loaded (message on stderr)."""
    from edge_daemon.classify.model import ModelLoadError

    try:
        report = bench(args.model, args.threads, args.batch, args.repeat, max(0, args.warmup))
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_table(report)
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(report, indent=1))
    else:
        print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m edge_bench.latency",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
