"""Why an MQTT connection failed, in words a user can act on; and the TLS context.

Pure functions of the settings and the exception (or CONNACK reason), so every message
is tested without a broker (tests/publish/test_diagnostics.py). The publisher thread
uses the ``key`` to log a problem once when it starts or changes (repeats go to DEBUG):
two failures with the same key are the same problem.
"""

from __future__ import annotations

import socket
import ssl

from edge_daemon.publish.settings import MqttSettings


def connect_problem(exc: BaseException, s: MqttSettings) -> tuple[str, str]:
    """(key, message) for an exception raised by a connect attempt."""
    where = f"{s.host}:{s.port}"
    if isinstance(exc, socket.gaierror):
        return "dns", f"cannot resolve MQTT broker host {s.host!r} ({exc}): check mqtt.host"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", (
            f"MQTT broker {where} refused the connection: is the broker running? "
            "check mqtt.host/mqtt.port"
        )
    if isinstance(exc, ssl.SSLCertVerificationError | ssl.CertificateError):
        return "tls-verify", (
            f"TLS certificate of MQTT broker {where} not trusted ({exc}): set mqtt.tls.ca_file "
            "to the CA that signed it and make mqtt.host match the certificate name "
            "(mqtt.tls.insecure skips the check, for testing only)"
        )
    if isinstance(exc, ssl.SSLError):
        return "tls", (
            f"TLS handshake with MQTT broker {where} failed ({exc}): is this port a TLS "
            "listener (mqtt.tls, mqtt.port)? does it need a client certificate "
            "(mqtt.tls.cert_file/mqtt.tls.key_file)?"
        )
    if s.use_tls and isinstance(exc, ConnectionResetError | ConnectionAbortedError):
        # A plain-MQTT listener resets the connection on a TLS ClientHello.
        return "tls-reset", (
            f"MQTT broker {where} reset the connection during the TLS handshake: is this "
            "port a TLS listener? (Mosquitto's usual TLS port is 8883; plain is 1883.) "
            "Check mqtt.port, or remove mqtt.tls for a plain listener"
        )
    if isinstance(exc, TimeoutError):
        return "timeout", (
            f"timed out connecting to MQTT broker {where}: check mqtt.host/mqtt.port, the "
            "network and firewalls" + ("; does the port speak TLS?" if s.use_tls else "")
        )
    if isinstance(exc, OSError):
        return f"os-{exc.errno}", (
            f"cannot connect to MQTT broker {where} ({exc}): check mqtt.host/mqtt.port "
            "and the network"
        )
    return f"error-{type(exc).__name__}", f"MQTT connect to {where} failed: {exc!r}"


def connack_problem(reason: str, s: MqttSettings) -> tuple[str, str]:
    """(key, message) for a CONNACK that refused the connection (``reason`` is paho's
    reason-code name, e.g. ``Not authorized``)."""
    if reason in ("Bad user name or password", "Not authorized"):
        hint = "check mqtt.username/mqtt.password and the broker's ACL"
    elif reason == "Client identifier not valid":
        hint = "check mqtt.client_id"
    else:
        hint = "check the broker log"
    return (
        f"connack-{reason}",
        f"MQTT broker {s.host}:{s.port} refused the connection: {reason}: {hint}",
    )


def ssl_context(s: MqttSettings) -> ssl.SSLContext:
    """The client TLS context for ``s`` (raises OSError/ssl.SSLError on unreadable files)."""
    # No CA file: the system trust store (a broker with a public certificate).
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(s.tls_ca_file) if s.tls_ca_file else None
    )
    if s.tls_cert_file is not None:
        ctx.load_cert_chain(str(s.tls_cert_file), str(s.tls_key_file) if s.tls_key_file else None)
    if s.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
