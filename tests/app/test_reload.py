"""Hot reload: only changed cameras restart; a bad new config changes nothing."""

from __future__ import annotations

import logging
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.app import app_config, running_app, sample_camera
from tests.support.daemon import Daemon, write_config
from tests.support.net import free_port


def wait_frames(app: Any, names: list[str], n: int = 3, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = {rt.config.name: rt.pipeline.analyzer.metrics.frames for rt in app.cameras}
        if all(frames.get(name, 0) >= n for name in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"frames not flowing: {frames}")


def test_reload_restarts_only_what_changed(
    tmp_path: Path, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yaml"
    cams = [sample_camera("a", 5), sample_camera("b", 5), sample_camera("c", 5)]
    with running_app(path, app_config(mosquitto.port, cams)) as app:
        wait_frames(app, ["a", "b", "c"])
        threads = {rt.config.name: rt.pipeline for rt in app.cameras}

        new = [sample_camera("a", 5), sample_camera("b", 8), sample_camera("d", 5)]
        path.write_text(yaml.safe_dump(app_config(mosquitto.port, new)))
        result = app.reload()
        assert result.ok
        assert (result.added, result.removed, result.restarted) == (["d"], ["c"], ["b"])
        now = {rt.config.name: rt.pipeline for rt in app.cameras}
        assert list(now) == ["a", "b", "d"]  # config order
        assert now["a"] is threads["a"] and now["a"].is_alive()  # untouched
        assert now["b"] is not threads["b"] and not threads["b"].is_alive()
        assert not threads["c"].is_alive()
        wait_frames(app, ["a", "b", "d"])
        assert app.health().healthy

        # A pipeline-wide section (detector) restarts every camera.
        path.write_text(
            yaml.safe_dump(app_config(mosquitto.port, new, detector={"min_confidence": 0.7}))
        )
        result = app.reload()
        assert sorted(result.restarted) == ["a", "b", "d"]
        assert app.cfg.detector.min_confidence == 0.7

        # Sections that need a restart are reported and kept as they run.
        caplog.set_level(logging.WARNING, logger="edge_daemon.app.daemon")
        changed = app_config(mosquitto.port, new, detector={"min_confidence": 0.7})
        changed["mqtt"]["topic_prefix"] = "other"
        path.write_text(yaml.safe_dump(changed))
        result = app.reload()
        assert result.ok and result.restarted == []
        assert app.cfg.mqtt.topic_prefix == "edge"
        assert "mqtt changed; restart the daemon to apply it" in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras: [\n  - name: a\n    source: {type: sample\n", "c.yaml:"),  # broken YAML
        ("cameras:\n  - name: a\n    source: {type: sample}\n    colour: red\n", "colour"),
        ("cameras:\n  - name: a\n    source: {type: rtsp, url: 'http://x'}\n", "rtsp://"),
    ],
)
def test_invalid_reload_keeps_the_running_config(
    tmp_path: Path, mosquitto: Any, caplog: pytest.LogCaptureFixture, text: str, expected: str
) -> None:
    path = tmp_path / "c.yaml"
    with running_app(path, app_config(mosquitto.port, [sample_camera("a", 5)])) as app:
        wait_frames(app, ["a"])
        before = app.cameras[0].pipeline
        frames = before.analyzer.metrics.frames
        path.write_text(text)
        caplog.set_level(logging.ERROR, logger="edge_daemon.app.daemon")
        result = app.reload()
        assert not result.ok and any(expected in e for e in result.errors), result.errors
        assert "reload rejected" in caplog.text and expected in caplog.text
        assert app.cameras[0].pipeline is before and before.is_alive()
        wait_until(lambda: before.analyzer.metrics.frames > frames, "frames after the rejection")


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def frames_analysed(metrics_url: str) -> dict[str, float]:
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return {
        line.split('camera="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edge_camera_frames_analysed_total{")
    }


def camera_up(metrics_url: str) -> set[str]:
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return {
        line.split('camera="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("edge_camera_up{") and line.endswith(" 1.0")
    }


def test_sighup_reloads_the_running_daemon(tmp_path: Path, mosquitto: Any) -> None:
    port = free_port()
    metrics = {"enabled": True, "port": port}
    path = write_config(
        tmp_path / "config.yaml", mosquitto.port, [sample_camera("a", 5)], metrics=metrics
    )
    d = Daemon(path, tmp_path / "daemon.log")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        d.wait_log("running: 1 camera(s)", timeout=90)
        deadline = time.monotonic() + 30
        while camera_up(url) != {"a"} and time.monotonic() < deadline:
            time.sleep(0.2)
        write_config(
            path, mosquitto.port, [sample_camera("a", 5), sample_camera("b", 5)], metrics=metrics
        )
        d.signal(signal.SIGHUP)
        d.wait_log("reloaded", timeout=30)
        deadline = time.monotonic() + 30
        while camera_up(url) != {"a", "b"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert camera_up(url) == {"a", "b"}

        path.write_text("cameras: [oops\n")
        d.signal(signal.SIGHUP)
        d.wait_log("reload rejected", timeout=30)
        # Still running both cameras: their frame counters keep rising after the rejection.
        seen = frames_analysed(url)
        wait_until(
            lambda: all(frames_analysed(url)[c] > seen[c] for c in ("a", "b")),
            "frames on both cameras after the rejected reload",
        )
        assert d.proc.poll() is None
        assert camera_up(url) == {"a", "b"}
        assert "Traceback" not in d.log()
    finally:
        d.stop()
