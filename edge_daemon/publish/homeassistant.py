"""Home Assistant MQTT discovery: one device per daemon, a few entities per camera.

Published retained under ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
so Home Assistant finds them whenever it (re)starts; every entity's availability is the
daemon's ``<prefix>/available`` topic. Entities per camera:

* ``sensor`` *emotion*: ``dominant_emotion`` of the retained state (enum, ``none`` when
  no face, ``uncertain`` when no face's emotion reaches ``events.min_confidence``),
* ``sensor`` *faces*: faces in the latest frame,
* ``sensor`` *stream*: the stream status (enum),
* ``sensor`` *fps*: analysed frames per second (diagnostic),
* ``event`` *emotion events*: fires with the emotion of each ``start``/``update`` event
  and with ``alert_<rule>`` for each alert; ``end`` events render to an empty payload,
  which Home Assistant ignores;
* ``switch`` *analysis* (only with ``mqtt.commands``): pauses and resumes the camera's
  analysis through ``<prefix>/<camera>/set``; its state is ``analysis`` in the state;
* ``image`` *last face* and *last alert* (only with ``mqtt.publish_images``): the
  retained pictures of the latest ``start`` and ``alert`` events.

A camera removed by a reload gets empty retained configs, which deletes its entities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_daemon import __version__
from edge_daemon.labels import UNCERTAIN
from edge_daemon.types import StreamStatus

COMPONENT_OBJECTS: tuple[tuple[str, str], ...] = (
    ("sensor", "emotion"),
    ("sensor", "faces"),
    ("sensor", "stream"),
    ("sensor", "fps"),
    ("event", "emotion_events"),
    ("switch", "analysis"),
    ("image", "last_face"),
    ("image", "last_alert"),
)


@dataclass(frozen=True)
class DiscoveryCamera:
    name: str
    alerts: tuple[str, ...] = ()


def discovery_topic(discovery_prefix: str, component: str, node_id: str, object_id: str) -> str:
    return f"{discovery_prefix}/{component}/{node_id}/{object_id}/config"


def event_types(labels: Sequence[str], alerts: Sequence[str]) -> list[str]:
    return [*labels, *(f"alert_{a}" for a in alerts)]


# The event entity's template: JSON with an ``event_type`` for start/update/alert, empty
# for end (ignored by Home Assistant). Extra keys become event attributes.
EVENT_TEMPLATE = (
    "{% if value_json.type in ['start', 'update'] %}"
    '{"event_type": "{{ value_json.emotion }}", "track_id": {{ value_json.track_id }}, '
    '"confidence": {{ value_json.confidence }}}'
    "{% elif value_json.type == 'alert' %}"
    '{"event_type": "alert_{{ value_json.alert }}", "track_id": {{ value_json.track_id }}, '
    '"emotion": "{{ value_json.emotion }}"}'
    "{% endif %}"
)


def discovery_messages(
    *,
    discovery_prefix: str,
    node_id: str,
    device_name: str,
    topic_prefix: str,
    labels: Sequence[str],
    cameras: Sequence[DiscoveryCamera],
    commands: bool = False,
    images: bool = False,
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` of every discovery config, in a stable order."""
    device = {
        "identifiers": [node_id],
        "name": device_name,
        "manufacturer": "edge-daemon",
        "model": "edge emotion analytics daemon",
        "sw_version": __version__,
    }
    availability = {
        "availability_topic": f"{topic_prefix}/available",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    out: list[tuple[str, bytes]] = []
    for cam in cameras:
        state_topic = f"{topic_prefix}/{cam.name}/state"
        base = {"device": device, **availability}
        configs: dict[tuple[str, str], dict[str, Any]] = {
            ("sensor", "emotion"): {
                "name": f"{cam.name} emotion",
                "state_topic": state_topic,
                "value_template": "{{ value_json.dominant_emotion or 'none' }}",
                "device_class": "enum",
                "options": [*labels, UNCERTAIN, "none"],
                "icon": "mdi:emoticon-outline",
            },
            ("sensor", "faces"): {
                "name": f"{cam.name} faces",
                "state_topic": state_topic,
                "value_template": "{{ value_json.faces | int(0) }}",
                "state_class": "measurement",
                "icon": "mdi:face-recognition",
            },
            ("sensor", "stream"): {
                "name": f"{cam.name} stream",
                "state_topic": state_topic,
                "value_template": "{{ value_json.status }}",
                "device_class": "enum",
                "options": [s.value for s in StreamStatus],
                "icon": "mdi:cctv",
            },
            ("sensor", "fps"): {
                "name": f"{cam.name} fps",
                "state_topic": state_topic,
                "value_template": "{{ value_json.processed_fps | float(0) }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
            ("event", "emotion_events"): {
                "name": f"{cam.name} emotion events",
                "state_topic": f"{topic_prefix}/{cam.name}/events",
                "value_template": EVENT_TEMPLATE,
                "event_types": event_types(labels, cam.alerts),
                "icon": "mdi:emoticon-excited-outline",
            },
        }
        if commands:
            configs[("switch", "analysis")] = {
                "name": f"{cam.name} analysis",
                "command_topic": f"{topic_prefix}/{cam.name}/set",
                "payload_on": '{"analysis": "on"}',
                "payload_off": '{"analysis": "off"}',
                "state_topic": state_topic,
                "value_template": "{{ 'ON' if value_json.analysis != 'paused' else 'OFF' }}",
                "state_on": "ON",
                "state_off": "OFF",
                "icon": "mdi:eye-check-outline",
                "entity_category": "config",
            }
        if images:
            for obj, kind, what in (
                ("last_face", "start", "face"),
                ("last_alert", "alert", "alert"),
            ):
                configs[("image", obj)] = {
                    "name": f"{cam.name} last {what}",
                    "image_topic": f"{topic_prefix}/{cam.name}/snapshot/{kind}",
                    "content_type": "image/jpeg",
                    "icon": "mdi:account-box-outline",
                }
        for (component, obj), cfg in configs.items():
            object_id = f"{cam.name}_{obj}"
            payload = {**cfg, **base, "unique_id": f"{node_id}_{object_id}", "object_id": object_id}
            topic = discovery_topic(discovery_prefix, component, node_id, object_id)
            out.append((topic, json.dumps(payload, sort_keys=True).encode()))
    return out


def removal_messages(
    *, discovery_prefix: str, node_id: str, cameras: Sequence[str]
) -> list[tuple[str, bytes]]:
    """Empty retained configs that delete a removed camera's entities."""
    return [
        (discovery_topic(discovery_prefix, component, node_id, f"{cam}_{obj}"), b"")
        for cam in cameras
        for component, obj in COMPONENT_OBJECTS
    ]
