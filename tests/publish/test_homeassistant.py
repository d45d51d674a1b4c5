"""Home Assistant discovery: the messages (pure), their templates rendered with Jinja2
(the engine Home Assistant uses), and the retained configs on a real broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest

from edge_daemon.labels import FER_LABELS
from edge_daemon.publish.homeassistant import (
    COMPONENT_OBJECTS,
    DiscoveryCamera,
    discovery_messages,
    removal_messages,
)
from edge_daemon.types import StreamStatus
from tests.fixtures.mqtt import MqttCollector
from tests.support.app import app_config, running_app, sample_camera


def messages(**kw: Any) -> dict[str, dict[str, Any]]:
    args = {
        "discovery_prefix": "homeassistant",
        "node_id": "box1",
        "device_name": "Shop box",
        "topic_prefix": "edge",
        "labels": FER_LABELS,
        "cameras": [DiscoveryCamera("door", ("angry-customer",)), DiscoveryCamera("yard")],
    } | kw
    return {t: json.loads(p) for t, p in discovery_messages(**args)}


def render(template: str, payload: dict[str, Any]) -> str:
    # Home Assistant renders value templates with Jinja2 and `value_json` bound.
    return jinja2.Environment(autoescape=False).from_string(template).render(value_json=payload)


def test_one_device_five_entities_per_camera() -> None:
    msgs = messages()
    assert len(msgs) == 10
    assert "homeassistant/sensor/box1/door_emotion/config" in msgs
    assert "homeassistant/event/box1/yard_emotion_events/config" in msgs
    uids = [m["unique_id"] for m in msgs.values()]
    assert len(set(uids)) == len(uids)
    for m in msgs.values():
        assert m["device"]["identifiers"] == ["box1"] and m["device"]["name"] == "Shop box"
        assert m["availability_topic"] == "edge/available"
        assert (m["payload_available"], m["payload_not_available"]) == ("online", "offline")
    door_events = msgs["homeassistant/event/box1/door_emotion_events/config"]
    assert door_events["state_topic"] == "edge/door/events"
    assert door_events["event_types"] == [*FER_LABELS, "alert_angry-customer"]
    stream = msgs["homeassistant/sensor/box1/door_stream/config"]
    assert stream["options"] == [s.value for s in StreamStatus]


@pytest.mark.parametrize(
    ("state", "emotion", "faces", "status"),
    [
        ({"status": "online", "faces": 2, "dominant_emotion": "happy"}, "happy", "2", "online"),
        ({"status": "reconnecting", "faces": 0, "dominant_emotion": None}, "none", "0", None),
    ],
)
def test_sensor_templates(state: dict[str, Any], emotion: str, faces: str, status: Any) -> None:
    msgs = messages()
    sensor = msgs["homeassistant/sensor/box1/door_emotion/config"]
    assert render(sensor["value_template"], state) == emotion
    assert emotion in sensor["options"]
    assert (
        render(msgs["homeassistant/sensor/box1/door_faces/config"]["value_template"], state)
        == faces
    )
    stream_t = msgs["homeassistant/sensor/box1/door_stream/config"]["value_template"]
    assert render(stream_t, state) == state["status"]


def test_event_template_maps_events_to_event_types() -> None:
    cfg = messages()["homeassistant/event/box1/door_emotion_events/config"]
    base = {"camera": "door", "track_id": 3, "emotion": "sad", "confidence": 0.8}
    start = json.loads(render(cfg["value_template"], base | {"type": "start"}))
    assert start == {"event_type": "sad", "track_id": 3, "confidence": 0.8}
    alert = json.loads(
        render(cfg["value_template"], base | {"type": "alert", "alert": "angry-customer"})
    )
    assert alert["event_type"] == "alert_angry-customer"
    assert start["event_type"] in cfg["event_types"] and alert["event_type"] in cfg["event_types"]
    # `end` renders to nothing: Home Assistant ignores an empty event payload.
    assert render(cfg["value_template"], base | {"type": "end"}).strip() == ""


def test_removal_clears_every_entity_of_a_camera() -> None:
    topics = {t for t, p in removal_messages(discovery_prefix="ha", node_id="n", cameras=["door"])}
    made = {
        t.replace("homeassistant/", "ha/").replace("/box1/", "/n/")
        for t in messages(cameras=[DiscoveryCamera("door")], commands=True, images=True)
    }
    assert topics == made  # the switch too: it may have been published before


def test_with_commands_each_camera_gets_an_analysis_switch() -> None:
    assert not any("/switch/" in t for t in messages())
    msgs = messages(commands=True)
    switch = msgs["homeassistant/switch/box1/door_analysis/config"]
    assert switch["command_topic"] == "edge/door/set"
    assert json.loads(switch["payload_off"]) == {"analysis": "off"}
    assert json.loads(switch["payload_on"]) == {"analysis": "on"}
    assert switch["state_topic"] == "edge/door/state"
    assert render(switch["value_template"], {"analysis": "paused"}) == switch["state_off"]
    assert render(switch["value_template"], {"analysis": "on"}) == switch["state_on"]
    assert render(switch["value_template"], {}) == switch["state_on"]  # older daemons


def test_discovery_on_a_real_broker_follows_reloads(
    tmp_path: Path, mosquitto: Any, mqtt_collector: Any
) -> None:
    data = app_config(
        mosquitto.port,
        [sample_camera("door"), sample_camera("yard")],
        homeassistant={"enabled": True, "node_id": "box1"},
    )
    path = tmp_path / "c.yaml"
    with running_app(path, data) as app:
        col: MqttCollector = mqtt_collector(mosquitto, "homeassistant/#")
        col.wait_for(lambda ms: len({m.topic for m in ms}) >= 10, 15, "10 discovery configs")
        # A late subscriber sees them too: they are retained.
        late: MqttCollector = mqtt_collector(mosquitto, "homeassistant/#")
        got = late.wait_for(lambda ms: len(ms) >= 10, 15, "retained configs")
        assert all(m.retain for m in got)
        cfg = json.loads(late.on("homeassistant/sensor/box1/yard_emotion/config")[0].payload)
        assert cfg["state_topic"] == "edge/yard/state"

        # The entity's state topic carries what the template reads.
        state_col: MqttCollector = mqtt_collector(mosquitto, "edge/door/state")
        state = state_col.wait_topic("edge/door/state", 1, 15)[-1].json()
        assert "dominant_emotion" in state and "faces" in state

        # Remove `yard` by reload: its five configs are cleared (empty retained payload).
        path.write_text(
            json.dumps(
                app_config(
                    mosquitto.port,
                    [sample_camera("door")],
                    homeassistant={"enabled": True, "node_id": "box1"},
                )
            )
        )
        assert app.reload().removed == ["yard"]
        col.wait_for(
            lambda ms: (
                sum(
                    m.topic.startswith("homeassistant/")
                    and "/yard_" in m.topic
                    and m.payload == b""
                    for m in ms
                )
                # Every kind of entity is cleared, including those yard never had
                # (switch, images): waiting for only its five let the last clears reach
                # the fresh subscriber below live, and CI counted them as left over.
                >= len(COMPONENT_OBJECTS)
            ),
            15,
            "yard configs cleared",
        )
        # col saw the clears, so the broker's retained store has them already.
        fresh: MqttCollector = mqtt_collector(mosquitto, "homeassistant/#")
        retained = fresh.wait_for(lambda ms: len(ms) >= 5, 15, "door configs")
        fresh.sync()  # every retained config has arrived: exactly door's five are left
        assert {m.topic.split("/")[3] for m in fresh.messages if m.retain} == {
            "door_emotion",
            "door_faces",
            "door_stream",
            "door_fps",
            "door_emotion_events",
        }
        assert retained


def test_with_pictures_each_camera_gets_its_last_face_and_alert_images() -> None:
    assert not any("/image/" in t for t in messages())
    msgs = messages(images=True)
    face = msgs["homeassistant/image/box1/door_last_face/config"]
    assert face["image_topic"] == "edge/door/snapshot/start"
    assert face["content_type"] == "image/jpeg"
    assert msgs["homeassistant/image/box1/yard_last_alert/config"]["image_topic"] == (
        "edge/yard/snapshot/alert"
    )
