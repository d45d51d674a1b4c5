"""Per-face latency of ONNX emotion models in onnxruntime, with the CPU they ran on.

    edge-bench latency MODEL [MODEL ...] [--threads 1 2] [--batch 1 8] [--repeat N]
        [--fp32] [--providers cpu|openvino|cuda|...] [--json]
    python -m edge_bench.latency ...

MODEL is an ONNX file or a bundled name (fast, nano, fer2013, accurate). ``--fp32``
also times a float copy of each int8 model (``trainer.dequantize``; needs the ``onnx``
package of the train extra), side by side in the same run: on CPUs with int8
dot-product instructions int8 is several times faster, and this is how to check a CPU
without them. The header names the CPU and its relevant features (AVX2, AVX-512 VNNI,
ARM dot product): figures from different CPUs are not comparable.

For every (threads, batch) pair: one session with that many intra-op threads, warm-up
runs, then ``--repeat`` timed ``session.run`` calls on already normalised input (the
model alone, no cropping). Reports median and p90 milliseconds per call and per face,
plus parameters and multiply-adds when the model metadata carries them. Prints a table;
with ``--json`` the JSON goes to stdout and the table to stderr.
"""

from __future__ import annotations

import argparse
import json
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
    providers: str = "cpu",
) -> dict[str, Any]:
    import onnxruntime as ort

    from edge_daemon.classify.model import EmotionModel
    from edge_daemon.ops.cpu import cpu_info

    rows = []
    contract = None
    used: list[str] = []
    rng = np.random.default_rng(0)
    for t in threads:
        model = EmotionModel(path, providers=providers, threads=t)
        used = list(model.info.providers)
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
        "providers": used,
        "cpu": cpu_info().describe(),
        "warmup": warmup,
        "results": rows,
    }


def format_table(r: dict[str, Any]) -> str:
    head = [f"model: {r['model']} ({', '.join(r.get('providers') or ['?'])})"]
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
    ap.add_argument("model", nargs="+", help="ONNX file or bundled name (fast, nano, ...)")
    ap.add_argument("--threads", type=_positive, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=_positive, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=_positive, default=100, help="timed runs per setting")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per setting")
    ap.add_argument("--json", action="store_true", help="JSON on stdout, table on stderr")
    ap.add_argument("--fp32", action="store_true", help="also time a float copy of each int8 model")
    ap.add_argument(
        "--providers", default="cpu", help="as model.providers: cpu (default), openvino, cuda, ..."
    )


def _resolve(name: str) -> Path:
    from edge_daemon.config.schema import BUNDLED_MODELS

    return Path(BUNDLED_MODELS[name]) if name in BUNDLED_MODELS else Path(name)


def _float_copy(path: Path, tmp: Path) -> Path:
    """A float copy of an int8 (QDQ) model, for timing int8 against fp32."""
    import importlib

    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "trainer").is_dir() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))  # an editable install in a checkout (make setup)
    try:
        # Imported by name: the trainer is not part of the installed package (it runs
        # from a checkout), and its typing is not this package's.
        dequantize = importlib.import_module("trainer.dequantize").dequantize
    except ImportError as exc:
        raise SystemExit(
            f"error: --fp32 needs the trainer and the onnx package ({exc}); run it from a "
            "checkout with the train extra (make setup)"
        ) from exc
    out = tmp / f"{path.stem}_fp32.onnx"
    dequantize(path, out)
    return out


def run(args: argparse.Namespace) -> int:
    """Bench, print; 0 done, 2 a model cannot be loaded (message on stderr)."""
    import tempfile

    from edge_daemon.classify.model import ModelLoadError
    from edge_daemon.ops.cpu import cpu_info

    reports = []
    print(f"cpu: {cpu_info().line()}", file=sys.stderr if args.json else sys.stdout)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            path = _resolve(name)
            try:
                r = bench(
                    path, args.threads, args.batch, args.repeat, max(0, args.warmup), args.providers
                )
                r["name"] = name
                runs = [r]
                if args.fp32 and r["quantization"]:
                    f = bench(
                        _float_copy(path, Path(tmp)),
                        args.threads,
                        args.batch,
                        args.repeat,
                        max(0, args.warmup),
                        args.providers,
                    )
                    f["name"] = f"{name} (fp32 copy)"
                    runs.append(f)
                for x in runs:
                    reports.append(x)
                    print(format_table(x), file=sys.stderr if args.json else sys.stdout)
            except ModelLoadError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=1))
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
