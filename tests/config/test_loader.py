"""Loading real files: the default config, env substitution, paths, secrets, file errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from edge_daemon.config import (
    BUNDLED_MODELS,
    AppConfig,
    ConfigError,
    FileSource,
    RtspSource,
    SampleSource,
    load_config,
    load_config_text,
    warn_insecure_permissions,
)

REPO = Path(__file__).resolve().parents[2]
CAM = "cameras:\n  - name: cam\n    source: {type: sample}\n"


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- default


def test_default_config_yaml_loads() -> None:
    config = load_config(REPO / "config.yaml", env={})
    assert isinstance(config, AppConfig)
    assert [c.name for c in config.cameras] == ["sample"]
    assert isinstance(config.cameras[0].source, SampleSource)
    assert config.mqtt.embedded_broker.enabled is True
    assert (config.mqtt.embedded_broker.host, config.mqtt.embedded_broker.port) == (
        "127.0.0.1",
        1883,
    )
    assert (config.mqtt.host, config.mqtt.port) == ("127.0.0.1", 1883)
    assert config.model.path is None
    assert config.model.bundled == "auto"


def test_bundled_model_choice() -> None:
    accurate = load_config_text(
        "model: {bundled: accurate}\ncameras:\n  - name: c\n    source: {type: sample}\n"
    )
    for int8_dot in (True, False):  # a named model is that model on every CPU
        choice = accurate.model.choose(int8_dot)
        assert choice == (BUNDLED_MODELS["accurate"], "accurate", "model.bundled")
    assert len(set(BUNDLED_MODELS.values())) == len(BUNDLED_MODELS) - 1  # ferplus = fast
    for path in BUNDLED_MODELS.values():
        assert path.is_file(), f"{path} is not shipped in the package"


def test_auto_runs_fast_with_int8_dot_products_and_nano_without() -> None:
    auto = load_config_text("cameras:\n  - name: c\n    source: {type: sample}\n").model
    fast, nano = auto.choose(int8_dot=True), auto.choose(int8_dot=False)
    assert (fast.path, fast.bundled) == (BUNDLED_MODELS["fast"], "fast")
    assert (nano.path, nano.bundled) == (BUNDLED_MODELS["nano"], "nano")
    assert "without int8 dot products" in nano.reason and "auto" in nano.reason


def test_default_config_yaml_sets_schema_defaults_elsewhere() -> None:
    """Apart from the embedded broker, the state directory, the live view and the demo
    sample's looking away, the shipped file shows the defaults."""
    config = load_config(REPO / "config.yaml", env={})
    minimal = load_config_text(
        "mqtt: {embedded_broker: {enabled: true, if_port_taken: use_running}}\n"
        "state: {dir: state}\n"
        "live_view: {enabled: true}\n"
        "cameras:\n  - name: sample\n"
        "    source: {type: sample, away_s: 4}\n",
        base_dir=REPO,
    )
    assert config == minimal
    assert config.state.dir == REPO / "state"  # without systemd: beside the file
    under_systemd = load_config(REPO / "config.yaml", env={"STATE_DIRECTORY": "/var/lib/e"})
    assert under_systemd.state.dir == Path("/var/lib/e")


def test_default_config_yaml_has_no_world_readable_secret_warning() -> None:
    assert warn_insecure_permissions(REPO / "config.yaml") is None


def test_minimal_config_gets_defaults() -> None:
    config = load_config_text(CAM)
    assert config.log_level == "info"
    assert config.detector.threads == 1
    assert config.tracker.min_hits == 2
    assert config.events.min_confidence == 0.45
    assert config.mqtt.topic_prefix == "edge"
    assert config.mqtt.qos == 1
    assert config.mqtt.embedded_broker.enabled is False
    assert config.cameras[0].queue_size == 2
    assert config.cameras[0].alerts == []


def test_every_source_type_loads(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\x00")
    text = """
cameras:
  - {name: f, source: {type: file, path: clip.mp4, loop: false, realtime: false}}
  - {name: u1, source: {type: usb, device: 0, width: 1280, height: 720, fps: 30}}
  - {name: u2, source: {type: usb, device: /dev/video2}}
  - {name: r, source: {type: rtsp, url: 'rtsps://u:p@cam:8554/x', transport: udp}}
  - {name: m, source: {type: mjpeg, url: 'https://cam/video', open_timeout_s: 5}}
  - {name: s, enabled: false, source: {type: sample, fps: 30, width: 320, height: 240}}
"""
    config = load_config_text(text, base_dir=tmp_path)
    kinds = [c.source.type for c in config.cameras]
    assert kinds == ["file", "usb", "usb", "rtsp", "mjpeg", "sample"]
    assert config.cameras[2].source.device == "/dev/video2"  # type: ignore[union-attr]
    assert config.cameras[5].enabled is False


def test_alert_rule_example() -> None:
    text = CAM + "    alerts:\n      - {name: angry-customer, emotion: angry}\n"
    rule = load_config_text(text).cameras[0].alerts[0]
    assert (rule.emotion, rule.min_score, rule.min_duration_s, rule.cooldown_s) == (
        "angry",
        0.6,
        3,
        30,
    )


def test_config_is_frozen() -> None:
    config = load_config_text(CAM)
    with pytest.raises(Exception, match="frozen"):
        config.log_level = "debug"  # type: ignore[misc]


# --------------------------------------------------------------------------- ${ENV}


def test_env_substitution() -> None:
    text = CAM + (
        "mqtt:\n"
        "  host: ${EDGE_HOST}\n"
        "  port: ${EDGE_PORT:-8883}\n"
        "  username: ${EDGE_USER:-edge}\n"
        "  password: ${EDGE_PW}\n"
        "  topic_prefix: site-${SITE}/edge\n"
        "  client_id: 'literal-$${NOT_A_VAR}'\n"
    )
    env = {"EDGE_HOST": "broker.lan", "EDGE_PW": "s3cr3t", "SITE": "7", "EDGE_USER": ""}
    config = load_config_text(text, env=env)
    assert config.mqtt.host == "broker.lan"
    assert config.mqtt.port == 8883  # default used, then coerced to int
    assert config.mqtt.username == "edge"  # set-but-empty uses the default, as in the shell
    assert config.mqtt.password == SecretStr("s3cr3t")
    assert config.mqtt.topic_prefix == "site-7/edge"
    assert config.mqtt.client_id == "literal-${NOT_A_VAR}"


def test_env_substitution_cannot_break_yaml() -> None:
    config = load_config_text(CAM + "mqtt:\n  client_id: ${ID}\n", env={"ID": "a: [b, {c"})
    assert config.mqtt.client_id == "a: [b, {c"


def test_env_substitution_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_TEST_BROKER", "10.1.2.3")
    assert load_config_text(CAM + "mqtt: {host: '${EDGE_TEST_BROKER}'}\n").mqtt.host == "10.1.2.3"


def test_all_unset_variables_are_reported() -> None:
    text = CAM + "mqtt:\n  host: ${A_UNSET}\n  username: ${B_UNSET}\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env={})
    assert [(i.path, i.line) for i in caught.value.errors] == [
        ("mqtt.host", 5),
        ("mqtt.username", 6),
    ]
    assert "A_UNSET" in caught.value.errors[0].message


def test_nested_reference_in_a_default_is_refused_not_mangled() -> None:
    # It used to load as the literal host "${B}".
    text = CAM + "mqtt:\n  host: '${A_UNSET:-${B}}'\n"
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, env={"B": "broker"})
    (issue,) = caught.value.errors
    assert (issue.path, issue.line) == ("mqtt.host", 5)
    assert "nested variable reference" in issue.message


def test_dollar_without_brace_is_left_alone() -> None:
    text = CAM + "mqtt: {username: u, password: 'pa$$word$x'}\n"
    password = load_config_text(text, env={}).mqtt.password
    assert password is not None and password.get_secret_value() == "pa$$word$x"


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "models").mkdir(parents=True)
    (conf_dir / "videos").mkdir()
    (conf_dir / "certs").mkdir()
    for name in ("models/fer.onnx", "videos/a.mp4", "certs/ca.pem", "certs/c.pem", "certs/c.key"):
        (conf_dir / name).write_bytes(b"x")
    _write(
        conf_dir / "config.yaml",
        "model: {path: models/fer.onnx}\n"
        "mqtt:\n  tls: {ca_file: certs/ca.pem, cert_file: certs/c.pem, key_file: ./certs/c.key}\n"
        "cameras:\n  - name: f\n    source: {type: file, path: ../etc/videos/a.mp4}\n",
    )
    monkeypatch.chdir(tmp_path)  # somewhere else than the config dir
    config = load_config(Path("etc/config.yaml"))
    assert config.model.path == conf_dir / "models" / "fer.onnx"
    for int8_dot in (True, False):  # the user's file wins over auto on every CPU
        assert config.model.choose(int8_dot) == (
            conf_dir / "models" / "fer.onnx",
            None,
            "model.path",
        )
    source = config.cameras[0].source
    assert isinstance(source, FileSource)
    assert source.path == conf_dir / "videos" / "a.mp4"
    assert config.mqtt.tls is not None
    assert config.mqtt.tls.ca_file == conf_dir / "certs" / "ca.pem"
    assert config.mqtt.tls.key_file == conf_dir / "certs" / "c.key"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    text = CAM + f"model: {{path: '{model}'}}\n"
    assert load_config_text(text, base_dir="/").model.path == model


def test_relative_path_error_names_the_base_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(CAM + "model: {path: x.onnx}\n", base_dir=tmp_path)
    (issue,) = caught.value.errors
    assert issue.path == "model.path"
    assert str(tmp_path / "x.onnx") in issue.message
    assert f"resolved against {tmp_path}" in issue.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_model_file(tmp_path: Path) -> None:
    model = _write(tmp_path / "m.onnx", "x", mode=0o000)
    with pytest.raises(ConfigError) as caught:
        load_config_text(CAM + f"model: {{path: '{model}'}}\n")
    assert caught.value.errors[0].path == "model.path"
    assert "not readable" in caught.value.errors[0].message


def test_empty_tls_mapping_means_system_cas() -> None:
    tls = load_config_text(CAM + "mqtt: {tls: {}}\n").mqtt.tls
    assert tls is not None and tls.ca_file is None and tls.insecure is False


# --------------------------------------------------------------------------- files


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/config.yaml")
    (issue,) = caught.value.errors
    assert issue.file == "/nonexistent/config.yaml" and issue.line is None
    assert "file not found" in issue.message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "config.yaml", CAM, mode=0o000)
    with pytest.raises(ConfigError, match="permission denied"):
        load_config(cfg)


def test_not_utf8(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(CAM.encode() + b"log_level: \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    (issue,) = caught.value.errors
    assert issue.line == 4 and "not valid UTF-8" in issue.message


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(b"\xef\xbb\xbf" + CAM.encode())
    assert load_config(cfg).cameras[0].name == "cam"


def test_error_names_the_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "config.yaml", CAM + "log_level: loud\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    assert str(caught.value.errors[0]).startswith("config.yaml:4: log_level: must be one of")


# --------------------------------------------------------------------------- secrets


def test_redacted_dict_hides_passwords() -> None:
    text = (
        "mqtt: {username: edge, password: hunter2}\n"
        "cameras:\n"
        "  - {name: r, source: {type: rtsp, url: 'rtsp://admin:camsecret@cam:554/s'}}\n"
        "  - {name: s, source: {type: sample}}\n"
    )
    config = load_config_text(text)
    redacted = config.redacted_dict()
    dumped = json.dumps(redacted)  # JSON-compatible
    assert "hunter2" not in dumped and "camsecret" not in dumped
    assert redacted["mqtt"]["password"] == "***"
    assert redacted["mqtt"]["username"] == "edge"
    assert redacted["cameras"][0]["source"]["url"] == "rtsp://admin:***@cam:554/s"
    # the config itself still holds the real values
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "hunter2"
    source = config.cameras[0].source
    assert isinstance(source, RtspSource) and "camsecret" in source.url


def test_redacted_dict_without_password() -> None:
    assert load_config_text(CAM).redacted_dict()["mqtt"]["password"] is None


@pytest.mark.parametrize(
    ("text", "mode", "warns"),
    [
        (CAM + "mqtt: {password: hunter2}\n", 0o644, True),
        (CAM + "mqtt: {password: hunter2}\n", 0o640, False),
        (CAM + "mqtt: {password: hunter2}\n", 0o600, False),
        (CAM + "mqtt: {password: '${MQTT_PASSWORD}'}\n", 0o644, False),
        (CAM + "mqtt: {password: '${MQTT_PASSWORD:-fallback}'}\n", 0o644, True),
        (CAM, 0o644, False),
        ("cameras:\n  - {name: r, source: {type: rtsp, url: 'rtsp://a:b@h/x'}}\n", 0o644, True),
        ("cameras:\n  - {name: r, source: {type: rtsp, url: 'rtsp://a:${P}@h/x'}}\n", 0o644, False),
        ("mqtt:\n  password: hunter2\n  bad: [\n", 0o644, True),  # unparsable: still detected
        # A systemd credential reference holds no secret (the warning fired for it).
        (CAM + "mqtt: {password: '${credential:mqtt_password}'}\n", 0o644, False),
        # Literal access tokens of the live view and the metrics endpoint (were missed).
        (CAM + "live_view: {port: 8080, token: s3cret}\n", 0o644, True),
        (CAM + "metrics: {port: 9100, token: s3cret}\n", 0o644, True),
        (CAM + "metrics: {port: 9100, token: '${credential:metrics}'}\n", 0o644, False),
        # Credentials in a camera URL's query.
        ("cameras:\n  - {name: m, source: {type: mjpeg, url: 'http://h/v?pwd=x'}}\n", 0o644, True),
        (
            "cameras:\n  - {name: m, source: {type: mjpeg, url: 'http://h/v?pwd=${P}'}}\n",
            0o644,
            False,
        ),
    ],
)
def test_permission_warning(tmp_path: Path, text: str, mode: int, warns: bool) -> None:
    cfg = _write(tmp_path / "config.yaml", text, mode)
    warning = warn_insecure_permissions(cfg)
    if warns:
        assert warning is not None
        assert str(cfg) in warning and f"{mode:04o}" in warning and "chmod" in warning
    else:
        assert warning is None


def test_permission_warning_for_missing_file(tmp_path: Path) -> None:
    assert warn_insecure_permissions(tmp_path / "nope.yaml") is None


def test_unreadable_model_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as above but also runs as root: os.access reports the file unreadable."""
    import edge_daemon.config.schema as schema

    model = _write(tmp_path / "m.onnx", "x")
    real_access = os.access
    monkeypatch.setattr(
        schema.os, "access", lambda p, mode: False if Path(p) == model else real_access(p, mode)
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(CAM + "model:\n  path: m.onnx\n", base_dir=tmp_path)
    (issue,) = caught.value.errors
    assert (issue.path, issue.line) == ("model.path", 5)
    assert "not readable" in issue.message


# --------------------------------------------------------------------------- anchors


def test_yaml_anchors_and_merge_keys() -> None:
    text = (
        "cameras:\n"
        "  - &cam\n"
        "    name: a\n"
        "    source: {type: sample, fps: 10}\n"
        "    stall_timeout_s: 5\n"
        "  - <<: *cam\n"
        "    name: b\n"
    )
    config = load_config_text(text)
    assert [(c.name, c.stall_timeout_s) for c in config.cameras] == [("a", 5), ("b", 5)]


def test_error_lines_through_merge_keys() -> None:
    text = (
        "cameras:\n"
        "  - &cam\n"
        "    name: a\n"
        "    source: {type: sample, fps: 500}\n"  # line 4: bad for both cameras
        "  - <<: *cam\n"
        "    name: b\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    got = {(i.path, i.line) for i in caught.value.errors}
    assert got == {("cameras[0].source.fps", 4), ("cameras[1].source.fps", 4)}
    # a key given next to the merge overrides it, and errors point at that key
    text = text.replace("fps: 500", "fps: 5").replace("name: b", "name: a")
    with pytest.raises(ConfigError) as caught:
        load_config_text(text)
    assert [(i.path, i.line) for i in caught.value.errors] == [("cameras[1].name", 6)]


# --------------------------------------------------------------------------- operations


def test_http_endpoints_and_discovery_are_off_and_local_by_default() -> None:
    config = load_config_text(CAM)
    assert not config.metrics.enabled and not config.live_view.enabled
    assert not config.homeassistant.enabled
    assert config.metrics.host == config.live_view.host == "127.0.0.1"
    assert config.metrics.token is None and config.live_view.token is None


def test_credential_substitution_reads_the_systemd_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "edge_mqtt_password").write_text("hunter2\n")  # trailing newline stripped
    text = CAM + "mqtt: {username: edge, password: '${credential:edge_mqtt_password}'}\n"
    config = load_config_text(text, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in json.dumps(config.redacted_dict())


@pytest.mark.parametrize(
    ("ref", "env_dir", "message"),
    [
        ("${credential:missing}", True, "credential 'missing' not found"),
        ("${credential:edge_pw}", False, "needs $CREDENTIALS_DIRECTORY"),
        ("${credential:../etc/passwd}", True, "invalid credential name"),
    ],
)
def test_credential_errors_name_the_key_and_line(
    tmp_path: Path, ref: str, env_dir: bool, message: str
) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)} if env_dir else {}
    text = CAM + f"mqtt:\n  password: '{ref}'\n"
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "c.yaml", env=env)
    (issue,) = info.value.errors
    assert issue.line == 5 and issue.path == "mqtt.password"
    assert message in issue.message


def test_tokens_are_redacted_for_logging() -> None:
    text = CAM + "metrics: {enabled: true, token: abc}\nlive_view: {token: xyz}\n"
    data = load_config_text(text).redacted_dict()
    assert data["metrics"]["token"] == "***" and data["live_view"]["token"] == "***"
