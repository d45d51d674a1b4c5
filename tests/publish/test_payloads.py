"""Payload builders against the shipped JSON Schemas (draft 2020-12)."""

from __future__ import annotations

import json
import time

import jsonschema
import numpy as np
import pytest

from edge_daemon.publish import EMOTIONS, event_payload, load_schema, state_payload, stats_payload
from edge_daemon.publish.payloads import Origin, dumps
from edge_daemon.types import Event, StreamStatus

ORIGIN = Origin("6f1c" * 8, 3)


def make_event(**kw: object) -> Event:
    scores = dict.fromkeys(EMOTIONS, 0.05)
    scores["happy"] = 0.7
    base: dict[str, object] = {
        "type": "start",
        "camera": "cam1",
        "track_id": 3,
        "emotion": "happy",
        "confidence": 0.7,
        "scores": scores,
        "bbox": (0.1, 0.2, 0.3, 0.4),
        "ts": time.time(),
    }
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_schemas_are_valid_draft_2020_12() -> None:
    for kind in ("event", "state", "stats"):
        assert load_schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        validator(kind)


def test_schema_emotions_match_labels() -> None:
    props = load_schema("event")["properties"]
    assert tuple(props["scores"]["required"]) == EMOTIONS
    assert tuple(load_schema("event")["$defs"]["emotion"]["enum"]) == EMOTIONS


@pytest.mark.parametrize("etype", ["start", "update", "end", "alert"])
def test_event_payload_validates(etype: str) -> None:
    extra = {"alert": "angry_long", "duration_s": 12.5} if etype == "alert" else {}
    doc = event_payload(make_event(type=etype, extra=extra), seq=7, origin=ORIGIN)
    validator("event").validate(doc)
    assert doc["seq"] == 7 and doc["schema_version"] == 1 and doc["type"] == etype
    assert (doc["instance_id"], doc["boot"]) == (ORIGIN.instance_id, 3)
    assert doc["bbox"] == {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}
    assert list(doc["scores"]) == list(EMOTIONS)
    if etype == "alert":
        assert doc["alert"] == "angry_long" and doc["duration_s"] == 12.5
    # round-trips through the wire format
    assert json.loads(dumps(doc)) == doc


def test_event_payload_converts_numpy_and_clamps_bbox() -> None:
    scores = {k: np.float32(1 / 7) for k in EMOTIONS}
    ev = make_event(
        confidence=np.float32(0.25),
        scores=scores,
        track_id=np.int64(5),
        bbox=(np.float32(-0.01), 0.5, np.float64(1.2), 0.1),
        extra={"duration_s": np.float64(3.0), "history": np.array([1, 2])},
    )
    doc = event_payload(ev, 1, ORIGIN)
    validator("event").validate(doc)
    assert doc["bbox"]["x"] == 0.0 and doc["bbox"]["w"] == 1.0
    assert isinstance(doc["track_id"], int) and doc["history"] == [1, 2]
    json.loads(dumps(doc))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"type": "bogus"}, "event type"),
        ({"emotion": "joy"}, "emotion"),
        ({"scores": {"happy": 1.0}}, "scores"),
        ({"confidence": float("nan")}, "finite"),
        ({"camera": "a/b"}, "topic"),
        ({"extra": {"seq": 3}}, "core keys"),
        ({"ts": 0.0}, "epoch"),
    ],
)
def test_invalid_events_raise(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        event_payload(make_event(**kw), 1, ORIGIN)


def test_seq_must_start_at_one() -> None:
    with pytest.raises(ValueError, match="seq starts at 1"):
        event_payload(make_event(), 0, ORIGIN)


def test_state_payload_validates() -> None:
    doc = state_payload("cam1", {"status": StreamStatus.ONLINE, "fps": 14.8, "width": 640})
    validator("state").validate(doc)
    assert doc["status"] == "online" and doc["camera"] == "cam1" and doc["ts"] > 0
    doc = state_payload("cam1", {"status": "failed", "error": "no such file", "ts": 12.0})
    validator("state").validate(doc)
    assert doc["ts"] == 12.0
    with pytest.raises(ValueError, match="not a valid StreamStatus"):
        state_payload("cam1", {"status": "sleeping"})
    with pytest.raises(ValueError, match="needs a 'status'"):
        state_payload("cam1", {"fps": 1})


def test_stats_payload_validates() -> None:
    doc = stats_payload(
        {
            "uptime_s": 12.0,
            "cameras": {"cam1": {"fps": 15.0}},
            "mqtt": {"connected": True, "events_published": 3, "outbox": 0},
        }
    )
    validator("stats").validate(doc)
    bad = dict(doc, schema_version=2)
    with pytest.raises(jsonschema.ValidationError):
        validator("stats").validate(bad)


@pytest.mark.parametrize(("instance_id", "boot"), [("abc", 1), ("G" * 32, 1), ("0" * 32, 0)])
def test_an_origin_must_be_32_hex_digits_and_boot_from_1(instance_id: str, boot: int) -> None:
    with pytest.raises(ValueError, match=r"instance_id must be|boot starts at 1"):
        Origin(instance_id, boot)


def test_extra_keys_cannot_override_the_identity() -> None:
    with pytest.raises(ValueError, match="must not override core keys"):
        event_payload(make_event(extra={"boot": 1}), 1, ORIGIN)
