"""File and sample sources driven by a real CaptureWorker (videos generated in tmp)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_daemon.sources import (
    CaptureSettings,
    CaptureWorker,
    FileSpec,
    FrameQueue,
    SampleSpec,
    SourceEnded,
    SourceError,
    open_source,
)
from edge_daemon.types import StreamStatus

FAST = CaptureSettings(stall_timeout_s=2.0, reconnect_initial_s=0.1, reconnect_max_s=0.4)


class StatusLog:
    """Collects on_status calls (from the worker thread) for assertions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, StreamStatus, str | None]] = []

    def __call__(self, camera: str, status: StreamStatus, error: str | None) -> None:
        with self.lock:
            self.events.append((camera, status, error))

    def statuses(self) -> list[StreamStatus]:
        with self.lock:
            return [s for _, s, _ in self.events]


def wait_for(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def write_video(path: Path, frames: int, fps: float = 15.0, size: tuple[int, int] = (96, 64)):
    """An MPEG-4 part 2 file via OpenCV's own FFmpeg (no external tool needed)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 37) % 256, np.uint8)
        cv2.putText(img, str(i), (5, size[1] - 10), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
        writer.write(img)
    writer.release()
    return path


def start_worker(spec, settings=FAST, maxsize=8, camera="cam"):
    stop = threading.Event()
    log = StatusLog()
    q = FrameQueue(maxsize)
    worker = CaptureWorker(camera, spec, settings, q, stop, log)
    worker.start()
    return worker, stop, log, q


def stop_within(worker: CaptureWorker, stop: threading.Event, limit: float = 2.0) -> float:
    t0 = time.monotonic()
    stop.set()
    worker.join(limit + 1.0)
    elapsed = time.monotonic() - t0
    assert not worker.is_alive(), "worker did not stop"
    assert elapsed < limit, f"worker took {elapsed:.2f} s to stop"
    return elapsed


def drain(q: FrameQueue, duration: float) -> list:
    frames = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        f = q.get(0.05)
        if f is not None:
            frames.append(f)
    return frames


def read_all(spec: FileSpec) -> tuple[list[np.ndarray], float, BaseException]:
    src = open_source(spec, read_timeout_s=2.0)
    frames: list[np.ndarray] = []
    t0 = time.monotonic()
    try:
        while True:
            img = src.read(2.0)
            assert img is not None, "read timed out"
            frames.append(img)
    except (SourceEnded, SourceError) as exc:
        end = exc
    finally:
        src.close()
    return frames, time.monotonic() - t0, end


def test_file_realtime_paces_at_file_fps_and_fast_does_not(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=15, fps=15.0)
    frames, elapsed, end = read_all(FileSpec(video, loop=False, realtime=True))
    assert len(frames) == 15 and isinstance(end, SourceEnded)
    assert frames[0].shape == (64, 96, 3) and frames[0].dtype == np.uint8
    # 15 frames at 15 fps: the last is due 14/15 s after the first.
    assert 0.85 <= elapsed < 1.6, elapsed

    frames, elapsed, end = read_all(FileSpec(video, loop=False, realtime=False))
    assert len(frames) == 15 and isinstance(end, SourceEnded)
    assert elapsed < 0.5, elapsed


def test_file_without_loop_ends_and_worker_exits(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=10)
    worker, _stop, log, q = start_worker(FileSpec(video, loop=False, realtime=False), maxsize=8)
    worker.join(5)
    assert not worker.is_alive()
    assert log.statuses() == [StreamStatus.STARTING, StreamStatus.ONLINE, StreamStatus.ENDED]
    assert worker.frames == 10
    assert worker.status is StreamStatus.ENDED
    seqs = [q.get(0).seq for _ in range(q.qsize())]  # type: ignore[union-attr]
    assert seqs == list(range(10))[-len(seqs) :]  # oldest dropped, order kept
    assert q.dropped == 10 - len(seqs)


def test_file_with_loop_keeps_going_and_stops_quickly(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=5, fps=30.0)
    worker, stop, log, q = start_worker(FileSpec(video, loop=True, realtime=True))
    frames = drain(q, 0.8)
    assert len(frames) > 10  # 5-frame file at 30 fps: it must have looped
    assert worker.status is StreamStatus.ONLINE
    assert worker.reconnects == 0
    assert 15 < worker.fps < 45
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs)
    monos = [f.mono for f in frames]
    assert all(b > a for a, b in itertools.pairwise(monos))
    stop_within(worker, stop)
    assert log.statuses()[-1] is StreamStatus.STOPPED


def make_bad_media(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated":
        good = write_video(tmp_path / "good.mp4", frames=30)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the moov index is at the end: cut off
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("zero_bytes", "empty (0 bytes)"),
        ("text", "cannot open video file"),
        ("truncated", "cannot open video file"),
        ("missing", "not found"),
    ],
)
def test_bad_media_reports_clear_error_keeps_retrying_and_stops(
    tmp_path: Path, kind: str, message: str
) -> None:
    path = make_bad_media(tmp_path, kind)
    worker, stop, log, _q = start_worker(FileSpec(path, loop=True, realtime=True))
    assert wait_for(lambda: worker.reconnects >= 2, 3.0), "worker did not retry"
    assert worker.is_alive()
    assert worker.status is StreamStatus.FAILED
    assert StreamStatus.ONLINE not in log.statuses()
    assert worker.last_error is not None and message in worker.last_error
    assert str(path) in worker.last_error
    errors = [e for _, s, e in log.events if s is StreamStatus.FAILED]
    assert errors and message in errors[0]  # type: ignore[operator]
    assert worker.frames == 0
    stop_within(worker, stop)


def test_bad_file_fixed_by_user_comes_online(tmp_path: Path) -> None:
    path = tmp_path / "later.mp4"
    path.write_bytes(b"")
    worker, stop, log, q = start_worker(FileSpec(path, loop=True, realtime=True))
    assert wait_for(lambda: worker.status is StreamStatus.FAILED, 2.0)
    write_video(tmp_path / "tmp.mp4", frames=10).replace(path)
    assert wait_for(lambda: worker.status is StreamStatus.ONLINE, 3.0)
    assert q.get(1.0) is not None
    stop_within(worker, stop)
    assert log.statuses()[:3] == [StreamStatus.STARTING, StreamStatus.FAILED, StreamStatus.ONLINE]


def test_sample_source_frames_have_requested_size_and_move() -> None:
    worker, stop, log, q = start_worker(SampleSpec(fps=20.0, width=320, height=240))
    # Loading the picture (importing skimage.data) can take seconds on a busy machine.
    assert wait_for(lambda: worker.status is StreamStatus.ONLINE, 15.0), log.events
    frames = drain(q, 1.0)
    fps = worker.fps
    stop_within(worker, stop)
    assert len(frames) >= 12
    for f in frames:
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
        assert f.camera == "cam"
    first, last = frames[0].image.astype(int), frames[-1].image.astype(int)
    assert np.abs(first - last).mean() > 1.0  # the virtual camera moves
    assert fps == pytest.approx(20.0, rel=0.3)


def test_stall_is_detected_and_reconnects() -> None:
    """A source that stops delivering (here: sample at 0.2 fps) trips the stall timeout."""
    settings = CaptureSettings(stall_timeout_s=0.5, reconnect_initial_s=0.1, reconnect_max_s=0.2)
    worker, stop, log, _q = start_worker(SampleSpec(fps=0.2, width=64, height=48), settings)
    assert wait_for(lambda: worker.reconnects >= 1, 4.0)
    assert StreamStatus.RECONNECTING in log.statuses()
    assert "stall" in (worker.last_error or "")
    stop_within(worker, stop)


def test_on_status_callback_errors_do_not_kill_the_worker(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=5)

    def broken(camera: str, status: StreamStatus, error: str | None) -> None:
        raise RuntimeError("callback bug")

    stop = threading.Event()
    q = FrameQueue(8)
    spec = FileSpec(video, loop=False, realtime=False)
    worker = CaptureWorker("cam", spec, FAST, q, stop, broken)
    worker.start()
    worker.join(5)
    assert worker.frames == 5 and worker.status is StreamStatus.ENDED


def test_pixels_only_every_nth_frame_sizes_for_the_rest(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=8, size=(96, 64))
    settings = CaptureSettings(stall_timeout_s=2.0, pixels_every_n=3)
    worker, _stop, _log, q = start_worker(FileSpec(video, loop=False, realtime=False), settings)
    worker.join(5)
    frames = [q.get(0) for _ in range(q.qsize())]
    assert [f.seq for f in frames] == list(range(8))  # all fit in the queue
    for f in frames:
        assert (f.width, f.height) == (96, 64)
        if f.seq % 3 == 0:
            assert f.image is not None and f.image.shape == (64, 96, 3)
        else:
            assert f.image is None
    with pytest.raises(ValueError, match="pixels_every_n"):
        CaptureSettings(pixels_every_n=0)


def test_pixels_phase_shifts_the_pixel_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=8)
    settings = CaptureSettings(stall_timeout_s=2.0, pixels_every_n=3, pixels_phase=1)
    worker, _stop, _log, q = start_worker(FileSpec(video, loop=False, realtime=False), settings)
    worker.join(5)
    with_pixels = [f.seq for f in (q.get(0) for _ in range(q.qsize())) if f.image is not None]
    assert with_pixels == [0, 2, 5]  # the first always (its size is needed), then (seq+1)%3==0


def test_file_decoder_uses_one_thread_per_camera(tmp_path: Path) -> None:
    """Cameras decode on DECODER_THREADS threads each, not FFmpeg's one per core (RSS)."""
    from edge_daemon.sources.cv import DECODER_THREADS, FileBackend

    path = write_video(tmp_path / "v.mp4", 5)
    cap = FileBackend(FileSpec(path=path))._open_capture(threading.Event())
    try:
        assert cap.get(cv2.CAP_PROP_N_THREADS) == DECODER_THREADS == 1
        ok, img = cap.read()
        assert ok and img.shape == (64, 96, 3)
    finally:
        cap.release()
