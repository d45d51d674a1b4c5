"""Live view rendering (pure) and its HTTP routes on a running App."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from edge_daemon.labels import FER_LABELS
from edge_daemon.types import Frame, ShownFace
from edge_daemon.web.live import EMOJI, LiveSlot, RenderOptions, render
from tests.support.app import app_serving, sample_camera


def http_get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), ""


def astronaut_frame(seq: int = 1) -> Frame:
    img = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])  # RGB -> BGR
    return Frame("cam", seq, time.time(), time.monotonic(), img)


FACE = ShownFace(1, (170.0, 40.0, 320.0, 220.0), "happy", 0.93)


def test_every_label_has_an_emoji() -> None:
    assert set(EMOJI) == set(FER_LABELS)


def test_render_scales_draws_and_never_touches_the_frame() -> None:
    frame = astronaut_frame()
    before = frame.image.copy()
    out = render(frame.image, (FACE,), np.zeros((0, 4), np.float32), RenderOptions(max_width=256))
    assert out.shape == (256, 256, 3)
    assert np.array_equal(frame.image, before)
    plain = cv2.resize(frame.image, (256, 256), interpolation=cv2.INTER_AREA)
    # The box outline changes pixels on its edge; the face inside stays as it was.
    x1, y1, x2 = (round(v * 0.5) for v in (170, 40, 320))
    assert np.abs(out[y1 + 20, x1].astype(int) - plain[y1 + 20, x1]).sum() > 30
    assert np.array_equal(
        out[y1 + 40 : y1 + 60, x1 + 20 : x2 - 20], plain[y1 + 40 : y1 + 60, x1 + 20 : x2 - 20]
    )


def test_blur_hides_every_detected_face_even_unconfirmed() -> None:
    frame = astronaut_frame()
    boxes = np.array([[170, 40, 320, 220]], np.float32)  # detected, no track yet
    opts = RenderOptions(max_width=512, blur_faces=True)
    out = render(frame.image, (), boxes, opts)
    face = frame.image[60:200, 190:300].astype(float)
    blurred = out[60:200, 190:300].astype(float)
    # Blurring removes fine detail: the Laplacian energy drops a lot.
    lap = lambda a: np.abs(cv2.Laplacian(a, cv2.CV_64F)).mean()  # noqa: E731
    assert lap(blurred) < 0.3 * lap(face)
    assert np.array_equal(out[300:400, 400:500], frame.image[300:400, 400:500])  # elsewhere
    # Boxes from an earlier frame could miss a face that moved: everything is blurred.
    stale = render(frame.image, (), boxes, opts, boxes_fresh=False)
    assert lap(stale[300:400, 400:500]) < 0.3 * lap(frame.image[300:400, 400:500])
    assert lap(stale[60:200, 190:300]) < 0.3 * lap(face)


def test_slot_encodes_once_per_frame() -> None:
    slot = LiveSlot("cam", RenderOptions())
    assert slot.jpeg() is None
    slot.put_frame(astronaut_frame(1), (FACE,), np.zeros((0, 4), np.float32), 12.0)
    a, b = slot.jpeg(), slot.jpeg()
    assert a is not None and a is b and slot.encoded == 1
    img = cv2.imdecode(np.frombuffer(a[1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (512, 512, 3)
    slot.put_frame(astronaut_frame(2), (), np.zeros((0, 4), np.float32), 12.0)
    assert slot.jpeg()[0] == 2 and slot.encoded == 2  # type: ignore[index]
    state = slot.state()
    assert state["faces"] == [] and state["fps"] == 12.0


def read_mjpeg_frames(url: str, n: int, timeout: float = 20.0) -> list[bytes]:
    """Read ``n`` JPEG parts from a multipart MJPEG response."""
    frames: list[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(frames) < n:
            line = r.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                r.readline()  # blank line
                frames.append(r.read(length))
    return frames


@pytest.fixture
def live_app(tmp_path: Path, mosquitto: Any) -> Any:
    with app_serving(
        tmp_path / "c.yaml",
        mosquitto.port,
        "live_view",
        [sample_camera("door", fps=10), sample_camera("yard", fps=5)],
        fps=10,
        max_clients=2,
    ) as (app, url):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = json.loads(http_get(url + "/api/state")[1])
            if all(c["faces"] and c["events"] for c in state["cameras"].values()):
                break
            time.sleep(0.2)
        yield app, url


def test_state_snapshot_and_stream(live_app: Any) -> None:
    _app, url = live_app
    status, body, ctype = http_get(url + "/api/state")
    assert status == 200 and ctype == "application/json"
    state = json.loads(body)
    assert set(state["cameras"]) == {"door", "yard"}
    door = state["cameras"]["door"]
    assert door["status"] == "online" and door["size"] == [640, 480]
    face = door["faces"][0]
    assert face["emotion"] in FER_LABELS and face["emoji"] == EMOJI[face["emotion"]]
    assert 0 < face["box"][2] < 1
    assert any(e["type"] == "start" for e in door["events"])

    status, body, ctype = http_get(url + "/snapshot/door.jpg")
    assert status == 200 and ctype == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)

    frames = read_mjpeg_frames(url + "/stream/door.mjpg", 3)
    decoded = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames]
    assert all(d is not None and d.shape == (480, 640, 3) for d in decoded)
    assert len(set(frames)) == 3  # successive frames, not one picture repeated

    assert http_get(url + "/stream/nope.mjpg")[0] == 404
    assert http_get(url + "/snapshot/door.png")[0] == 404
    status, body, ctype = http_get(url + "/")
    assert status == 200 and b"live view" in body and ctype.startswith("text/html")


def test_viewer_limit(live_app: Any) -> None:
    _app, url = live_app
    host, port = url.removeprefix("http://").split(":")
    socks = []
    try:
        for _ in range(2):  # max_clients: 2
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(f"GET /stream/door.mjpg HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert s.recv(64).startswith(b"HTTP/1.1 200")
            socks.append(s)
        assert http_get(url + "/stream/door.mjpg")[0] == 503
    finally:
        for s in socks:
            s.close()


def test_live_view_token(tmp_path: Path, mosquitto: Any) -> None:
    with app_serving(
        tmp_path / "c.yaml",
        mosquitto.port,
        "live_view",
        [sample_camera("door", fps=5)],
        token="letmein",
    ) as (_, url):
        for path in ("/", "/api/state", "/snapshot/door.jpg", "/stream/door.mjpg"):
            assert http_get(url + path)[0] == 401, path
        assert http_get(url + "/api/state?token=letmein")[0] == 200


def test_blurred_view_of_a_moving_face_never_shows_it_sharp() -> None:
    """Detection runs every 3rd frame; the face moves 40 px a frame. Before: the frames
    between two detections were blurred at the older box, so most of the face showed."""
    import threading
    from types import SimpleNamespace

    from edge_daemon.classify.model import EmotionModel
    from edge_daemon.config import AppConfig
    from edge_daemon.pipeline import CameraAnalyzer, CameraPipeline
    from edge_daemon.sources import FrameQueue
    from edge_daemon.types import Frame

    cfg = AppConfig.model_validate(
        {
            "detector": {"every_n_frames": 3},
            "cameras": [{"name": "cam", "source": {"type": "sample"}}],
        }
    )
    analyzer = CameraAnalyzer(cfg.cameras[0], cfg, EmotionModel())
    slot = LiveSlot("cam", RenderOptions(max_width=2000, jpeg_quality=90, blur_faces=True))
    sink = SimpleNamespace(publish_event=lambda e: True, publish_state=lambda c, s: True)
    capture = SimpleNamespace(pixel_demand=threading.Event())
    pipe = CameraPipeline(analyzer, FrameQueue(1), capture, sink, threading.Event(), slot)  # type: ignore[arg-type]
    photo = astronaut_frame().image
    lap = lambda a: np.abs(cv2.Laplacian(a.astype(float), cv2.CV_64F)).mean()  # noqa: E731
    analyzer.open()
    try:
        sharpness = []
        for i in range(18):
            x = 40 * i
            canvas = np.full((512, 512 + 40 * 18, 3), 90, np.uint8)
            canvas[:, x : x + 512] = photo
            pipe._process(Frame("cam", i, 1.7e9 + i / 10, 100 + i / 10, canvas))
            seq, jpeg = slot.jpeg()  # a viewer watches every frame
            assert seq == i
            shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            # The same frame unblurred, through the same JPEG quality, as the reference.
            sharp = cv2.imdecode(
                cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR
            )
            face = (slice(75, 160), slice(x + 180, x + 265))  # the face in this frame
            sharpness.append(lap(shown[face]) / lap(sharp[face]))
        assert max(sharpness) < 0.4, [round(s, 2) for s in sharpness]
        assert analyzer.metrics.snapshot()["detections_run"] >= 17  # watched: every frame
    finally:
        analyzer.close()
