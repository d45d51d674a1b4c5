"""Soak benchmark: the real daemon for a long time, memory and descriptors sampled.

Starts ``edge-daemon run`` in a subprocess on N cameras with an embedded broker (so it
needs nothing else), samples its resident memory (VmRSS), open file descriptors and
threads from ``/proc`` at a fixed interval, and reports growth: the median of the last
fifth of the samples against the median of the samples just after warm-up (model, graph
and buffers allocated). Medians, not single samples, because allocators and the OS
return memory in steps. Fails (exit 1) above ``max_growth``.

``edge-bench soak --minutes 30 --streams 4`` is the full run (not in CI); the test suite
runs a 3-minute version.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

WARMUP_FRACTION = 0.2  # samples in the first fifth are warm-up (allocation, caches)
SAMPLE_S = 5.0


class SoakError(RuntimeError):
    """The soak could not run (daemon exited, bad source); the message says why."""


@dataclass(frozen=True)
class Sample:
    t_s: float
    rss_mb: float
    fds: int
    threads: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_proc(pid: int) -> tuple[float, int, int]:
    """RSS (MB), open file descriptors and threads of process ``pid`` from /proc."""
    rss_kb = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def soak_config(streams: int, source: Path | None, fps: float, port: int) -> dict[str, Any]:
    def src(i: int) -> dict[str, Any]:
        if source is None:
            return {"type": "sample", "fps": fps}
        return {"type": "file", "path": str(source.resolve()), "loop": True, "realtime": True}

    return {
        "log_level": "warning",
        "mqtt": {"embedded_broker": {"enabled": True, "port": port}, "port": port},
        "cameras": [{"name": f"cam{i}", "source": src(i)} for i in range(streams)],
    }


def growth(values: list[float]) -> float:
    """Relative growth of the last fifth's median over the post-warm-up median."""
    n = len(values)
    start = values[int(n * WARMUP_FRACTION) : max(int(n * WARMUP_FRACTION) + 1, int(n * 0.4))]
    end = values[int(n * 0.8) :]
    base = statistics.median(start)
    return (statistics.median(end) - base) / base if base else 0.0


def run_soak(
    minutes: float,
    streams: int = 4,
    source: Path | None = None,
    fps: float = 25.0,
    interval_s: float = SAMPLE_S,
    max_growth: float = 0.05,
) -> dict[str, Any]:
    if source is not None and not source.is_file():
        raise SoakError(f"source {source} is not a file")
    with tempfile.TemporaryDirectory(prefix="edge-soak-") as tmp:
        cfg = Path(tmp) / "soak.yaml"
        cfg.write_text(yaml.safe_dump(soak_config(streams, source, fps, free_port())))
        log = Path(tmp) / "daemon.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edge_daemon", "run", "-c", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            samples: list[Sample] = []
            t0 = time.monotonic()
            try:
                while (now := time.monotonic() - t0) < minutes * 60:
                    if proc.poll() is not None:
                        tail = log.read_text(errors="replace")[-2000:]
                        raise SoakError(f"daemon exited with {proc.returncode}:\n{tail}")
                    rss, fds, threads = read_proc(proc.pid)
                    samples.append(Sample(round(now, 1), round(rss, 1), fds, threads))
                    time.sleep(interval_s)
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    if len(samples) < 10:
        raise SoakError(f"only {len(samples)} samples: run longer or sample more often")
    rss_g = growth([s.rss_mb for s in samples])
    fd_g = growth([float(s.fds) for s in samples])
    th_g = growth([float(s.threads) for s in samples])
    return {
        "minutes": minutes,
        "streams": streams,
        "source": str(source) if source else f"sample@{fps:g}fps",
        "samples": len(samples),
        "rss_mb_start": samples[int(len(samples) * WARMUP_FRACTION)].rss_mb,
        "rss_mb_end": samples[-1].rss_mb,
        "rss_mb_max": max(s.rss_mb for s in samples),
        "rss_growth": round(rss_g, 4),
        "fds_growth": round(fd_g, 4),
        "threads_growth": round(th_g, 4),
        "max_growth": max_growth,
        "ok": max(rss_g, fd_g, th_g) <= max_growth,
        "series": [asdict(s) for s in samples],
    }


def main_soak(args: Any) -> int:
    try:
        result = run_soak(args.minutes, args.streams, args.source, args.fps, args.interval)
    except SoakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if k != "series"}
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>16}: {v}")
    return 0 if result["ok"] else 1
