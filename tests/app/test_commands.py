"""Runtime control end to end (in process): a real App with ``mqtt.commands``, a real
Mosquitto; commands published on <prefix>/<camera>/set pause and resume a camera's
analysis, show in its state, are logged; malformed ones are refused and counted."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.fixtures.mqtt import MqttCollector
from tests.support.app import app_config, running_app, sample_camera
from tests.support.scenes import PROMPT_EVENTS


def send(port: int, topic: str, payload: bytes) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.publish(topic, payload, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def analysis_of(col: MqttCollector) -> str | None:
    states = col.on("edge/door/state")
    return states[-1].json().get("analysis") if states else None


def test_a_camera_is_paused_and_resumed_by_command(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_daemon")
    col: MqttCollector = mqtt_collector(mosquitto, ["edge/door/events", "edge/door/state"])
    mqtt_cfg = {"host": "127.0.0.1", "port": mosquitto.port, "stats_interval_s": 1,
                "commands": True}  # fmt: skip
    data = app_config(mosquitto.port, [sample_camera("door")], **PROMPT_EVENTS)
    data["mqtt"] = mqtt_cfg
    with running_app(tmp_path / "c.yaml", data) as app:
        main_loop = threading.Thread(target=app.wait, daemon=True)  # applies the commands
        main_loop.start()
        col.wait_for(lambda ms: any(m.topic.endswith("/events") for m in ms), 60, "an event")
        assert analysis_of(col) == "on"

        send(mosquitto.port, "edge/door/set", b'{"analysis": "off"}')
        col.wait_for(lambda ms: analysis_of(col) == "paused", 10, "paused state")
        types = [m.json()["type"] for m in col.on("edge/door/events")]
        assert types[-1] == "end"  # the open track ended at the pause
        n = len(types)
        faces = app.cameras[0].pipeline.analyzer.metrics.snapshot()["faces"]
        time.sleep(1.5)  # frames keep coming for 1.5 s (15 fps): none is analysed
        assert len(col.on("edge/door/events")) == n
        assert app.cameras[0].pipeline.analyzer.metrics.snapshot()["faces"] == faces

        send(mosquitto.port, "edge/door/set", b'{"analysis": "on"}')
        col.wait_for(lambda ms: analysis_of(col) == "on", 10, "analysis on again")
        col.wait_for(
            lambda ms: (
                [m.json()["type"] for m in col.on("edge/door/events")][n:].count("start") >= 1
            ),
            30,
            "a new track after resuming",
        )

        for bad in (b"off", b'{"analysis": "of"}', b'{"fps": 3}'):
            send(mosquitto.port, "edge/door/set", bad)
        send(mosquitto.port, "edge/cellar/set", b'{"analysis": "off"}')  # no such camera
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = app.publisher.stats() if app.publisher else {}
            if st.get("commands_refused") == 3 and app.commands_unknown_camera == 1:
                break
            time.sleep(0.1)
        st = app.publisher.stats() if app.publisher else {}
        assert st["commands_received"] == 3 and st["commands_refused"] == 3
        assert app.commands_unknown_camera == 1
        assert app.cameras[0].pipeline.analysis_on.is_set()  # refused ones changed nothing
        app.stop_event.set()
        main_loop.join(5)
    text = caplog.text
    assert "MQTT command: camera door analysis off (was on)" in text
    assert "MQTT command: camera door analysis on (was off)" in text
    assert "command refused: not JSON" in text and "unknown setting 'fps'" in text
    assert "unknown camera 'cellar'" in text


def test_without_mqtt_commands_nothing_listens(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    col: MqttCollector = mqtt_collector(mosquitto, ["edge/door/state"])
    data = app_config(mosquitto.port, [sample_camera("door")])
    with running_app(tmp_path / "c.yaml", data) as app:
        main_loop = threading.Thread(target=app.wait, daemon=True)
        main_loop.start()
        col.wait_for(lambda ms: analysis_of(col) == "on", 60, "the state")
        send(mosquitto.port, "edge/door/set", b'{"analysis": "off"}')
        time.sleep(1.0)  # a listening daemon would have paused within a tick (0.5 s)
        assert app.cameras[0].pipeline.analysis_on.is_set()
        assert app.publisher is not None and app.publisher.stats()["commands_received"] == 0
        app.stop_event.set()
        main_loop.join(5)
    assert json.loads(col.on("edge/door/state")[-1].payload)["analysis"] == "on"


def test_events_carry_their_face_picture_when_publish_images_is_on(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    import cv2
    import numpy as np

    col: MqttCollector = mqtt_collector(mosquitto, ["edge/door/events", "edge/door/snapshot/+"])
    data = app_config(mosquitto.port, [sample_camera("door")], **PROMPT_EVENTS)
    data["mqtt"]["publish_images"] = True
    with running_app(tmp_path / "c.yaml", data):
        col.wait_for(lambda ms: bool(col.on("edge/door/snapshot/start")), 60, "a start picture")
    start = next(m.json() for m in col.on("edge/door/events") if m.json()["type"] == "start")
    (pic,) = col.on("edge/door/snapshot/start")[:1]
    assert pic.qos == 0
    late: MqttCollector = mqtt_collector(mosquitto, "edge/door/snapshot/start")
    late.wait_for(lambda ms: len(ms) >= 1, 10, "the retained picture")
    assert late.messages[0].retain  # kept on the broker for who subscribes later
    img = cv2.imdecode(np.frombuffer(pic.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    # The face of that event with a 25 % margin, in the 640x480 sample frame (clipped).
    bw, bh = start["bbox"]["w"] * 640, start["bbox"]["h"] * 480
    assert bw <= img.shape[1] <= bw * 1.5 + 2 and bh <= img.shape[0] <= bh * 1.5 + 2
    assert not col.on("edge/door/snapshot/end")  # an end has no face to show
