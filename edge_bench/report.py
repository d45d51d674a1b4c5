"""``edge-bench report``: the performance targets, measured on the real daemon.

Two kinds of runs, on the same 720p H.264 file (made from a shared video with ffmpeg):

* **throughput** (in process, :func:`edge_bench.pipeline.run_bench`): every frame of the
  file analysed as fast as possible, for 1..N parallel streams, beside decode-only and
  the naive Haar loop;
* **paced** (:func:`run_paced`): ``edge-daemon run`` in a subprocess with N file cameras
  looping in real time at 25 fps, publishing to a real Mosquitto broker. Read from
  outside, as an operator would: the daemon's own ``<prefix>/stats`` messages (frames,
  drops, capture-to-events latency percentiles over its last 1024 frames per camera),
  event delivery latency at a subscriber (receive time minus the frame's capture time
  carried in the event), CPU time and resident memory from ``/proc``.

:func:`write_report` turns the results into ``docs/PERFORMANCE.md`` with PNG plots.
Shared machines are noisy: the report quotes medians and ratios, and each run says what
else the machine was doing only in so far as the operator ran it on an idle one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from edge_bench.pipeline import BenchError
from edge_bench.soak import free_port, read_proc
from edge_daemon.ops.cpu import cpu_info

WARMUP_S = 8.0  # models loaded, queues filled, allocator settled
TICKS = os.sysconf("SC_CLK_TCK")


def _find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin"):
        if os.access(f"{folder}/mosquitto", os.X_OK):
            return f"{folder}/mosquitto"
    return None


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"broker did not listen on port {port} within {timeout} s")


class _Listener:
    """Collects stats messages and event delivery latencies (paho network thread)."""

    def __init__(self, port: int, prefix: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.stats: list[dict[str, Any]] = []
        self.event_latency_ms: list[float] = []
        self.measuring = False
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-bench")
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_: c.subscribe([(f"{prefix}/#", 1)])
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._prefix = prefix

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        now = time.time()
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self._lock:
            if msg.topic == f"{self._prefix}/stats":
                self.stats.append(doc)
            elif msg.topic.endswith("/events") and self.measuring and "ts" in doc:
                self.event_latency_ms.append((now - float(doc["ts"])) * 1000)

    def last_stats(self) -> dict[str, Any] | None:
        with self._lock:
            return self.stats[-1] if self.stats else None

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def _camera_totals(stats: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "frames": float(c.get("frames", 0)),
            "detections": float(c.get("detections_run", 0)),
            "dropped": float(c.get("dropped_frames", 0)),
            "p50": float(c.get("latency_ms_p50", 0)),
            "p99": float(c.get("latency_ms_p99", 0)),
            "capture_fps": float(c.get("capture_fps", 0)),
            "detect_p50": float(c.get("detect_ms_p50", 0)),
        }
        for name, c in stats.get("cameras", {}).items()
    }


def run_paced(
    source: Path,
    streams: int,
    seconds: float = 30.0,
    config_extra: dict[str, Any] | None = None,
    camera_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The real daemon with ``streams`` real-time cameras of ``source`` for ``seconds``.

    ``config_extra`` merges into top-level sections (``{"detector": {...}}``),
    ``camera_extra`` into every camera entry (``{"queue_size": 4}``).

    ``source`` plays at its own frame rate (make it 25 fps with ``transcode``), looping.
    """
    mosquitto = _find_mosquitto()
    if mosquitto is None:
        raise BenchError("the paced benchmark needs mosquitto (Debian: apt install mosquitto)")
    port = free_port()
    prefix = "bench"
    with tempfile.TemporaryDirectory(prefix="edge-perf-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser {user}\n"
        )
        cfg: dict[str, Any] = {
            "log_level": "warning",
            "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix},
            "cameras": [
                {
                    "name": f"cam{i}",
                    "source": {
                        "type": "file",
                        "path": str(source.resolve()),
                        "loop": True,
                        "realtime": True,
                    },
                    **(camera_extra or {}),
                }
                for i in range(streams)
            ],
        }
        cfg["mqtt"]["stats_interval_s"] = 1
        for key, value in (config_extra or {}).items():
            cfg[key] = {**cfg.get(key, {}), **value}
        cfg_path = Path(tmp) / "daemon.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        log_path = Path(tmp) / "daemon.log"
        broker = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        daemon: subprocess.Popen[bytes] | None = None
        listener: _Listener | None = None
        try:
            _wait_port(port, 10)
            listener = _Listener(port, prefix)
            with open(log_path, "wb") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "edge_daemon", "run", "-c", str(cfg_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            return _measure(daemon, listener, streams, seconds, log_path)
        finally:
            if daemon is not None and daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(15)
                except subprocess.TimeoutExpired:
                    daemon.kill()
            if listener is not None:
                listener.close()
            broker.terminate()
            broker.wait(10)


def _measure(
    daemon: subprocess.Popen[bytes],
    listener: _Listener,
    streams: int,
    seconds: float,
    log_path: Path,
) -> dict[str, Any]:
    def alive() -> None:
        if daemon.poll() is not None:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise BenchError(f"daemon exited with {daemon.returncode}:\n{tail}")

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # every camera analysing
        alive()
        last = listener.last_stats()
        cams = _camera_totals(last) if last else {}
        if len(cams) == streams and all(c["frames"] > 0 for c in cams.values()):
            break
        time.sleep(0.5)
    else:
        raise BenchError("cameras did not start analysing within 120 s")
    time.sleep(WARMUP_S)
    alive()
    start_doc = listener.last_stats() or {}
    start = _camera_totals(start_doc)
    cpu0, t0 = _cpu_seconds(daemon.pid), time.monotonic()
    listener.measuring = True
    rss: list[float] = []
    while time.monotonic() - t0 < seconds:
        alive()
        rss.append(read_proc(daemon.pid)[0])
        time.sleep(1.0)
    # Wait for the stats message that follows the window, then read the counters.
    n = len(listener.stats)
    end_wait = time.monotonic() + 5
    while len(listener.stats) == n and time.monotonic() < end_wait:
        time.sleep(0.1)
    wall = time.monotonic() - t0
    cpu = _cpu_seconds(daemon.pid) - cpu0
    listener.measuring = False
    end_doc = listener.last_stats() or {}
    end = _camera_totals(end_doc)
    # Frame counts between two stats messages, over the daemon's own clock for them.
    span = float(end_doc.get("ts", 0)) - float(start_doc.get("ts", 0))
    if span <= 0:
        raise BenchError("no stats message after the measuring window")
    frames = {k: (end[k]["frames"] - start[k]["frames"]) / span for k in end}
    dropped = {k: end[k]["dropped"] - start[k]["dropped"] for k in end}
    frames_n = sum(end[k]["frames"] - start[k]["frames"] for k in end)
    detections_n = sum(end[k]["detections"] - start[k]["detections"] for k in end)
    ev = sorted(listener.event_latency_ms)
    return {
        "streams": streams,
        "seconds": round(wall, 1),
        "processed_fps_per_stream": round(statistics.median(frames.values()), 2),
        "processed_fps_min_stream": round(min(frames.values()), 2),
        "capture_fps_per_stream": round(
            statistics.median(c["capture_fps"] for c in end.values()), 2
        ),
        "dropped_frames": int(sum(dropped.values())),
        "latency_ms_p50": round(statistics.median(c["p50"] for c in end.values()), 2),
        "latency_ms_p99_worst_stream": round(max(c["p99"] for c in end.values()), 2),
        "detect_ms_p50": round(statistics.median(c["detect_p50"] for c in end.values()), 2),
        "detections_per_frame": round(detections_n / frames_n, 3) if frames_n else None,
        "event_delivery_ms_p50": round(ev[len(ev) // 2], 1) if ev else None,
        "event_delivery_ms_max": round(ev[-1], 1) if ev else None,
        "events": len(ev),
        "cpu_cores": round(cpu / wall, 3),
        "cpu_core_fraction_per_stream": round(cpu / wall / streams, 3),
        "rss_mb_median": round(statistics.median(rss), 1) if rss else None,
        "rss_mb_max": round(max(rss), 1) if rss else None,
    }


def machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "cpu_info": cpu_info().describe(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _features_line(info: dict[str, Any] | None) -> str:
    if not info:
        return "not recorded (a report from before they were)."
    dot = "with" if info["int8_dot_product"] else "**without**"
    return f"{', '.join(info['features']) or 'none listed'} ({dot} int8 dot product)."


def _cpu_model() -> str:
    return cpu_info().model


# --------------------------------------------------------------------------- report

TARGET_REPEATS = 3  # paced runs at the largest stream count

TARGETS = {
    "pipeline_to_decode_ratio": 0.6,  # one 720p stream, every frame analysed
    "paced_streams": 8,  # 720p at 25 fps each ...
    "paced_p99_ms": 100.0,  # ... no drops, capture-to-events p99 within this
    "core_fraction_per_stream": 0.25,  # one real-time 720p 25 fps stream
    "classifier_ms_per_face": 0.5,  # int8, one thread
    "rss_mb_8_streams": 400.0,
}


def run_report(
    source: Path,
    out_md: Path,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25.0,
    sweep: tuple[int, ...] = (1, 2, 4, 8),
    seconds: float = 30.0,
    config: Path | None = None,
    progress: Any = print,
) -> dict[str, Any]:
    """Every measurement of the performance issue, then ``out_md`` and its plots."""
    from edge_bench.pipeline import run_bench, transcode
    from edge_daemon.config import ModelConfig

    results: dict[str, Any] = {"machine": machine(), "source": source.name, "fps": fps}
    with tempfile.TemporaryDirectory(prefix="edge-report-") as tmp:
        video = Path(tmp) / f"{source.stem}_{size[0]}x{size[1]}_{fps:g}fps.mp4"
        progress(f"transcoding {source.name} to {video.name}")
        transcode(source, video, *size, fps)
        results["video"] = video.name
        progress("single stream: decode, pipeline, naive loop")
        results["single"] = run_bench(video, config, streams=1, baseline=True)
        results["throughput"] = []
        for n in sweep:
            progress(f"throughput, {n} stream(s)")
            results["throughput"].append(run_bench(video, config, streams=n))
        results["paced"] = []
        for n in sweep:
            # The largest count is the one at the machine's edge, where neighbours' noise
            # decides single runs: repeat it and keep every run.
            repeats = TARGET_REPEATS if n == max(sweep) else 1
            runs = []
            for k in range(repeats):
                progress(f"paced daemon, {n} stream(s) at {fps:g} fps for {seconds:g} s "
                         f"(run {k + 1}/{repeats})")  # fmt: skip
                runs.append(run_paced(video, n, seconds))
            # The table shows the run with the median p99; the targets look at all.
            by_p99 = sorted(runs, key=lambda r: r["latency_ms_p99_worst_stream"])
            results["paced"].append(by_p99[len(by_p99) // 2] | {"runs": runs})
    progress("classifier latency")
    from edge_bench.latency import bench as bench_classifier

    # The model the daemon's defaults run on this CPU (model.bundled: auto).
    choice = ModelConfig().choose(cpu_info().int8_dot)
    results["classifier"] = bench_classifier(choice.path, threads=[1, 2], batches=[1, 8])
    results["classifier_model"] = choice.bundled
    progress("event store")
    results["outbox"] = bench_outbox_modes(events=5000, batches=(1, 50))
    results["targets"] = check_targets(results)
    write_report(results, out_md)
    return results


def _classifier_ms_per_face(results: dict[str, Any], threads: int, batch: int) -> float:
    for row in results["classifier"]["results"]:
        if row["threads"] == threads and row["batch"] == batch:
            return float(row["median_ms_per_face"])
    raise KeyError((threads, batch))


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met."""
    single = results["single"]
    paced = {r["streams"]: r for r in results["paced"]}
    rows: list[dict[str, Any]] = [
        {
            "target": "1 stream, every frame: pipeline fps >= 0.6 x decode fps",
            "measured": f"{single['pipeline_fps']} / {single['decode_fps']} fps = "
            f"{single['pipeline_to_decode_ratio']:.2f}x",
            "met": single["pipeline_to_decode_ratio"] >= TARGETS["pipeline_to_decode_ratio"],
        }
    ]
    eight = paced.get(TARGETS["paced_streams"])
    if eight is not None:
        runs = eight.get("runs") or [eight]
        rows.append(
            {
                "target": "8 streams at 25 fps: no dropped frame, p99 <= 100 ms",
                "measured": f"{len(runs)} run(s): "
                + "; ".join(
                    f"{r['dropped_frames']} dropped, p99 {r['latency_ms_p99_worst_stream']} ms, "
                    f"slowest stream {r['processed_fps_min_stream']} fps"
                    for r in runs
                ),
                "met": all(
                    r["dropped_frames"] == 0
                    and r["processed_fps_min_stream"] >= 0.95 * results["fps"]
                    and r["latency_ms_p99_worst_stream"] <= TARGETS["paced_p99_ms"]
                    for r in runs
                ),
            }
        )
        rss_max = max(r["rss_mb_max"] or 0 for r in runs)
        rows.append(
            {
                "target": "RSS <= 400 MB with 8 streams",
                "measured": f"{eight['rss_mb_median']} MB median, {rss_max} MB max "
                f"over {len(runs)} run(s)",
                "met": rss_max <= TARGETS["rss_mb_8_streams"],
            }
        )
    one = paced.get(1)
    if one is not None:
        rows.append(
            {
                "target": "1 real-time stream costs <= 25% of one core",
                "measured": f"{one['cpu_core_fraction_per_stream'] * 100:.1f}% of a core",
                "met": one["cpu_core_fraction_per_stream"] <= TARGETS["core_fraction_per_stream"],
            }
        )
    per_face = _classifier_ms_per_face(results, 1, 1)
    rows.append(
        {
            "target": "classifier int8 <= 0.5 ms per face, 1 thread "
            f"(`{results.get('classifier_model', 'fast')}`: what model.bundled auto runs here)",
            "measured": f"{per_face:.3f} ms (batch 1), "
            f"{_classifier_ms_per_face(results, 1, 8):.3f} ms (batch 8)",
            "met": per_face <= TARGETS["classifier_ms_per_face"],
        }
    )
    return rows


def _plots(results: dict[str, Any], folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    thr = results["throughput"]
    paced = results["paced"]
    n = [r["streams"] for r in thr]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(n, [r["pipeline_fps"] for r in thr], "o-", label="pipeline, total")
    ax[0].plot(n, [r["pipeline_fps_per_stream"] for r in thr], "s--", label="pipeline, per stream")
    decode_fps = results["single"]["decode_fps"]
    ax[0].axhline(decode_fps, color="grey", ls=":", label="decode only, 1 stream")
    ax[0].axhline(results["single"]["naive_fps"], color="red", ls=":", label="naive Haar loop")
    ax[0].set(xlabel="streams", ylabel="frames/s", title="Throughput (every frame analysed)")
    ax[0].set_xticks(n)
    ax[0].legend(fontsize=8)
    ax[1].plot(n, [r["analysis_ms_p50"] for r in thr], "o-", label="analysis p50")
    ax[1].plot(n, [r["analysis_ms_p99"] for r in thr], "s--", label="analysis p99")
    ax[1].set(xlabel="streams", ylabel="ms per frame", title="Analysis time per frame")
    ax[1].set_xticks(n)
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=90)
    plt.close(fig)

    m = [r["streams"] for r in paced]
    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    ax[0].plot(m, [r["processed_fps_min_stream"] for r in paced], "o-", label="slowest stream")
    ax[0].axhline(25, color="grey", ls=":", label="camera rate")
    ax[0].set(xlabel="streams", ylabel="frames/s", title="Real-time 25 fps streams", ylim=(0, 30))
    ax[0].legend(fontsize=8)
    ax[1].plot(m, [r["latency_ms_p50"] for r in paced], "o-", label="p50")
    worst = [r["latency_ms_p99_worst_stream"] for r in paced]
    ax[1].plot(m, worst, "s--", label="p99 worst stream")
    ax[1].axhline(100, color="red", ls=":", label="target p99")
    ax[1].set(xlabel="streams", ylabel="ms", title="Capture-to-events latency")
    ax[1].legend(fontsize=8)
    ax[2].plot(m, [r["cpu_cores"] for r in paced], "o-", label="CPU cores used")
    ax[2].set(xlabel="streams", ylabel="cores", title="CPU (of 2 cores) and RSS")
    twin = ax[2].twinx()
    twin.plot(m, [r["rss_mb_max"] for r in paced], "s--", color="tab:orange", label="RSS max (MB)")
    twin.set_ylabel("MB")
    ax[2].legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    for a in ax:
        a.set_xticks(m)
    fig.tight_layout()
    fig.savefig(folder / "paced.png", dpi=90)
    plt.close(fig)
    return ["throughput.png", "paced.png"]


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(out)


THROUGHPUT_COLUMNS = [
    "streams", "pipeline_fps", "pipeline_fps_per_stream", "analysis_ms_p50",
    "analysis_ms_p99", "cpu_cores_used",
]  # fmt: skip
PACED_COLUMNS = [
    "streams", "processed_fps_min_stream", "dropped_frames", "latency_ms_p50",
    "latency_ms_p99_worst_stream", "detections_per_frame", "cpu_cores",
    "cpu_core_fraction_per_stream", "rss_mb_max",
]  # fmt: skip


def write_report(results: dict[str, Any], out_md: Path) -> None:
    folder = out_md.parent / "perf"
    pngs = _plots(results, folder)
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    s = results["single"]
    mach = results["machine"]
    lines = [
        "# Performance",
        "",
        "Generated by `edge-bench report --out docs/PERFORMANCE.md --source "
        f"$EDGE_DATA_DIR/videos/{results['source']}` (raw numbers: `docs/perf/results.json`).",
        f"Machine: {mach['cpu_count']} cores ({mach['cpu']}), Python {mach['python']}, "
        f"onnxruntime {mach['onnxruntime']}, load average at start {mach['load_avg_at_start']}.",
        "CPU features that decide the classifier's speed: " + _features_line(mach.get("cpu_info")),
        f"Input: `{results['source']}` re-encoded to {results['video']} (H.264) by ffmpeg.",
        "These machines are shared and noisy: compare ratios, and re-run before trusting a "
        "single absolute number.",
        "",
        "## Targets",
        "",
        "Each target is checked against the numbers below by `check_targets` in "
        "`edge_bench/report.py`; a target marked **no** is not met on this run.",
        "",
        _table(
            [r | {"met": "yes" if r["met"] else "**no**"} for r in results["targets"]],
            ["target", "measured", "met"],
        ),
        "",
        "## One stream, side by side (same process, same file)",
        "",
        _table(
            [
                {"path": "decode only (ceiling)", "fps": s["decode_fps"], "ms/frame p50": "-"},
                {
                    "path": "daemon pipeline (defaults)",
                    "fps": s["pipeline_fps"],
                    "ms/frame p50": s["analysis_ms_p50"],
                },
                {
                    "path": "naive loop (Haar + classifier every frame)",
                    "fps": s["naive_fps"],
                    "ms/frame p50": s["naive_latency_ms_p50"],
                },
            ],
            ["path", "fps", "ms/frame p50"],
        ),
        "",
        f"Pipeline / decode: **{s['pipeline_to_decode_ratio']:.2f}x**; pipeline / naive: "
        f"**{s['pipeline_to_naive_ratio']:.1f}x**. Detector {s['detector']} every "
        f"{s['every_n_frames']} frame(s): {s['detect_ms_p50']} ms per detection; classifier "
        f"{s['classify_ms_p50_per_frame_with_faces']} ms per frame with faces; "
        f"{s['faces_per_frame']} faces per detection; {s['cpu_cores_used']} cores busy.",
        "",
        "Decode only converts every frame to BGR pixels, as `cv2.VideoCapture.read` does. "
        "The daemon converts only the frames its detector looks at (one in "
        f"{s['every_n_frames']}) and only `grab`s the others, so with decode and analysis "
        "on two threads it can come close to, or pass, the decode-only rate.",
        "",
        "## Throughput against streams (every frame analysed)",
        "",
        f"![throughput]({folder.name}/{pngs[0]})",
        "",
        _table(
            results["throughput"],
            THROUGHPUT_COLUMNS,
        ),
        "",
        "## The daemon with real-time 25 fps streams",
        "",
        "`edge-daemon run` with N file cameras looping in real time, publishing to Mosquitto. "
        "Latency is capture-to-events inside the daemon (per frame, last 1024 frames per "
        "camera); event delivery is measured at an MQTT subscriber.",
        "",
        f"![paced]({folder.name}/{pngs[1]})",
        "",
        _table(
            results["paced"],
            PACED_COLUMNS,
        ),
        "",
        f"## Classifier alone (`{results.get('classifier_model', 'fast')}`, int8, "
        "onnxruntime, per face)",
        "",
        _table(
            [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                for r in results["classifier"]["results"]
            ],
            ["threads", "batch", "median_ms", "median_ms_per_face", "p90_ms_per_face"],
        ),
        "",
        *outbox_section(results.get("outbox", [])),
    ]
    out_md.write_text("\n".join(lines))


def bench_outbox_modes(events: int, batches: tuple[int, ...]) -> list[dict[str, Any]]:
    """``edge-bench outbox`` in the system temp dir: every mode at every batch size."""
    import tempfile

    from edge_bench.outbox import MODES, bench

    out = []
    with tempfile.TemporaryDirectory(prefix="edge-bench-outbox-") as tmp:
        for batch in batches:
            for mode in MODES:
                out.append(bench(mode, events, batch, Path(tmp) / f"{mode}-{batch}"))
    return out


def outbox_section(rows: list[dict[str, Any]]) -> list[str]:
    """The durable event store's cost, as Markdown lines (empty without results)."""
    if not rows:
        return []
    return [
        "## Event store (durable outbox and history, `edge-bench outbox`)",
        "",
        "Per event, through the publisher thread's pattern: memory-only outbox against "
        "the SQLite store (`state.sync` normal or full), one commit per event (batch 1: "
        "the real-time case) or per 50 (a backlog).",
        "",
        _table(
            rows,
            [
                "mode",
                "batch",
                "add_events_per_s",
                "ack_events_per_s",
                "add_cpu_us_per_event",
                "ack_cpu_us_per_event",
            ],
        ),
        "",
    ]
