"""Connection settings of the MQTT publisher (mapped from the daemon config by the caller)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MqttProtocol = Literal["auto", "5", "3.1.1"]


def check_topic_segment(name: str, what: str = "camera") -> str:
    """Return ``name`` if it is usable as one MQTT topic level, else raise ValueError.

    Topic levels are built from camera ids, so ``/`` would add a level and ``+``/``#``
    are wildcards that a broker rejects in a PUBLISH topic.
    """
    if not name or any(c in name for c in "/+#\0"):
        raise ValueError(
            f"{what} {name!r} cannot be used in an MQTT topic: it must be non-empty "
            "and contain none of '/', '+', '#'"
        )
    return name


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker and what to publish.

    ``password`` is excluded from ``repr`` so the settings can be logged safely.
    ``tls_insecure`` disables both certificate and hostname verification (testing only;
    the publisher logs a warning). ``reconnect_min_s``/``reconnect_max_s`` bound the
    exponential reconnect backoff; ``connect_timeout_s`` bounds one TCP/TLS connect and
    the wait for CONNACK.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_insecure: bool = False
    use_tls: bool = False
    keepalive_s: int = 30
    topic_prefix: str = "edge"
    qos: int = 1
    outbox_max: int = 10_000
    outbox_max_bytes: int | None = None  # None: no byte bound
    outbox_max_age_s: float | None = None  # None: no age bound
    publish_images: bool = False
    commands: bool = False  # subscribe to <prefix>/<camera>/set (runtime control)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    connect_timeout_s: float = 5.0
    #: auto: MQTT 5, or 3.1.1 when the broker answers that it does not speak 5.
    protocol: MqttProtocol = "auto"

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("mqtt.host must not be empty")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"mqtt.port {self.port} is not a TCP port (1..65535)")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"mqtt.qos must be 0, 1 or 2, not {self.qos}")
        if self.protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"mqtt.protocol must be auto, 5 or 3.1.1, not {self.protocol!r}")
        if self.outbox_max < 1:
            raise ValueError("mqtt.outbox_max must be >= 1")
        if self.keepalive_s < 1:
            raise ValueError("mqtt.keepalive_s must be >= 1")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        if self.connect_timeout_s <= 0:
            raise ValueError("connect_timeout_s must be > 0")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password is set but mqtt.username is not")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("mqtt.tls.key_file is set but mqtt.tls.cert_file is not")
        # The prefix may have several levels ("site1/edge") but no empty level or wildcard.
        for level in self.topic_prefix.split("/"):
            check_topic_segment(level, "mqtt.topic_prefix level")

    # Topic layout, in one place so the publisher, tests and docs agree.
    @property
    def availability_topic(self) -> str:
        return f"{self.topic_prefix}/available"

    @property
    def stats_topic(self) -> str:
        return f"{self.topic_prefix}/stats"

    def events_topic(self, camera: str) -> str:
        return f"{self.topic_prefix}/{check_topic_segment(camera)}/events"

    def state_topic(self, camera: str) -> str:
        return f"{self.topic_prefix}/{check_topic_segment(camera)}/state"

    def command_topic(self, camera: str) -> str:
        return f"{self.topic_prefix}/{camera}/set"

    def snapshot_topic(self, camera: str, kind: str) -> str:
        return f"{self.topic_prefix}/{check_topic_segment(camera)}/snapshot/{kind}"
