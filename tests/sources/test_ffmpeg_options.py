"""Every FFmpeg open sees the capture options meant for it, and only one open at a time.

OpenCV reads OPENCV_FFMPEG_CAPTURE_OPTIONS from the process environment at each open, so
these tests replace ``cv2.VideoCapture`` with a recorder that notes the variable at the
moment of the call and can hold an RTSP open as long as a slow camera would.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_daemon.sources import FileSpec, RtspSpec, open_source
from edge_daemon.sources.cv import OPENCV_FFMPEG_ENV, FileBackend, RtspBackend


class FakeCapture:
    def isOpened(self) -> bool:  # OpenCV's name
        return True

    def get(self, prop: int) -> float:
        return 25.0

    def release(self) -> None:
        pass


@dataclass
class Recorder:
    """Stands in for cv2.VideoCapture; RTSP opens block until ``release`` is set."""

    seen: dict[str, str | None] = field(default_factory=dict)
    inside_rtsp: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def __call__(self, target: object, *args: object) -> FakeCapture:
        self.calls += 1
        self.seen[str(target)] = os.environ.get(OPENCV_FFMPEG_ENV)
        if str(target).startswith("rtsp://"):
            self.inside_rtsp.set()
            assert self.release.wait(10), "test never released the RTSP open"
        return FakeCapture()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    import edge_daemon.sources.cv as cv_module

    rec = Recorder()
    monkeypatch.setattr(cv_module.cv2, "VideoCapture", rec)
    monkeypatch.setenv(OPENCV_FFMPEG_ENV, "analyzeduration;100")  # the user's own value
    yield rec
    rec.release.set()


def open_in_thread(backend: FileBackend | RtspBackend) -> threading.Thread:
    t = threading.Thread(target=backend.open, args=(threading.Event(),), daemon=True)
    t.start()
    return t


def test_a_file_opened_during_an_rtsp_open_sees_only_the_users_options(
    recorder: Recorder, tmp_path: Path
) -> None:
    # Before: file opens did not take the lock and read the RTSP open's rtsp_transport.
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 64)  # the fake capture never reads it
    url = "rtsp://cam/stream"
    rtsp = open_in_thread(RtspBackend(RtspSpec(url, transport="tcp"), read_timeout_s=1.0))
    assert recorder.inside_rtsp.wait(5)
    file_open = open_in_thread(FileBackend(FileSpec(video)))
    file_open.join(0.5)  # gives a file open that ignores the lock time to happen
    recorder.release.set()
    rtsp.join(5)
    file_open.join(5)
    assert recorder.seen[url] == "analyzeduration;100|rtsp_transport;tcp"
    assert recorder.seen[str(video)] == "analyzeduration;100"
    assert os.environ[OPENCV_FFMPEG_ENV] == "analyzeduration;100"  # restored


def test_opens_abandoned_while_waiting_for_the_lock_give_up(recorder: Recorder) -> None:
    # Before: every reconnect of a camera stuck behind a slow RTSP open left a thread
    # waiting for the lock, which then opened a capture nobody would read.
    slow = open_in_thread(RtspBackend(RtspSpec("rtsp://slow/s"), read_timeout_s=1.0))
    assert recorder.inside_rtsp.wait(5)
    waiting = [
        open_source(RtspSpec(f"rtsp://other/{i}"), read_timeout_s=1.0, name=f"waiter-{i}")
        for i in range(5)
    ]
    for src in waiting:
        assert src.read(0.05) is None
        src.close()
    try:
        for src in waiting:
            assert src.join(2.0), "an abandoned open still waits for the options lock"
        assert recorder.calls == 1  # only the slow camera's open ever reached OpenCV
    finally:
        recorder.release.set()
        slow.join(5)
