"""Command line: ``edge-bench pipeline|report|soak|latency|outbox``.

Exit codes: 0 success, 1 a measured limit exceeded (soak growth), 2 user error (bad
source, size, config, model or arguments). User errors print one clear message on stderr
and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edge_daemon.app.cli import setup_logging

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def cmd_pipeline(args: argparse.Namespace) -> int:
    from edge_bench.pipeline import BenchError, parse_size, run_bench, transcode

    setup_logging("warning")
    try:
        if not args.source.is_file():
            raise BenchError(f"{args.source}: no such file")
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
            source = args.source
            if args.size:
                source = transcode(
                    source, Path(tmp) / "input.mp4", *parse_size(args.size), args.fps
                )
            result = run_bench(
                source,
                args.config,
                streams=args.streams,
                max_frames=args.frames,
                baseline=args.baseline,
            )
    except (BenchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from edge_bench.pipeline import BenchError, parse_size
    from edge_bench.report import run_report

    setup_logging("warning")
    try:
        if not args.source.is_file():
            raise BenchError(f"{args.source}: no such file")
        sweep = tuple(int(v) for v in args.sweep.split(",")) if args.sweep else (1, 2, 4, 8)
        size = parse_size(args.size)
        result = run_report(
            args.source,
            args.out,
            size=size,
            fps=args.fps,
            sweep=sweep,
            seconds=args.seconds,
            config=args.config,
            progress=lambda m: print(f"report: {m}", file=sys.stderr, flush=True),
        )
    except (BenchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for row in result["targets"]:
        mark = "met" if row["met"] else "NOT met"
        print(f"{mark:>8}  {row['target']}: {row['measured']}")
    print(f"wrote {args.out}")
    return EXIT_OK


def cmd_soak(args: argparse.Namespace) -> int:
    from edge_bench.soak import main_soak

    return main_soak(args)


def cmd_latency(args: argparse.Namespace) -> int:
    from edge_bench.latency import run

    return run(args)


def cmd_outbox(args: argparse.Namespace) -> int:
    from edge_bench.outbox import run

    if args.events < 1 or any(b < 1 for b in args.batch):
        print("error: --events and --batch must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    return run(args)


def cmd_parity(args: argparse.Namespace) -> int:
    from edge_bench.parity import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from edge_bench import latency, outbox, parity

    p = argparse.ArgumentParser(
        prog="edge-bench",
        description="Measuring tools for the edge daemon (not part of the runtime)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("pipeline", help="benchmark the pipeline on a video file")
    b.add_argument("--source", type=Path, required=True, help="video file")
    b.add_argument("-c", "--config", type=Path, help="config for detector/model settings")
    b.add_argument("--streams", type=int, default=1, help="parallel streams of the same file")
    b.add_argument("--frames", type=int, default=0, help="frames per stream (0 = whole file)")
    b.add_argument("--baseline", action="store_true", help="also run the naive Haar-per-frame loop")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--size", help="re-encode the source to WIDTHxHEIGHT H.264 first (ffmpeg)")
    b.add_argument("--fps", type=float, default=25.0, help="frame rate of the re-encoded file")
    b.set_defaults(func=cmd_pipeline)

    r = sub.add_parser(
        "report",
        help="run every performance measurement; write a Markdown report with plots",
    )
    r.add_argument(
        "--out",
        type=Path,
        required=True,
        help="Markdown file to write (plots and results.json go to perf/ beside it)",
    )
    r.add_argument("--source", type=Path, required=True, help="video file")
    r.add_argument(
        "--size", default="1280x720", help="re-encode the source to WIDTHxHEIGHT (ffmpeg)"
    )
    r.add_argument("--fps", type=float, default=25.0, help="frame rate of the re-encoded file")
    r.add_argument("--sweep", help="stream counts, e.g. 1,2,4,8 (the default)")
    r.add_argument("--seconds", type=float, default=30.0, help="length of each paced run")
    r.add_argument("-c", "--config", type=Path, help="config for detector/model settings")
    r.set_defaults(func=cmd_report)

    s = sub.add_parser("soak", help="run the daemon for a long time; report RSS/fd growth")
    s.add_argument("--minutes", type=float, default=30.0)
    s.add_argument("--streams", type=int, default=4)
    s.add_argument("--source", type=Path, help="video file (looped, real time); default: sample")
    s.add_argument("--fps", type=float, default=25.0, help="fps of the sample cameras")
    s.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    s.add_argument("--out", type=Path, help="write the full series as JSON here")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_soak)

    lat = sub.add_parser(
        "latency",
        help="per-face latency of an ONNX emotion model",
        description=latency.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    latency.add_arguments(lat)
    lat.set_defaults(func=cmd_latency)

    ob = sub.add_parser(
        "outbox",
        help="what the durable event store costs per event",
        description=outbox.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    outbox.add_arguments(ob)
    ob.set_defaults(func=cmd_outbox)

    par = sub.add_parser(
        "parity",
        help="same frames, same boxes and probabilities on two platforms",
        description=parity.__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parity.add_arguments(par)
    par.set_defaults(func=cmd_parity)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
