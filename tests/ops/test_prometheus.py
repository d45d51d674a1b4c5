"""/metrics, /healthz and /readyz of a running App (real HTTP, real broker, sample camera)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge_daemon.metrics import Histogram
from edge_daemon.ops.health import Health
from edge_daemon.ops.prometheus import DAEMON_COUNTERS, DaemonCollector
from tests.support.app import app_serving, sample_camera


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, body, ctype = get(url + "/metrics", headers)
    assert status == 200, body
    assert ctype.startswith("text/plain")
    samples: dict[str, Any] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = s.name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                if s.labels
                else ""
            )
            samples[key] = s.value
    return samples


def test_histogram_is_cumulative() -> None:
    h = Histogram((1.0, 10.0))
    for v in (0.5, 1.0, 5.0, 50.0):
        h.observe(v)
    assert h.cumulative() == [(1.0, 2), (10.0, 3), (float("inf"), 4)]
    assert h.count == 4 and h.sum == 56.5


def test_daemon_wide_counters_are_exported() -> None:
    # The detector pool's waits and the live view's refused streams were counted but
    # never exported: an operator could not see either kind of contention.
    health = Health(healthy=True, ready=True, problems=[], cameras={})
    values = {
        "detector_pool_waits": 3,
        "live_streams_refused": 2,
        "watchdog_pings_withheld": 4,
        "commands_unknown_camera": 5,
    }
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DaemonCollector(list, dict, lambda: health, lambda: values))
    got = {
        s.name: s.value
        for fam in text_string_to_metric_families(generate_latest(reg).decode())
        for s in fam.samples
    }
    assert set(values) == set(DAEMON_COUNTERS)
    assert got["edge_detector_pool_waits_total"] == 3
    assert got["edge_live_streams_refused_total"] == 2
    assert got["edge_watchdog_pings_withheld_total"] == 4
    assert got["edge_commands_unknown_camera_total"] == 5


def test_model_info_names_the_provider_and_the_cpu() -> None:
    health = Health(healthy=True, ready=True, problems=[], cameras={})
    labels = {"file": "emotion.onnx", "provider": "CPUExecutionProvider", "int8_dot_product": "no"}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DaemonCollector(list, dict, lambda: health, dict, lambda: labels))
    text = generate_latest(reg).decode()
    (info,) = [
        s
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "edge_model_info"
    ]
    assert info.labels == labels and info.value == 1
    # Before the model is loaded there is nothing to say: no sample at all.
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DaemonCollector(list, dict, lambda: health, dict, dict))
    assert "edge_model_info" not in generate_latest(reg).decode()


def test_metrics_and_health_endpoints(tmp_path: Path, mosquitto: Any) -> None:
    with app_serving(tmp_path / "c.yaml", mosquitto.port, "metrics") as (app, url):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = scrape(url)
            if (
                m.get("edge_camera_frames_analysed_total{camera=door}", 0) >= 10
                and m.get("edge_mqtt_events_published_total", 0) >= 1
            ):
                break
            time.sleep(0.3)
        m = scrape(url)
        assert m["edge_daemon_healthy"] == 1 and m["edge_daemon_ready"] == 1
        assert m["edge_camera_up{camera=door}"] == 1
        analysed = m["edge_camera_frames_analysed_total{camera=door}"]
        assert analysed >= 10
        assert m["edge_camera_frames_total{camera=door}"] >= analysed
        assert m["edge_camera_frames_dropped_total{camera=door}"] >= 0
        assert 5 <= m["edge_camera_capture_fps{camera=door}"] <= 15
        # The sample picture has one face: detections and classifications happen.
        assert m["edge_camera_faces_detected_total{camera=door}"] >= 1
        assert m["edge_camera_weak_faces_detected_total{camera=door}"] >= 0
        faces = m["edge_camera_faces_detected_total{camera=door}"]
        assert 0 <= m["edge_camera_faces_mirrored_total{camera=door}"] <= faces
        # One face, well above min_face_px and under max_faces: nothing dropped.
        assert m["edge_camera_faces_too_small_total{camera=door}"] == 0
        assert m["edge_camera_faces_over_cap_total{camera=door}"] == 0
        det_count = m["edge_detect_seconds_count{camera=door}"]
        # Detection every 4th frame (the default every_n_frames) once the face is
        # confirmed, on every frame until then.
        assert analysed / 4 - 3 <= det_count <= analysed
        assert m["edge_detect_seconds_bucket{camera=door,le=+Inf}"] == det_count
        assert 0 < m["edge_detect_seconds_sum{camera=door}"] / det_count < 1.0  # seconds
        assert m["edge_classify_seconds_count{camera=door}"] >= 1
        assert m["edge_mqtt_connected"] == 1
        assert m["edge_mqtt_events_published_total"] >= 1  # the face's start event
        assert m["edge_detector_pool_waits_total"] >= 0  # wired to the app's pool
        assert m["edge_live_streams_refused_total"] == 0  # no live view here
        assert m["edge_watchdog_pings_withheld_total"] == 0  # healthy, and no watchdog

        status, body, _ = get(url + "/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["healthy"] and health["cameras"]["door"]["ready"]
        status, body, _ = get(url + "/readyz")
        assert status == 200 and json.loads(body)["ready"]
        assert get(url + "/nothing")[0] == 404

        # A stopped pipeline makes the daemon unhealthy (and not ready).
        app.cameras[0].stop.set()
        app.cameras[0].pipeline.join(5)
        status, body, _ = get(url + "/healthz")
        assert status == 503
        assert "door: pipeline thread is not running" in json.loads(body)["problems"][0]
        assert get(url + "/readyz")[0] == 503
        assert scrape(url)["edge_daemon_healthy"] == 0


def test_metrics_token(tmp_path: Path, mosquitto: Any) -> None:
    with app_serving(
        tmp_path / "c.yaml",
        mosquitto.port,
        "metrics",
        [sample_camera("door", fps=5)],
        token="s3cret",
    ) as (_, url):
        status, body, _ = get(url + "/metrics")
        assert status == 401 and b"token" in body
        assert get(url + "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
        assert get(url + "/metrics", {"Authorization": "Bearer s3cret"})[0] == 200
        assert get(url + "/metrics?token=s3cret")[0] == 200
        assert get(url + "/healthz")[0] == 200  # probes need no token
