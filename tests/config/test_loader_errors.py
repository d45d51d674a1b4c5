"""Malformed configs: every problem names the right key path and the right YAML line.

Each case's YAML marks the line the issue must point at with ``# <--`` (no marker: the
issue has no line, e.g. an empty file).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge_daemon.config import (
    BUNDLED_MODELS,
    EMOTIONS,
    SOURCE_TYPES,
    ConfigError,
    ConfigIssue,
    load_config_text,
)

MARK = "# <--"

CAM = """\
cameras:
  - name: cam
    source: {type: sample}
"""


def _expected_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if MARK in line:
            return number
    return None


# (id, yaml, expected issue path, fragment the message must contain)
CASES: list[tuple[str, str, str, str]] = [
    (
        "wrong-type-int",
        CAM + "mqtt:\n  port: abc # <--\n",
        "mqtt.port",
        "must be an integer (got 'abc')",
    ),
    (
        "wrong-type-bool",
        "cameras:\n  - name: cam\n    enabled: maybe # <--\n    source: {type: sample}\n",
        "cameras[0].enabled",
        "must be true or false",
    ),
    (
        "wrong-type-mapping",
        CAM + "tracker: fast # <--\n",
        "tracker",
        "must be a mapping",
    ),
    (
        "unknown-key-top",
        CAM + "logging: debug # <--\n",
        "logging",
        "unknown key 'logging' (allowed: log_level, model, detector, tracker, events, mqtt, "
        "homeassistant, metrics, live_view, state, cameras)",
    ),
    (
        "unknown-key-depth2-typo",
        CAM + "tracker:\n  iou_treshold: 0.3 # <--\n",
        "tracker.iou_treshold",
        "did you mean 'iou_threshold'?",
    ),
    (
        "unknown-key-depth3",
        CAM + "mqtt:\n  embedded_broker:\n    enable: true # <--\n",
        "mqtt.embedded_broker.enable",
        "unknown key 'enable' (allowed: enabled, host, port, if_port_taken)",
    ),
    (
        "unknown-key-in-source",
        "cameras:\n  - name: cam\n    source:\n      type: rtsp\n      url: rtsp://h/s\n"
        "      uri: rtsp://h/s # <--\n",
        "cameras[0].source.uri",
        "allowed: type, url, transport, open_timeout_s",
    ),
    (
        "unknown-key-in-alert",
        CAM + "    alerts:\n      - name: a\n        emotion: angry\n        score: 0.5 # <--\n",
        "cameras[0].alerts[0].score",
        "allowed: name, emotion, min_score, min_duration_s, cooldown_s",
    ),
    (
        "missing-cameras",
        "log_level: info # <--\n",
        "cameras",
        "required key 'cameras' is missing",
    ),
    (
        "missing-camera-name",
        "cameras:\n  - source: {type: sample} # <--\n",
        "cameras[0].name",
        "required key 'name' is missing",
    ),
    (
        "missing-source",
        "cameras:\n  - name: cam # <--\n    enabled: true\n",
        "cameras[0].source",
        "required key 'source' is missing",
    ),
    (
        "missing-rtsp-url",
        "cameras:\n  - name: cam\n    source: # <--\n      type: rtsp\n",
        "cameras[0].source.url",
        "required key 'url' is missing",
    ),
    (
        "missing-source-type",
        "cameras:\n  - name: cam\n    source: # <--\n      path: a.mp4\n",
        "cameras[0].source.type",
        "required key 'type' is missing (allowed: " + ", ".join(SOURCE_TYPES) + ")",
    ),
    (
        "unknown-source-type",
        "cameras:\n  - name: cam\n    source:\n      type: webcam # <--\n",
        "cameras[0].source.type",
        "unknown source type 'webcam' (allowed: file, usb, rtsp, mjpeg, sample)",
    ),
    (
        "rtsp-url-wrong-scheme",
        "cameras:\n  - name: cam\n    source:\n      type: rtsp\n      url: http://x # <--\n",
        "cameras[0].source.url",
        "must start with rtsp:// or rtsps:// (got 'http://x')",
    ),
    (
        "rtsp-url-no-host",
        "cameras:\n  - name: cam\n    source: {type: rtsp, url: 'rtsp:///live'} # <--\n",
        "cameras[0].source.url",
        "must include a host",
    ),
    (
        "mjpeg-url-wrong-scheme",
        "cameras:\n  - name: cam\n    source:\n      type: mjpeg\n      url: ftp://cam/v # <--\n",
        "cameras[0].source.url",
        "must start with http:// or https://",
    ),
    (
        "negative-fps",
        "cameras:\n  - name: cam\n    source:\n      type: sample\n      fps: -5 # <--\n",
        "cameras[0].source.fps",
        "must be between 1 and 120 (got -5)",
    ),
    (
        "negative-stall-timeout",
        CAM + "    stall_timeout_s: -1 # <--\n",
        "cameras[0].stall_timeout_s",
        "must be between 0.5 and 600",
    ),
    (
        "mirror-floor-over-one",
        CAM + "model:\n  tta_hflip_below: 1.5 # <--\n",
        "model.tta_hflip_below",
        "must be between 0 and 1 (got 1.5)",
    ),
    (
        "infinite-confidence",
        CAM + "events:\n  min_confidence: .inf # <--\n",
        "events.min_confidence",
        "finite",
    ),
    (
        "duplicate-camera-names",
        CAM + "  - name: cam # <--\n    source: {type: sample}\n",
        "cameras[1].name",
        "camera name 'cam' is already used by cameras[0]",
    ),
    (
        "camera-name-with-space",
        "cameras:\n  - name: front door # <--\n    source: {type: sample}\n",
        "cameras[0].name",
        "1-64 characters",
    ),
    (
        "no-cameras",
        "cameras: [] # <--\n",
        "cameras",
        "at least 1 entry",
    ),
    (
        "cameras-not-a-list",
        "cameras: # <--\n  cam: {source: {type: sample}}\n",
        "cameras",
        "must be a list",
    ),
    (
        "model-path-missing",
        CAM + "model:\n  path: models/missing.onnx # <--\n",
        "model.path",
        "file not found",
    ),
    (
        "model-path-unreadable-directory",
        CAM + "model:\n  path: . # <--\n",
        "model.path",
        "not a regular file",
    ),
    (
        "file-source-missing-file",
        "cameras:\n  - name: cam\n    source:\n      type: file\n      path: nope.mp4 # <--\n",
        "cameras[0].source.path",
        "file not found",
    ),
    (
        "tls-ca-missing",
        CAM + "mqtt:\n  tls:\n    ca_file: ca.pem # <--\n",
        "mqtt.tls.ca_file",
        "file not found",
    ),
    (
        "topic-prefix-wildcard",
        CAM + "mqtt:\n  topic_prefix: 'edge/#' # <--\n",
        "mqtt.topic_prefix",
        "must not contain MQTT wildcards",
    ),
    (
        "topic-prefix-plus",
        CAM + "mqtt:\n  topic_prefix: a/+/b # <--\n",
        "mqtt.topic_prefix",
        "must not contain MQTT wildcards",
    ),
    (
        "topic-prefix-trailing-slash",
        CAM + "mqtt:\n  topic_prefix: edge/ # <--\n",
        "mqtt.topic_prefix",
        "must not start or end with '/'",
    ),
    (
        "snapshot-kind",
        CAM + "mqtt:\n  snapshots: {what: everything} # <--\n",
        "mqtt.snapshots.what",
        "must be one of: face, frame_blur, frame (got 'everything')",
    ),
    (
        "live-view-empty-token",
        CAM + "live_view:\n  token: '' # <--\n",
        "live_view.token",
        "is empty, which would turn authentication off",
    ),
    (
        "metrics-blank-token",
        CAM + "metrics:\n  token: '  ' # <--\n",
        "metrics.token",
        "is empty, which would turn authentication off",
    ),
    (
        "password-without-username",
        CAM + "mqtt:\n  password: x # <--\n",
        "mqtt.password",
        "mqtt.password is set but mqtt.username is not",
    ),
    (
        "topic-prefix-dollar",
        CAM + "mqtt:\n  topic_prefix: $SYS/edge # <--\n",
        "mqtt.topic_prefix",
        "must not start with '$'",
    ),
    (
        "topic-prefix-empty-level",
        CAM + "mqtt:\n  topic_prefix: a//b # <--\n",
        "mqtt.topic_prefix",
        "empty topic levels",
    ),
    (
        "topic-prefix-empty",
        CAM + "mqtt:\n  topic_prefix: '' # <--\n",
        "mqtt.topic_prefix",
        "must not be empty",
    ),
    (
        "reconnect-max-below-initial",
        CAM + "    reconnect_initial_s: 10\n    reconnect_max_s: 5 # <--\n",
        "cameras[0].reconnect_max_s",
        "must be >= reconnect_initial_s (10) (got 5)",
    ),
    (
        "broken-yaml",
        "cameras:\n  - name: cam\n   source: {type: sample} # <--\n",
        "",
        "invalid YAML",
    ),
    (
        "unclosed-flow-mapping",
        "cameras:\n  - name: cam\n    source: {type: sample\nlog_level: info # <--\n",
        "",
        "invalid YAML",
    ),
    (
        "tab-indentation",
        "cameras:\n\t- name: cam # <--\n",
        "",
        "tabs",
    ),
    ("empty-file", "", "", "the configuration is empty"),
    ("comments-only", "# nothing here\n", "", "the configuration is empty"),
    (
        "top-level-list",
        "- cameras # <--\n",
        "",
        "the top level must be a mapping",
    ),
    (
        "bad-alert-emotion",
        CAM + "    alerts:\n      - name: a\n        emotion: furious # <--\n",
        "cameras[0].alerts[0].emotion",
        "must be one of: " + ", ".join(EMOTIONS) + " (got 'furious')",
    ),
    (
        "alert-score-above-one",
        CAM + "    alerts:\n      - {name: a, emotion: sad, min_score: 1.5} # <--\n",
        "cameras[0].alerts[0].min_score",
        "must be between 0 and 1",
    ),
    (
        "duplicate-alert-names",
        CAM
        + "    alerts:\n      - {name: a, emotion: sad}\n      - {name: a, emotion: fear} # <--\n",
        "cameras[0].alerts[1].name",
        "already used by alerts[0]",
    ),
    (
        "unset-env-var",
        CAM + "mqtt:\n  username: edge\n  password: ${EDGE_TEST_UNSET_VAR} # <--\n",
        "mqtt.password",
        "environment variable EDGE_TEST_UNSET_VAR is not set",
    ),
    (
        "bad-env-reference",
        CAM + "mqtt:\n  host: ${1HOST} # <--\n",
        "mqtt.host",
        "invalid variable reference",
    ),
    (
        "log-level-literal",
        CAM + "log_level: verbose # <--\n",
        "log_level",
        "must be one of: debug, info, warning, error (got 'verbose')",
    ),
    (
        "qos-literal",
        CAM + "mqtt: {qos: 3} # <--\n",
        "mqtt.qos",
        "must be one of: 0, 1, 2",
    ),
    (
        "providers-literal",
        CAM + "model:\n  providers: gpu # <--\n",
        "model.providers",
        "must be one of: auto, cpu, cuda",
    ),
    (
        "bundled-model-literal",
        CAM + "model:\n  bundled: precise # <--\n",
        "model.bundled",
        "must be one of: auto, fast, nano, ferplus, fer2013, accurate",
    ),
    (
        "model-path-and-bundled",
        CAM + f"model:\n  path: {BUNDLED_MODELS['fast']}\n  bundled: accurate # <--\n",
        "model.bundled",
        "model.path and model.bundled are both set",
    ),
    (
        "transport-literal",
        "cameras:\n  - name: cam\n    source:\n      type: rtsp\n      url: rtsp://cam/live\n"
        "      transport: quic # <--\n",
        "cameras[0].source.transport",
        "must be one of: tcp, udp",
    ),
    (
        "usb-device-out-of-range",
        "cameras:\n  - name: cam\n    source: {type: usb, device: 64} # <--\n",
        "cameras[0].source.device",
        "device index 0..63 or a path like /dev/video0",
    ),
    (
        "usb-device-bad-path",
        "cameras:\n  - name: cam\n    source:\n      type: usb\n      device: /dev/sda # <--\n",
        "cameras[0].source.device",
        "device index 0..63 or a path like /dev/video0",
    ),
    (
        "detector-threads-zero",
        CAM + "detector:\n  threads: 0 # <--\n",
        "detector.threads",
        "must be between 1 and 8 (got 0)",
    ),
    (
        "float-for-int",
        CAM + "model:\n  max_batch: 1.5 # <--\n",
        "model.max_batch",
        "must be a whole number",
    ),
    (
        "duplicate-yaml-key",
        CAM + "log_level: info\nlog_level: debug # <--\n",
        "log_level",
        "duplicate key 'log_level' (first defined at line 4)",
    ),
    (
        "non-string-key",
        CAM + "tracker: # <--\n  1: 2\n",
        "tracker",
        "keys must be strings",
    ),
    (
        "invalid-date-value",
        CAM + "log_level: 2024-13-45 # <--\n",
        "",
        "invalid YAML value",
    ),
    (
        "password-not-echoed",
        CAM + "mqtt:\n  password: [secret] # <--\n",
        "mqtt.password",
        "must be a string",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_config_reports_path_and_line(
    text: str, path: str, fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "config.yaml", base_dir=tmp_path, env={})
    issues = caught.value.errors
    assert issues, "ConfigError without issues"
    line = _expected_line(text)
    matching = [i for i in issues if i.path == path and fragment in i.message]
    assert matching, f"no issue with path {path!r} containing {fragment!r}: {issues}"
    assert matching[0].line == line, f"expected line {line}: {matching[0]}"
    assert matching[0].file == "config.yaml"


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_issue_str_format() -> None:
    issue = ConfigIssue(
        "config.yaml", 12, "cameras[0].source.url", "must start with rtsp:// or rtsps://"
    )
    assert (
        str(issue) == "config.yaml:12: cameras[0].source.url: must start with rtsp:// or rtsps://"
    )
    assert str(ConfigIssue("c.yaml", None, "", "file not found")) == "c.yaml: file not found"


def test_issue_message_is_exactly_as_documented(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        cameras:
          - name: cam
            source:
              type: rtsp
              url: http://x
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "config.yaml", base_dir=tmp_path)
    assert [str(i) for i in caught.value.errors] == [
        "config.yaml:5: cameras[0].source.url: must start with rtsp:// or rtsps:// (got 'http://x')"
    ]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = CAM + "log_level: loud\nmqtt:\n  port: 0\n  qos: 5\ntracker:\n  min_hits: 0\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", base_dir=tmp_path)
    paths = [i.path for i in caught.value.errors]
    assert paths == ["log_level", "mqtt.port", "mqtt.qos", "tracker.min_hits"]
    rendered = str(caught.value)
    assert rendered.startswith("invalid configuration (4 problems):")
    assert "c.yaml:6: mqtt.port: must be between 1 and 65535 (got 0)" in rendered


def test_password_value_is_never_echoed(tmp_path: Path) -> None:
    text = CAM + "mqtt:\n  password: 12345678\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", base_dir=tmp_path)
    assert "12345678" not in str(caught.value)


def test_rtsp_credentials_are_redacted_in_messages(tmp_path: Path) -> None:
    text = "cameras:\n  - name: c\n    source: {type: mjpeg, url: 'rtsp://u:hunter2@cam/x'}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", base_dir=tmp_path)
    assert "hunter2" not in str(caught.value)
    assert "rtsp://u:***@cam/x" in str(caught.value)


def test_recursive_alias_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text("a: &a [*a]\n", "c.yaml", base_dir=tmp_path)
    assert "too large or nested too deeply" in caught.value.errors[0].message


def test_billion_laughs_is_a_config_error(tmp_path: Path) -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    with pytest.raises(ConfigError) as caught:
        load_config_text("\n".join(lines) + "\n", "c.yaml", base_dir=tmp_path)
    assert "too large" in caught.value.errors[0].message


def test_deeply_nested_flow_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config_text("a: " + "[" * 5000 + "]" * 5000 + "\n", "c.yaml", base_dir=tmp_path)


def test_multiple_documents_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CAM + "---\n" + CAM, "c.yaml", base_dir=tmp_path)
    assert caught.value.errors[0].line == 4
    assert "single document" in caught.value.errors[0].message


# ------------------------------------------- files that are no config (robustness round 2)


def test_devices_fifos_and_huge_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    import os

    from edge_daemon.config import load_config
    from edge_daemon.config.loader import MAX_CONFIG_BYTES

    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # nobody writes: reading it used to hang validate-config
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: no disk used
    for path, message in [
        ("/dev/zero", "is not a regular file"),  # used to die with a MemoryError traceback
        (fifo, "is not a regular file"),
        (big, f"a config file is at most {MAX_CONFIG_BYTES:,}"),
    ]:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert len(caught.value.errors) == 1 and message in caught.value.errors[0].message


def test_ten_thousand_unknown_keys_report_fast_and_capped(tmp_path: Path) -> None:
    import time

    from edge_daemon.config.wording import MAX_ISSUES

    text = CAM + "".join(f"k{i}: 1\n" for i in range(10_000))
    t0 = time.process_time()
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "c.yaml", base_dir=tmp_path)
    # CPU time, not wall time: the quadratic versions took 30 s here, this about 1 s.
    assert time.process_time() - t0 < 10
    errors = caught.value.errors
    assert len(errors) == MAX_ISSUES + 1
    assert [e.line for e in errors[:2]] == [4, 5]
    assert errors[-1].message == f"... and {10_000 - MAX_ISSUES} more problems not shown"
