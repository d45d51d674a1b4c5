"""Bad media next to a good camera, through the real daemon: each bad camera gets a clear
logged error and a published status; the good camera keeps producing events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data

from tests.fixtures.mqtt import MqttCollector
from tests.support.app import sample_camera
from tests.support.daemon import Daemon, write_config


def bad_files(d: Path) -> dict[str, Path]:
    zero = d / "zero.mp4"
    zero.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = d / "good.mp4"
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    w = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for i in range(30):
        w.write(np.roll(face, i * 4, axis=1))
    w.release()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    return {"zero": zero, "text": text, "truncated": truncated}


def test_bad_media_is_reported_and_good_camera_keeps_running(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    files = bad_files(tmp_path)
    cams = [sample_camera("good", fps=10)]
    for name, path in files.items():
        cams.append({"name": name, "source": {"type": "file", "path": str(path)}})
    cams.append(
        {
            "name": "nohost",
            "source": {"type": "rtsp", "url": "rtsp://no-such-camera.invalid/stream"},
            "reconnect_initial_s": 0.5,
            "reconnect_max_s": 1,
        }
    )
    col: MqttCollector = mqtt_collector(mosquitto, "edge/#")
    d = Daemon(write_config(tmp_path / "c.yaml", mosquitto.port, cams), tmp_path / "d.log")
    try:
        bad = ["zero", "text", "truncated", "nohost"]

        def states(ms: list[Any]) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for m in ms:
                if m.topic.endswith("/state"):
                    out[m.topic.split("/")[1]] = m.json()
            return out

        col.wait_for(
            lambda ms: all(
                states(ms).get(c, {}).get("status") in ("failed", "reconnecting") for c in bad
            ),
            90,
            "bad cameras reported",
        )
        n = len(col.on("edge/good/events"))
        t0 = time.monotonic()
        col.wait_for(
            lambda ms: (
                sum(m.topic == "edge/good/state" for m in ms) > 0
                and states(ms)["good"]["status"] == "online"
            ),
            30,
            "good online",
        )
        # The good camera's face track started; it keeps being analysed (state refreshes).
        col.wait_for(lambda ms: any(m.topic == "edge/good/events" for m in ms), 30, "events")
        assert n >= 0 and time.monotonic() - t0 < 30
        final = states(col.messages)
        assert "empty (0 bytes)" in final["zero"]["error"]
        assert "cannot open video file" in final["text"]["error"]
        assert "cannot open video file" in final["truncated"]["error"]
        assert final["nohost"]["error"]
    finally:
        d.stop()
    log = d.log()
    assert "Traceback" not in log
    for name in ("zero", "text", "truncated", "nohost"):
        assert f"camera {name}:" in log
