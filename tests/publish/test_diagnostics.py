"""publish.diagnostics: every way a connect fails gets its own key (so it is logged once)
and a message naming the setting to check. Pure: exceptions built here, no broker."""

from __future__ import annotations

import errno
import socket
import ssl
from pathlib import Path

import pytest

from edge_daemon.publish.diagnostics import connack_problem, connect_problem, ssl_context
from edge_daemon.publish.settings import MqttSettings

PLAIN = MqttSettings(host="broker.lan", port=1883)
TLS = MqttSettings(host="broker.lan", port=8883, use_tls=True)


@pytest.mark.parametrize(
    ("exc", "settings", "key", "hint"),
    [
        (socket.gaierror(-2, "Name or service not known"), PLAIN, "dns", "check mqtt.host"),
        (ConnectionRefusedError(111, "refused"), PLAIN, "refused", "is the broker running?"),
        (ssl.SSLCertVerificationError("self-signed"), TLS, "tls-verify", "mqtt.tls.ca_file"),
        (ssl.SSLError("wrong version number"), TLS, "tls", "is this port a TLS listener"),
        (ConnectionResetError(104, "reset"), TLS, "tls-reset", "usual TLS port is 8883"),
        (TimeoutError("timed out"), TLS, "timeout", "does the port speak TLS?"),
        (OSError(errno.ENETUNREACH, "unreachable"), PLAIN, f"os-{errno.ENETUNREACH}", "network"),
        (ValueError("odd"), PLAIN, "error-ValueError", "failed: ValueError('odd')"),
    ],
)
def test_each_connect_failure_has_its_key_and_hint(
    exc: BaseException, settings: MqttSettings, key: str, hint: str
) -> None:
    got_key, message = connect_problem(exc, settings)
    assert got_key == key
    assert hint in message and f"{settings.host}" in message


def test_a_reset_without_tls_is_not_called_a_tls_problem() -> None:
    key, message = connect_problem(ConnectionResetError(104, "reset"), PLAIN)
    assert key == "os-104" and "TLS" not in message
    _, message = connect_problem(TimeoutError("timed out"), PLAIN)
    assert "TLS" not in message and "firewalls" in message


@pytest.mark.parametrize(
    ("reason", "hint"),
    [
        ("Not authorized", "mqtt.username/mqtt.password"),
        ("Bad user name or password", "mqtt.username/mqtt.password"),
        ("Client identifier not valid", "mqtt.client_id"),
        ("Server unavailable", "check the broker log"),
    ],
)
def test_a_refusing_connack_names_what_to_check(reason: str, hint: str) -> None:
    key, message = connack_problem(reason, PLAIN)
    assert key == f"connack-{reason}" and hint in message and "broker.lan:1883" in message


def test_an_unreadable_ca_file_raises_for_the_publisher_to_report(tmp_path: Path) -> None:
    with pytest.raises((OSError, ssl.SSLError)):
        ssl_context(MqttSettings(use_tls=True, tls_ca_file=tmp_path / "missing.pem"))
    ctx = ssl_context(MqttSettings(use_tls=True, tls_insecure=True))
    assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
