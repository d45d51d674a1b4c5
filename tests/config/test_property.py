"""Property: whatever the input, the loader returns an AppConfig or raises ConfigError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_daemon.config import AppConfig, ConfigError, load_config_text

HERE = Path(__file__).resolve().parent
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELD_NAMES = sorted(
    {
        "log_level", "model", "detector", "tracker", "events", "mqtt", "cameras", "path", "bundled",
        "providers", "intra_op_threads", "max_batch", "min_confidence", "threads",
        "every_n_frames", "max_faces", "min_face_px", "iou_threshold", "min_hits",
        "max_missed_s", "smoothing_half_life_s", "establish_s", "min_update_interval_s",
        "embedded_broker", "enabled", "host", "port", "client_id", "username", "password",
        "tls", "ca_file", "cert_file", "key_file", "insecure", "keepalive_s", "topic_prefix",
        "qos", "outbox_max", "stats_interval_s", "publish_images", "name", "source", "type",
        "loop", "realtime", "device", "width", "height", "fps", "url", "transport",
        "open_timeout_s", "stall_timeout_s", "reconnect_initial_s", "reconnect_max_s",
        "queue_size", "alerts", "emotion", "min_score", "min_duration_s", "cooldown_s",
    }
)  # fmt: skip

VALID: dict[str, Any] = {
    "log_level": "info",
    "model": {"providers": "auto", "max_batch": 32},
    "detector": {"model": "full_range", "threads": 1},
    "tracker": {"iou_threshold": 0.3},
    "events": {"establish_s": 0.5},
    "mqtt": {"embedded_broker": {"enabled": True}, "host": "127.0.0.1", "tls": {}},
    "cameras": [
        {
            "name": "sample",
            "source": {"type": "sample", "fps": 15},
            "alerts": [{"name": "a", "emotion": "angry"}],
        },
        {"name": "cam2", "source": {"type": "rtsp", "url": "rtsp://h/x"}},
        {"name": "cam3", "source": {"type": "usb", "device": 0}},
    ],
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        ["rtsp://h/x", "http://h", "sample", "rtsp", "usb", "file", "mjpeg", "angry", "${X}",
         "${X:-1}", "/dev/video0", ".", "", "edge/#", "debug", "tcp"]
    )
)  # fmt: skip
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
nested = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def _check(text: str) -> None:
    # A generated document may be valid or not: both outcomes are checked.
    try:
        result = load_config_text(text, "prop.yaml", base_dir=HERE, env={"X": "5"})
    except ConfigError as exc:
        _check_error(exc, text)
    else:
        assert isinstance(result, AppConfig)


def _check_error(exc: ConfigError, text: str) -> None:
    assert exc.errors
    lines = text.count("\n") + 2
    for issue in exc.errors:
        assert issue.file == "prop.yaml"
        assert issue.line is None or 1 <= issue.line <= lines, issue
        assert isinstance(issue.path, str) and issue.message
        assert not issue.message.startswith("internal error"), issue
        assert str(issue)
    assert str(exc)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _check(text)


YAML_TOKENS = [
    "cameras:", "\n", "  ", "- ", "name: a", "source:", "{", "}", "[", "]", ",", ": ", "type: ",
    "sample", "rtsp", "'", '"', "&a ", "*a", "<<: ", "#", "!!int ", "!!str ", "---", "?",
    "mqtt:", "port: 1883", "-1", "1e3", ".inf", "null", "~", "yes", "${X}", "\t", "|", ">",
]  # fmt: skip


@SETTINGS
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40))
def test_yaml_ish_text(tokens: list[str]) -> None:
    _check("".join(tokens))


@SETTINGS
@given(st.dictionaries(keys, nested, max_size=8))
def test_arbitrary_nested_dicts(data: dict[Any, Any]) -> None:
    _check(yaml.safe_dump(data, allow_unicode=True))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = _paths(VALID)[1:]


@SETTINGS
@given(st.sampled_from(ALL_PATHS), nested, st.booleans(), keys)
def test_mutated_valid_config(path: tuple[Any, ...], value: Any, add: bool, key: str) -> None:
    """Replace one value deep inside a valid config (or add a key next to it)."""
    data = copy.deepcopy(VALID)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if add and isinstance(parent, dict):
        parent[key] = value
    else:
        parent[path[-1]] = value
    _check(yaml.safe_dump(data, allow_unicode=True))


def test_valid_base_config_is_valid() -> None:
    assert isinstance(load_config_text(yaml.safe_dump(VALID), base_dir=HERE), AppConfig)
