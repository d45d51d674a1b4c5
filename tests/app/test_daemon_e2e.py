"""End to end through the real CLI in a subprocess: real videos, real Mosquitto.

Each test writes a config, starts ``python -m edge_daemon run``, subscribes to the real
broker and checks what the daemon publishes, then stops it with SIGTERM.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from edge_daemon.publish import load_schema
from tests.fixtures.mqtt import MqttCollector
from tests.support.daemon import REPO, Daemon, default_config_on_free_port, write_config
from tests.support.net import free_port

STOP_LIMIT_S = 3.0  # the daemon must exit within this after SIGTERM (target 2 s + slack)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        d = Daemon(config, tmp_path / f"daemon{len(started)}.log")
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``edge-daemon ARGS`` in a subprocess, to its end (commands that exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "edge_daemon", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def events_of(col: MqttCollector, camera: str) -> list[dict[str, Any]]:
    return [m.json() for m in col.on(f"edge/{camera}/events")]


def state_of(col: MqttCollector, camera: str) -> list[dict[str, Any]]:
    return [m.json() for m in col.on(f"edge/{camera}/state")]


def tracks_closed(messages: list[Any], camera: str) -> bool:
    events = [m.json() for m in messages if m.topic == f"edge/{camera}/events"]
    started = {e["track_id"] for e in events if e["type"] == "start"}
    return started <= {e["track_id"] for e in events if e["type"] == "end"}


def run_file(
    mosquitto: Any,
    mqtt_collector: Callable[..., MqttCollector],
    daemon: Callable[[Path], Daemon],
    tmp_path: Path,
    video: Path,
    camera: str,
    timeout: float = 60,
) -> tuple[MqttCollector, Daemon, float]:
    """Play a video once in real time through the daemon; wait for the end of stream."""
    col = mqtt_collector(mosquitto, "edge/#")
    cfg = write_config(
        tmp_path / "cfg.yaml",
        mosquitto.port,
        [{"name": camera, "source": {"type": "file", "path": str(video), "loop": False}}],
    )
    d = daemon(cfg)
    col.wait_for(
        lambda ms: any(
            m.topic == f"edge/{camera}/state" and m.json()["status"] == "ended" for m in ms
        ),
        timeout=timeout,
        what=f"{camera} stream ended",
    )
    # The end-of-stream flush: every track that started gets its end event.
    col.wait_for(
        lambda ms: tracks_closed(ms, camera),
        timeout=15,
        what=f"an end event for every {camera} track",
    )
    took = d.stop()
    return col, d, took


@pytest.mark.shared_data
@pytest.mark.slow
def test_single_face_gives_one_track_and_valid_events(
    mosquitto: Any, mqtt_collector: Any, daemon: Any, tmp_path: Path, videos_dir: Path
) -> None:
    col, d, took = run_file(
        mosquitto, mqtt_collector, daemon, tmp_path, videos_dir / "pyfeat__single_face.mp4", "cam1"
    )
    events = events_of(col, "cam1")
    schema = load_schema("event")
    for e in events:
        jsonschema.validate(e, schema)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), d.log()
    starts = [e for e in events if e["type"] == "start"]
    assert len(starts) == 1, events
    assert len({e["track_id"] for e in events}) == 1
    assert any(e["type"] == "end" for e in events)
    x, y, w, h = (starts[0]["bbox"][k] for k in "xywh")
    assert 0 <= x < 1 and 0 <= y < 1 and 0 < w < 1 and 0 < h < 1
    assert abs(sum(starts[0]["scores"].values()) - 1) < 1e-3
    assert took < STOP_LIMIT_S
    avail = col.on("edge/available")
    assert avail[0].payload == b"online" and avail[-1].payload == b"offline"
    assert "Traceback" not in d.log(), d.log()


@pytest.mark.shared_data
@pytest.mark.slow
def test_face_leaving_ends_its_track_before_the_video_ends(
    mosquitto: Any, mqtt_collector: Any, daemon: Any, tmp_path: Path, videos_dir: Path
) -> None:
    col, d, _ = run_file(
        mosquitto, mqtt_collector, daemon, tmp_path, videos_dir / "pyfeat__face_noface.mov", "cam2"
    )
    msgs = col.messages
    ended_at = next(
        m.t for m in msgs if m.topic == "edge/cam2/state" and m.json()["status"] == "ended"
    )
    ends = [m for m in msgs if m.topic == "edge/cam2/events" and m.json()["type"] == "end"]
    assert ends, d.log()
    # The man leaves mid-video and the cartoon plays on for seconds: the end must come
    # from the tracker losing him, not from the end-of-stream flush.
    assert ends[0].t < ended_at - 1.0


@pytest.mark.shared_data
@pytest.mark.slow
def test_no_face_video_publishes_no_events(
    mosquitto: Any, mqtt_collector: Any, daemon: Any, tmp_path: Path, videos_dir: Path
) -> None:
    col, d, _ = run_file(
        mosquitto, mqtt_collector, daemon, tmp_path, videos_dir / "pyfeat__no_face.mp4", "cam3"
    )
    assert events_of(col, "cam3") == []
    assert any(s["status"] == "online" for s in state_of(col, "cam3")), d.log()


@pytest.mark.shared_data
@pytest.mark.slow
def test_crowd_video_gives_several_tracks(
    mosquitto: Any, mqtt_collector: Any, daemon: Any, tmp_path: Path, videos_dir: Path
) -> None:
    col, d, _ = run_file(
        mosquitto,
        mqtt_collector,
        daemon,
        tmp_path,
        videos_dir / "facenet_pytorch__video.mp4",
        "crowd",
    )
    tracks = {e["track_id"] for e in events_of(col, "crowd") if e["type"] == "start"}
    assert len(tracks) >= 3, d.log()


@pytest.mark.slow
def test_default_config_runs_with_embedded_broker(daemon: Any, tmp_path: Path) -> None:
    """`make run`'s config: sample camera + in-process broker, subscribable by any client;
    the demo camera keeps producing events (its face leaves and comes back: a start, an
    end, a start again), and the live view answers on loopback."""
    path, port = default_config_on_free_port(tmp_path / "config.yaml")
    live_port = yaml.safe_load(path.read_text())["live_view"]["port"]
    d = daemon(path)
    col = d.subscribe(port, timeout=30)
    try:

        def types() -> list[str]:
            return [m.json()["type"] for m in col.on("edge/sample/events")]

        col.wait_for(
            lambda ms: "start" in types() and "start" in types()[types().index("start") + 1 :],
            timeout=60,
            what="a second track from the sample camera",
        )
        assert "end" in types()
        assert col.on("edge/available")[0].payload == b"online"
        with urllib.request.urlopen(f"http://127.0.0.1:{live_port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        assert d.stop() < STOP_LIMIT_S
    finally:
        col.close()
    # model.bundled auto: the model for this CPU, and the log says why.
    from edge_daemon.config import AUTO_BUNDLED
    from edge_daemon.ops.cpu import cpu_info

    dot = cpu_info().int8_dot
    cpu = "with" if dot else "without"
    expected = f"model: {AUTO_BUNDLED[dot]} (model.bundled auto: this CPU is {cpu} int8 dot"
    assert expected in d.log(), d.log()
    assert "Traceback" not in d.log(), d.log()


@pytest.mark.slow
@pytest.mark.parametrize(("bundled", "tta"), [("accurate", "hflip"), ("nano", "none")])
def test_bundled_model_runs_and_stats_name_it(
    mosquitto: Any,
    mqtt_collector: Callable[..., MqttCollector],
    daemon: Any,
    tmp_path: Path,
    bundled: str,
    tta: str,
) -> None:
    """model.bundled loads that model (accurate: the default with its mirrored pass in
    the graph; nano: what auto runs without int8 dot products); the stats document says
    which model file (by hash) the daemon runs and why, valid against the published
    schema."""
    import hashlib

    from edge_daemon.config import BUNDLED_MODELS

    col = mqtt_collector(mosquitto, "edge/#")
    cfg = write_config(
        tmp_path / "cfg.yaml",
        mosquitto.port,
        [{"name": "s", "source": {"type": "sample"}}],
        model={"bundled": bundled},
    )
    d = daemon(cfg)
    col.wait_for(
        lambda ms: (
            any(m.topic == "edge/s/events" for m in ms) and any(m.topic == "edge/stats" for m in ms)
        ),
        timeout=45,
        what="an event and a stats message",
    )
    assert d.stop() < STOP_LIMIT_S
    stats = col.on("edge/stats")[-1].json()
    jsonschema.validate(stats, load_schema("stats"))
    model = stats["model"]
    path = BUNDLED_MODELS[bundled]
    assert model["file"] == path.name
    assert model["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model["arch"] == "edgefer2" and model["tta"] == tta and model["tta_hflip"] is False
    assert model["providers"] == ["CPUExecutionProvider"] and model["provider_fallback"] is None
    assert (model["bundled"], model["bundled_requested"]) == (bundled, bundled)
    assert model["choice"] == "model.bundled"
    assert f"model: {bundled} (model.bundled)" in d.log()
    assert stats["cpu"]["cores"] >= 1 and isinstance(stats["cpu"]["int8_dot_product"], bool)
    assert f"cpu: {stats['cpu']['model']}" in d.log()
    assert "Traceback" not in d.log(), d.log()


def test_validate_config_exit_codes(tmp_path: Path) -> None:
    ok = cli("validate-config", "-c", REPO / "config.yaml")
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - name: a\n    source: {type: rtsp, url: 'http://x'}\n")
    res = cli("validate-config", "-c", bad)
    assert res.returncode == 2
    assert "bad.yaml:3" in res.stderr and "cameras[0].source.url" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_refuses_bad_model_with_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    cfg = write_config(
        tmp_path / "cfg.yaml",
        free_port(),
        [{"name": "s", "source": {"type": "sample"}}],
        model={"path": str(garbage)},
    )
    res = cli("run", "-c", cfg)
    assert res.returncode == 2
    assert "garbage.onnx" in res.stderr and "Traceback" not in res.stderr


def embedded_on_taken_port(path: Path, port: int, **embedded: object) -> Path:
    """A sample-camera config whose embedded broker wants ``port`` (already taken)."""
    cfg = write_config(path, port, [{"name": "s", "source": {"type": "sample"}}])
    data = yaml.safe_load(cfg.read_text())
    data["mqtt"]["embedded_broker"] = {"enabled": True, "port": port, **embedded}
    data["mqtt"]["username"] = "edge"
    data["mqtt"]["password"] = "s3cret-for-our-own-broker"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


@pytest.mark.slow
def test_embedded_broker_port_taken_refuses_to_start_by_default(
    mosquitto: Any, tmp_path: Path
) -> None:
    """Another program's broker on the port is not used unless the config says so."""
    cfg = embedded_on_taken_port(tmp_path / "cfg.yaml", mosquitto.port)
    res = cli("run", "-c", cfg)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "if_port_taken: use_running" in res.stderr and "Traceback" not in res.stderr
    assert "u'edge'" not in mosquitto.log_text()  # the probe connects anonymously


@pytest.mark.slow
def test_embedded_broker_port_taken_use_running_never_sends_the_credentials(
    mosquitto: Any, mqtt_collector: Any, daemon: Any, tmp_path: Path
) -> None:
    """A box where Debian's mosquitto already owns the port: run anyway, loudly, and
    keep the username and password (meant for our own broker) from the foreign one."""
    col = mqtt_collector(mosquitto, "edge/#")
    cfg = embedded_on_taken_port(tmp_path / "cfg.yaml", mosquitto.port, if_port_taken="use_running")
    d = daemon(cfg)
    col.wait_topic("edge/available", timeout=30)
    assert col.on("edge/available")[0].payload == b"online"
    d.stop()
    assert "NOT started" in d.log() and "NOT sent" in d.log()
    broker_log = mosquitto.log_text()
    # Mosquitto logs each client's user name as u'...' when one is given.
    assert "New client connected" in broker_log and "u'edge'" not in broker_log


@pytest.mark.shared_data
@pytest.mark.slow
def test_rtsp_camera_reconnects_after_server_restart(
    mosquitto: Any,
    mqtt_collector: Any,
    daemon: Any,
    tmp_path: Path,
    videos_dir: Path,
    rtsp_server: Any,
    loop_video: Any,
) -> None:
    """A real RTSP server streaming a real face video is killed and restarted."""
    server = rtsp_server(loop_video(videos_dir / "pyfeat__single_face.mp4", 120), "/cam")
    col = mqtt_collector(mosquitto, "edge/#")
    cfg = write_config(
        tmp_path / "cfg.yaml",
        mosquitto.port,
        [
            {
                "name": "door",
                "source": {"type": "rtsp", "url": server.url, "open_timeout_s": 5},
                "stall_timeout_s": 3,
                "reconnect_initial_s": 0.5,
                "reconnect_max_s": 2,
            }
        ],
    )
    d = daemon(cfg)

    def status_seen(status: str, after: int = 0) -> Callable[[list[Any]], bool]:
        def pred(ms: list[Any]) -> bool:
            states = [m.json() for m in ms if m.topic == "edge/door/state"]
            return any(s["status"] == status for s in states[after:])

        return pred

    col.wait_for(status_seen("online"), timeout=30, what="online")
    col.wait_for(
        lambda ms: any(m.topic == "edge/door/events" for m in ms), timeout=30, what="an event"
    )
    server.stop()
    col.wait_for(status_seen("reconnecting"), timeout=15, what="reconnecting")
    n = len(col.on("edge/door/state"))
    server.start()
    t0 = time.monotonic()
    col.wait_for(status_seen("online", after=n), timeout=15, what="online again")
    assert time.monotonic() - t0 < 10, "reconnect took too long"
    d.stop()
    assert "Traceback" not in d.log(), d.log()
