"""``edge-daemon bench``: the full analysis pipeline as fast as possible on a video file.

Passes in the same process on the same file: decode only (the ceiling), then decode +
detect + classify + track + policy for every frame, in ``streams`` parallel threads that
share one emotion model (as the daemon does), and with ``baseline`` the original demo's
naive loop (Haar cascade + classifier on every frame). Latency is measured per frame from the end
of its decode to the end of its analysis. Numbers vary with machine load: compare
ratios (``pipeline_fps / decode_fps``) between runs, not absolute values.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_daemon.classify.model import EmotionModel, ModelLoadError
from edge_daemon.config import AppConfig, ConfigError, load_config
from edge_daemon.detect.blazeface import DetectorError
from edge_daemon.types import Frame


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

    cascade_path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
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
            cfg.model.resolved_path(),
            cfg.model.providers,
            cfg.model.intra_op_threads,
            cfg.model.tta_hflip,
        )
    except ModelLoadError as exc:
        raise BenchError(str(exc)) from exc

    n_dec, t_dec, size = decode_only(source, max_frames)

    cam_cfg = cfg.cameras[0]
    try:
        analyzers = [
            CameraAnalyzer(cam_cfg.model_copy(update={"name": f"bench{i}"}), cfg, model)
            for i in range(streams)
        ]
    except DetectorError as exc:
        raise BenchError(str(exc)) from exc
    latencies: list[list[float]] = [[] for _ in range(streams)]
    events = [0] * streams
    errors: list[str] = []

    def worker(i: int) -> None:
        cap = cv2.VideoCapture(str(source))
        an = analyzers[i]
        seq = 0
        try:
            an.open()
            while not max_frames or seq < max_frames:
                ok, img = cap.read()
                if not ok:
                    break
                mono = time.monotonic()
                events[i] += len(an.process(Frame(an.camera, seq, time.time(), mono, img)))
                latencies[i].append((time.monotonic() - mono) * 1000)
                seq += 1
            events[i] += len(an.flush())
        except Exception as exc:
            errors.append(f"stream {i}: {exc!r}")
        finally:
            cap.release()
            an.close()  # the detector belongs to this thread

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise BenchError("; ".join(errors))

    lat = np.concatenate([np.asarray(x, np.float64) for x in latencies])
    frames = int(lat.size)
    det_runs = sum(a.metrics.detections_run for a in analyzers)
    faces = sum(a.metrics.faces for a in analyzers)
    det_ms = np.concatenate([a.metrics.detect_ms.values() for a in analyzers])
    cls_ms = np.concatenate([a.metrics.classify_ms.values() for a in analyzers])
    decode_fps = n_dec / t_dec
    pipeline_fps = frames / wall
    naive = naive_loop(source, model, max_frames) if baseline else {}
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
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 2),
        "detect_ms_p50": round(float(np.median(det_ms)), 2) if det_ms.size else 0.0,
        "classify_ms_p50_per_frame_with_faces": (
            round(float(np.median(cls_ms)), 2) if cls_ms.size else 0.0
        ),
        "faces_per_frame": round(faces / det_runs, 3) if det_runs else 0.0,
        "events": sum(events),
        "detector": cfg.detector.model,
        "every_n_frames": cfg.detector.every_n_frames,
        "model": model.info.path.name,
        "cpu_count": os.cpu_count(),
    }
