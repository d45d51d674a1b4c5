"""JSON payloads of the MQTT topics, versioned by ``schema_version``.

The JSON Schemas (draft 2020-12) live in ``edge_daemon/schemas/*.schema.json``; these
functions produce documents that validate against them (checked by the tests; the daemon
itself does not depend on ``jsonschema``).

Event payload (``<prefix>/<camera>/events``)::

    {"schema_version": 1, "type": "start", "camera": "door", "track_id": 3,
     "emotion": "happy", "confidence": 0.91,
     "scores": {"angry": 0.01, "disgust": 0.0, "fear": 0.01, "happy": 0.91,
                "sad": 0.02, "surprise": 0.01, "neutral": 0.04},
     "bbox": {"x": 0.41, "y": 0.22, "w": 0.12, "h": 0.18},
     "ts": 1718000000.123, "seq": 17,
     "instance_id": "6f1c...e2", "boot": 4,
     "alert": "angry_for_10s", "duration_s": 10.4}

``instance_id`` (made once per state directory) and ``boot`` (raised at every start)
say which daemon run produced the event: ``seq`` continues across restarts, so
consumers de-duplicate on ``(instance_id, camera, seq)``, and track ids start again at
every boot, so a track is ``(instance_id, boot, camera, track_id)``.

``bbox`` is an object (not a 4-list) so consumers such as Home Assistant templates can
write ``value_json.bbox.x``; values are normalised to the frame size and clamped to 0..1.
``seq`` counts per camera from 1 in submission order; a gap means events were dropped
(outbox overflow) and a repeated seq means a redelivery (QoS 1 is at-least-once). Keys
from ``Event.extra`` are added at the top level (``alert``, ``duration_s``, ...);
consumers must ignore unknown keys.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from edge_daemon.labels import FER_LABELS
from edge_daemon.publish.settings import check_topic_segment
from edge_daemon.types import Event, StreamStatus

SCHEMA_VERSION = 1

#: The seven FER-2013 classes; every event carries a score for each of them (the schema
#: lists the same names).
EMOTIONS: tuple[str, ...] = FER_LABELS
EVENT_TYPES: tuple[str, ...] = ("start", "update", "end", "alert")

_EVENT_CORE_KEYS = frozenset(
    {"schema_version", "type", "camera", "track_id", "emotion", "confidence", "scores", "bbox"}
    | {"ts", "seq", "instance_id", "boot"}
)
_SCHEMA_FILES = {
    "event": "events.schema.json",
    "state": "state.schema.json",
    "stats": "stats.schema.json",
}


def _unit(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} is not finite: {value!r}")
    return round(min(1.0, max(0.0, v)), 4)


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, enums, tuples and paths to plain JSON types."""
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} is not valid JSON")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys must be str, not {type(k).__name__}")
            out[k] = to_jsonable(v)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return to_jsonable(value.tolist())
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True)
class Origin:
    """Which daemon run produced an event: the state directory's ``instance_id`` (32 hex
    digits) and the ``boot`` counter (>= 1) of this start."""

    instance_id: str
    boot: int

    def __post_init__(self) -> None:
        if not (
            len(self.instance_id) == 32 and all(c in "0123456789abcdef" for c in self.instance_id)
        ):
            raise ValueError(f"instance_id must be 32 hex digits, got {self.instance_id!r}")
        if self.boot < 1:
            raise ValueError(f"boot starts at 1, got {self.boot}")


def event_payload(event: Event, seq: int, origin: Origin) -> dict[str, Any]:
    """Build the event document for ``event`` with sequence number ``seq`` (>= 1),
    produced by ``origin``.

    Raises ValueError/TypeError for an event that would not validate (unknown type or
    emotion, scores missing a class, non-finite numbers, extra keys that collide with
    the core keys), so a bug upstream is reported instead of publishing garbage.
    """
    if event.type not in EVENT_TYPES:
        raise ValueError(f"event type {event.type!r} is not one of {EVENT_TYPES}")
    check_topic_segment(event.camera)
    if seq < 1:
        raise ValueError("seq starts at 1")
    if set(event.scores) != set(EMOTIONS):
        raise ValueError(
            f"event scores must have exactly the classes {EMOTIONS}, got {sorted(event.scores)}"
        )
    if event.emotion not in EMOTIONS:
        raise ValueError(f"emotion {event.emotion!r} is not one of {EMOTIONS}")
    if len(event.bbox) != 4:
        raise ValueError("bbox must be (x, y, w, h)")
    x, y, w, h = event.bbox
    ts = float(event.ts)
    if not math.isfinite(ts) or ts <= 0:
        raise ValueError(f"ts must be epoch seconds, got {event.ts!r}")
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "type": event.type,
        "camera": event.camera,
        "track_id": int(event.track_id),
        "emotion": event.emotion,
        "confidence": _unit(event.confidence, "confidence"),
        # Keep the classes in a fixed order so payloads are diff-able.
        "scores": {k: _unit(event.scores[k], f"scores[{k}]") for k in EMOTIONS},
        "bbox": {
            "x": _unit(x, "bbox.x"),
            "y": _unit(y, "bbox.y"),
            "w": _unit(w, "bbox.w"),
            "h": _unit(h, "bbox.h"),
        },
        "ts": round(ts, 3),
        "seq": int(seq),
        "instance_id": origin.instance_id,
        "boot": int(origin.boot),
    }
    clash = _EVENT_CORE_KEYS.intersection(event.extra)
    if clash:
        raise ValueError(f"Event.extra must not override core keys: {sorted(clash)}")
    doc.update(to_jsonable(dict(event.extra)))
    return doc


def state_payload(camera: str, state: Mapping[str, Any], ts: float | None = None) -> dict[str, Any]:
    """Build the retained ``<prefix>/<camera>/state`` document.

    ``state`` must contain ``status`` (a StreamStatus or its value); other keys (fps,
    width, height, error, ...) are passed through. ``ts`` defaults to ``state["ts"]`` or
    now.
    """
    check_topic_segment(camera)
    if "status" not in state:
        raise ValueError("state needs a 'status'")
    status = StreamStatus(state["status"]).value  # raises ValueError for an unknown status
    body: dict[str, Any] = to_jsonable(dict(state))
    body.pop("schema_version", None)
    body.pop("camera", None)
    when = float(body.pop("ts", ts if ts is not None else time.time()))
    return (
        {"schema_version": SCHEMA_VERSION, "camera": camera, "ts": round(when, 3)}
        | body
        | {"status": status}
    )


def stats_payload(stats: Mapping[str, Any], ts: float | None = None) -> dict[str, Any]:
    """Build the ``<prefix>/stats`` document: ``schema_version`` and ``ts`` plus ``stats``."""
    body: dict[str, Any] = to_jsonable(dict(stats))
    body.pop("schema_version", None)
    when = float(body.pop("ts", ts if ts is not None else time.time()))
    return {"schema_version": SCHEMA_VERSION, "ts": round(when, 3)} | body


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/Infinity are rejected (they are not JSON)."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema for ``kind`` ("event", "state" or "stats"), as shipped in the package."""
    try:
        name = _SCHEMA_FILES[kind]
    except KeyError:
        raise ValueError(f"unknown schema {kind!r}; known: {sorted(_SCHEMA_FILES)}") from None
    text = resources.files("edge_daemon").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
