"""``edge-bench pipeline``: the full analysis pipeline as fast as possible on a video file.

Passes in the same process on the same file: decode only (the ceiling), then the
daemon's analysis (detect + classify + track + policy) on every frame, in ``streams``
parallel streams that share one emotion model (as the daemon does), and with ``baseline``
the original demo's naive loop (Haar cascade + classifier on every frame, one thread).

As in the daemon, each stream decodes in one thread and analyses in another, so decoding
overlaps analysis; unlike the daemon, the hand-over queue blocks instead of dropping, so
every frame is analysed. ``analysis_ms`` is the analysis time per frame, ``latency_ms``
runs from the end of a frame's decode to the end of its analysis (it includes queueing,
so it grows when decode outruns analysis). Numbers vary with machine load: compare
ratios (``pipeline_fps / decode_fps``) between runs, not absolute values.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_daemon.classify.model import EmotionModel, ModelLoadError
from edge_daemon.config import AppConfig, ConfigError, load_config
from edge_daemon.detect.blazeface import DetectorError, InterpreterPool
from edge_daemon.ops.cpu import cpu_info
from edge_daemon.types import Frame

BENCH_QUEUE = 4  # decoded frames buffered per stream (decode runs ahead of analysis)
NAIVE_MAX_FRAMES = 120  # frames timed for the naive baseline


class BenchError(Exception):
    pass


def decode_only(path: Path, max_frames: int = 0) -> tuple[int, float, tuple[int, int]]:
    """Frames decoded, seconds taken, and (width, height)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BenchError(f"{path}: cannot open as a video")
    n, size = 0, (0, 0)
    t0 = time.perf_counter()
    while not max_frames or n < max_frames:
        ok, img = cap.read()
        if not ok:
            break
        n += 1
        size = (img.shape[1], img.shape[0])
    dt = time.perf_counter() - t0
    cap.release()
    if n == 0:
        raise BenchError(f"{path}: no decodable frames")
    return n, dt, size


def naive_loop(path: Path, model: EmotionModel, max_frames: int = 0) -> dict[str, float]:
    """The original demo's per-frame loop, as the baseline: OpenCV's Haar cascade on the
    full grayscale frame, then the classifier on every face, every frame, one thread.

    Faces are cropped with the model's own contract (so the classifier does the same work
    as in the daemon); only detection and the absence of tracking differ.
    """
    from edge_daemon.classify.crop import crop_faces

    # cv2.data exists at run time but not in OpenCV's type stubs.
    cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    if not hasattr(cv2, "CascadeClassifier") or not cascade_path.is_file():
        raise BenchError("this OpenCV build has no Haar cascade (needs OpenCV 4.x with data)")
    cascade = cv2.CascadeClassifier(str(cascade_path))
    cap = cv2.VideoCapture(str(path))
    n = faces = 0
    lat: list[float] = []
    t0 = time.perf_counter()
    while not max_frames or n < max_frames:
        ok, img = cap.read()
        if not ok:
            break
        t = time.perf_counter()
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        if len(boxes):
            xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)
            model.predict(crop_faces(img, xyxy, model.contract))
            faces += len(boxes)
        lat.append((time.perf_counter() - t) * 1000)
        n += 1
    wall = time.perf_counter() - t0
    cap.release()
    if n == 0:
        raise BenchError(f"{path}: no decodable frames")
    return {
        "naive_fps": round(n / wall, 1),
        "naive_latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "naive_faces_per_frame": round(faces / n, 3),
    }


def _config_for(source: Path, config: Path | None) -> AppConfig:
    try:
        if config is not None:
            return load_config(config)
        return AppConfig.model_validate(
            {"cameras": [{"name": "bench", "source": {"type": "file", "path": str(source)}}]}
        )
    except ConfigError as exc:
        raise BenchError("; ".join(str(i) for i in exc.errors)) from exc


def run_bench(
    source: Path,
    config: Path | None = None,
    streams: int = 1,
    max_frames: int = 0,
    baseline: bool = False,
) -> dict[str, Any]:
    from edge_daemon.pipeline import CameraAnalyzer

    if not source.is_file():
        raise BenchError(f"{source}: no such file")
    if streams < 1:
        raise BenchError("--streams must be >= 1")
    cfg = _config_for(source, config)
    try:
        model = EmotionModel(
            cfg.model.choose(cpu_info().int8_dot).path,  # what the daemon would run here
            cfg.model.providers,
            cfg.model.intra_op_threads,
            cfg.model.tta_hflip,
            cfg.model.tta_hflip_below,
        )
    except ModelLoadError as exc:
        raise BenchError(str(exc)) from exc

    n_dec, t_dec, size = decode_only(source, max_frames)

    cam_cfg = cfg.cameras[0]
    try:
        # One interpreter pool for every stream, as in the daemon.
        pool = InterpreterPool(cfg.detector.model, os.cpu_count() or 1, cfg.detector.threads)
        analyzers = [
            CameraAnalyzer(cam_cfg.model_copy(update={"name": f"bench{i}"}), cfg, model, pool)
            for i in range(streams)
        ]
    except DetectorError as exc:
        raise BenchError(str(exc)) from exc
    pixels_every_n = cfg.detector.every_n_frames
    latencies: list[list[float]] = [[] for _ in range(streams)]
    work_ms: list[list[float]] = [[] for _ in range(streams)]
    events = [0] * streams
    errors: list[str] = []
    done = object()  # end-of-stream marker

    demands = [threading.Event() for _ in range(streams)]

    def decoder(i: int, frames: queue.Queue[Any]) -> None:
        # The daemon's capture thread: decode only, hand over, never analyse.
        # Like the daemon's capture: pixels only for the frames the detector will see.
        cap = cv2.VideoCapture(str(source))
        seq = 0
        size: tuple[int, int] | None = None
        try:
            while not max_frames or seq < max_frames:
                if size is not None and seq % pixels_every_n and not demands[i].is_set():
                    if not cap.grab():
                        break
                    frame = Frame(f"bench{i}", seq, time.time(), time.monotonic(), None, size)
                else:
                    ok, img = cap.read()
                    if not ok:
                        break
                    size = (img.shape[1], img.shape[0])
                    frame = Frame(f"bench{i}", seq, time.time(), time.monotonic(), img)
                frames.put(frame)
                seq += 1
        finally:
            cap.release()
            frames.put(done)

    def analyser(i: int) -> None:
        # The daemon's pipeline thread. A blocking queue (not the daemon's drop-oldest
        # one) so that every frame of the file is analysed: this is a throughput test.
        frames: queue.Queue[Any] = queue.Queue(maxsize=BENCH_QUEUE)
        dec = threading.Thread(target=decoder, args=(i, frames), daemon=True)
        an = analyzers[i]
        try:
            an.open()
            dec.start()
            while (frame := frames.get()) is not done:
                t = time.monotonic()
                events[i] += len(an.process(frame))
                end = time.monotonic()
                if an.wants_every_frame != demands[i].is_set():
                    (demands[i].set if an.wants_every_frame else demands[i].clear)()
                work_ms[i].append((end - t) * 1000)
                latencies[i].append((end - frame.mono) * 1000)
            events[i] += len(an.flush())
        except Exception as exc:  # noqa: BLE001 - reported with the stream number, then re-raised as BenchError
            errors.append(f"stream {i}: {exc!r}")
            while dec.is_alive() and frames.get() is not done:  # let the decoder finish
                pass
        finally:
            an.close()

    threads = [threading.Thread(target=analyser, args=(i,)) for i in range(streams)]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if errors:
        raise BenchError("; ".join(errors))

    lat = np.concatenate([np.asarray(x, np.float64) for x in latencies])
    work = np.concatenate([np.asarray(x, np.float64) for x in work_ms])
    frames = int(lat.size)
    det_runs = sum(a.metrics.detections_run for a in analyzers)
    faces = sum(a.metrics.faces for a in analyzers)
    mirrored = sum(a.metrics.faces_mirrored for a in analyzers)
    det_ms = np.concatenate([a.metrics.detect_ms.values() for a in analyzers])
    cls_ms = np.concatenate([a.metrics.classify_ms.values() for a in analyzers])
    decode_fps = n_dec / t_dec
    pipeline_fps = frames / wall
    # The naive loop is slow (a Haar pass takes ~0.3 s on a 720p frame): its rate is
    # clear after a hundred frames.
    naive_frames = min(max_frames or NAIVE_MAX_FRAMES, NAIVE_MAX_FRAMES)
    naive = naive_loop(source, model, naive_frames) if baseline else {}
    if naive:
        naive["pipeline_to_naive_ratio"] = round(pipeline_fps / streams / naive["naive_fps"], 2)
    return naive | {
        "source": source.name,
        "width": size[0],
        "height": size[1],
        "streams": streams,
        "frames": frames,
        "decode_fps": round(decode_fps, 1),
        "pipeline_fps": round(pipeline_fps, 1),
        "pipeline_fps_per_stream": round(pipeline_fps / streams, 1),
        "pipeline_to_decode_ratio": round(pipeline_fps / decode_fps, 3),
        "analysis_ms_p50": round(float(np.percentile(work, 50)), 2),
        "analysis_ms_p99": round(float(np.percentile(work, 99)), 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 2),
        "cpu_cores_used": round(cpu / wall, 2),
        "detect_ms_p50": round(float(np.median(det_ms)), 2) if det_ms.size else 0.0,
        "classify_ms_p50_per_frame_with_faces": (
            round(float(np.median(cls_ms)), 2) if cls_ms.size else 0.0
        ),
        "faces_per_frame": round(faces / det_runs, 3) if det_runs else 0.0,
        # model.tta_hflip_below: the share of faces classified twice (mirrored).
        "faces_mirrored_share": round(mirrored / faces, 3) if faces else 0.0,
        "events": sum(events),
        "detector": cfg.detector.model,
        "every_n_frames": cfg.detector.every_n_frames,
        "model": model.info.path.name,
        "cpu_count": os.cpu_count(),
    }


def transcode(source: Path, dest: Path, width: int, height: int, fps: float | None) -> Path:
    """Re-encode ``source`` as H.264 at ``width``x``height`` (and ``fps``) with ffmpeg.

    The shared test videos are 360p-1080p at 24-120 fps; the performance targets are for
    720p H.264 at 25 fps, so the benchmark makes that file first (in a temporary place,
    never in the repository). Every frame is kept unless ``fps`` resamples the timeline.
    """
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchError("--size needs ffmpeg on PATH (Debian: apt install ffmpeg)")
    vf = f"scale={width}:{height}" + (f",fps={fps}" if fps else "")
    cmd = [ffmpeg, "-v", "error", "-y", "-i", str(source), "-vf", vf, "-an"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    proc = subprocess.run([*cmd, str(dest)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"ffmpeg could not transcode {source}: {proc.stderr.strip()[-500:]}")
    return dest


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720), with a usable error."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BenchError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
        raise BenchError(f"--size {text!r}: even width 16..7680 and height 16..4320")
    return w, h


def track_emotions(
    source: Path, cfg: AppConfig, model: EmotionModel, min_track_s: float = 1.0
) -> list[dict[str, Any]]:
    """Each track of a video analysed offline: when it was seen and its dominant emotion.

    Frames are timed by the video's own clock (frame index / fps), not the wall clock,
    so the result does not depend on how fast this machine is: it is what the daemon
    would report for the file played in real time. The dominant emotion is the label
    the track showed (argmax of its smoothed probabilities) for the longest time.
    Tracks shorter than ``min_track_s`` are left out. Used to check that a speed
    setting (e.g. ``detector.every_n_frames``) does not change what is reported.
    """
    from edge_daemon.pipeline import CameraAnalyzer

    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise BenchError(f"{source}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    an = CameraAnalyzer(cfg.cameras[0], cfg, model)
    labels = model.labels
    seen: dict[int, list[float]] = {}  # track -> [first_s, last_s]
    shown: dict[int, np.ndarray] = {}  # track -> seconds per label
    seq = 0
    try:
        an.open()
        while True:
            ok, img = cap.read()
            if not ok:
                break
            t = seq / fps
            an.process(Frame(an.camera, seq, 1.0e9 + t, 1.0e6 + t, img))
            for tr in an.last_tracks:
                span = seen.setdefault(tr.track_id, [t, t])
                span[1] = t
                acc = shown.setdefault(tr.track_id, np.zeros(len(labels)))
                acc[int(np.argmax(tr.probs))] += 1 / fps
            seq += 1
    finally:
        cap.release()
        an.close()
    out = []
    for tid, (first, last) in sorted(seen.items(), key=lambda kv: kv[1][0]):
        if last - first + 1 / fps < min_track_s:
            continue
        acc = shown[tid]
        out.append(
            {
                "track_id": tid,
                "start_s": round(first, 2),
                "end_s": round(last, 2),
                "emotion": labels[int(np.argmax(acc))],
                "share": round(float(acc.max() / acc.sum()), 3),
            }
        )
    return out
