"""The one strict configuration schema of the daemon (pydantic v2).

Every model derives from :class:`StrictModel`: unknown keys are errors (``extra="forbid"``),
instances are immutable (``frozen=True``), NaN/inf are rejected, and every field carries a
description and its bounds. The field names are the contract the rest of the daemon uses.

File paths (model, file sources, TLS files) are resolved against ``context["base_dir"]``
when validated with ``AppConfig.model_validate(data, context={"base_dir": ...})`` (the
loader passes the config file's directory), else against the current directory, and must
name an existing, readable regular file.

Rules that span several fields raise :class:`pydantic_core.PydanticCustomError` of type
``"config_rule"`` whose context holds ``sub_loc``: the location, relative to the model that
raised it, of the key the user has to change (the loader uses it to point at the right line).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge_daemon.classify.model import DEFAULT_TTA_HFLIP_BELOW
from edge_daemon.detect.blazeface import DEFAULT_ADDED_MIN_CONFIDENCE, DetectorModel
from edge_daemon.detect.blazeface import DEFAULT_MODEL as DEFAULT_DETECTOR_MODEL
from edge_daemon.labels import FER_LABELS
from edge_daemon.policy.events import (
    DEFAULT_ALERT_COOLDOWN_S,
    DEFAULT_ALERT_MIN_DURATION_S,
    DEFAULT_ALERT_MIN_SCORE,
    DEFAULT_ESTABLISH_S,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_MIN_UPDATE_INTERVAL_S,
)
from edge_daemon.redact import redact_url
from edge_daemon.track.tracker import (
    DEFAULT_IOU_THRESHOLD,
    DEFAULT_MAX_MISSED_S,
    DEFAULT_MIN_HITS,
    DEFAULT_SMOOTHING_HALF_LIFE_S,
    DEFAULT_WEAK_MIN_CONFIDENCE,
)

__all__ = [
    "AUTO_BUNDLED",
    "BUNDLED_MODELS",
    "EMOTIONS",
    "NAME_PATTERN",
    "SOURCE_TYPES",
    "AlertRule",
    "AppConfig",
    "CameraConfig",
    "CameraSource",
    "DetectorConfig",
    "EmbeddedBrokerConfig",
    "Emotion",
    "EventsConfig",
    "FileSource",
    "HomeAssistantConfig",
    "LiveViewConfig",
    "MetricsConfig",
    "MjpegSource",
    "ModelChoice",
    "ModelConfig",
    "MqttConfig",
    "RtspSource",
    "SampleSource",
    "StrictModel",
    "TlsConfig",
    "TrackerConfig",
    "UsbSource",
    "redact_url",
]

Emotion = Literal[FER_LABELS]  # type: ignore[valid-type]  # one spelling: edge_daemon.labels
#: The seven FER emotion names. This is the only place they are spelled out.
EMOTIONS: tuple[str, ...] = get_args(Emotion)

#: Camera and alert names end up in MQTT topics: keep them to a safe alphabet.
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
#: The emotion models shipped inside the package, by ``model.bundled`` name (used when
#: ``model.path`` is null); edge_daemon/models/MODEL_CARD.md describes each. ``ferplus``
#: is the default's former name (the FER+ model became the default): the same file.
#: ``auto`` is not a file: :meth:`ModelConfig.choose` turns it into ``fast`` or ``nano``.
BUNDLED_MODELS: dict[str, Path] = {
    "fast": _MODELS_DIR / "emotion.onnx",
    "nano": _MODELS_DIR / "emotion_nano.onnx",
    "ferplus": _MODELS_DIR / "emotion.onnx",
    "fer2013": _MODELS_DIR / "emotion_fer2013.onnx",
    "accurate": _MODELS_DIR / "emotion_accurate.onnx",
}
#: What ``model.bundled: auto`` runs on a CPU with int8 dot-product instructions
#: (AVX-512 VNNI, AVX-VNNI, AMX, ARM asimddp) and on one without. Without them
#: onnxruntime's int8 convolutions are about 5x slower, and the default (141 M
#: multiply-adds per face) leaves the 0.5 ms per-face budget; nano (38 M) keeps near it
#: for about 1 point of end-to-end accuracy and 0.05 of macro F1 (MODEL_CARD.md).
AUTO_BUNDLED: dict[bool, str] = {True: "fast", False: "nano"}


class ModelChoice(NamedTuple):
    """The model file the daemon loads, and why (for the start-up log and the stats)."""

    path: Path
    bundled: str | None  # the bundled model's name; None for model.path
    reason: str


_USB_DEVICE_RE = re.compile(r"^/dev/video\d+$")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys forbidden, immutable, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _rule_error(message: str, *sub_loc: str | int) -> PydanticCustomError:
    """A cross-field error pointing at ``sub_loc`` (relative to the raising model)."""
    return PydanticCustomError("config_rule", message, {"sub_loc": tuple(sub_loc)})


def _value_error(message: str) -> PydanticCustomError:
    """A field-level error whose message is shown to the user unchanged."""
    return PydanticCustomError("config_value", message)


def _short(value: object, limit: int = 80) -> str:
    """``value`` as the user wrote it in YAML, shortened."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# --------------------------------------------------------------------------- paths


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context
    if isinstance(context, dict) and context.get("base_dir") is not None:
        return Path(context["base_dir"])
    return Path.cwd()


def _readable_file(value: Path, info: ValidationInfo) -> Path:
    """Resolve ``value`` against the base directory; it must be a readable regular file."""
    base = _base_dir(info)
    hint = "" if value.is_absolute() else f" (relative paths are resolved against {base})"
    try:
        path = value.expanduser()
        if not path.is_absolute():
            path = base / path
        path = Path(os.path.normpath(path))
        exists, is_file, readable = path.exists(), path.is_file(), os.access(path, os.R_OK)
    except (OSError, ValueError, RuntimeError) as exc:
        raise _value_error(f"unusable file path {_short(str(value))}: {exc}") from None
    if not exists:
        raise _value_error(f"file not found: {path}{hint}")
    if not is_file:
        raise _value_error(f"not a regular file: {path}")
    if not readable:
        raise _value_error(f"file is not readable (check its permissions): {path}")
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable_file)]


# --------------------------------------------------------------------------- sections


class ModelConfig(StrictModel):
    """The emotion classifier (ONNX) and how it is run."""

    path: ReadableFile | None = Field(
        None,
        description="ONNX emotion model; null = the bundled one chosen by model.bundled. "
        "Relative paths are resolved against the config file's directory.",
    )
    bundled: Literal["auto", "fast", "nano", "ferplus", "fer2013", "accurate"] = Field(
        "auto",
        description="bundled model used when path is null. auto (the default): fast on a "
        "CPU with int8 dot products (AVX-512 VNNI, AVX-VNNI, AMX, ARM asimddp), nano on "
        "one without. fast (ferplus is the same file): edgefer2 trained on the FER+ crowd "
        "votes and fine-tuned on the daemon's own crops of real people, its recipe right "
        "on 89.4% of the faces found in labelled photos of people it has not seen "
        "(cross-fitted), through the daemon's own detector and crop with tta_hflip_below "
        "(macro F1 0.51; 88.8% in a single pass), 82.4% "
        "against the FER+ majority on FER+ val; nano: a quarter of its multiply-adds, "
        "trained the same way: its recipe 87.4% (macro F1 0.43), 77.7% "
        "on FER+ val, 2.5x faster on a VNNI CPU; "
        "fer2013: the FER-2013-label model, 69.1% on FER-2013 PublicTest (for comparison "
        "with published work) but 63.7% on those photos, calling most neutral faces sad "
        "or angry; accurate: fast with its mirrored pass inside the graph for every "
        "face, 89.4% of those faces as fast with tta_hflip_below, twice fast's cost. "
        "Figures from "
        "edge_daemon/models/MODEL_CARD.md",
    )
    providers: Literal["auto", "cpu", "cuda", "openvino", "tensorrt"] = Field(
        "auto",
        description="onnxruntime execution provider; auto = CUDA when available, else CPU. "
        "openvino needs onnxruntime-openvino, tensorrt onnxruntime-gpu with TensorRT (both "
        "untested on GPUs here); one that fails to start falls back to the CPU with a warning",
    )
    intra_op_threads: int = Field(
        1, ge=1, le=64, description="onnxruntime intra-op threads for the classifier"
    )
    max_batch: int = Field(
        32, ge=1, le=256, description="faces per inference batch (also the cap per frame)"
    )
    tta_hflip: bool = Field(
        False,
        description="also classify every face mirrored and average: for the default "
        "+0.6 accuracy points end to end over a single pass (89.4% against 88.8%, its "
        "recipe cross-fitted), the same as tta_hflip_below's, for twice the classifier "
        "time (over 0.5 ms per face on one VNNI core); ignored for models that do this "
        "inside the graph (metadata tta=hflip, from trainer.export --tta-hflip)",
    )
    tta_hflip_below: float = Field(
        DEFAULT_TTA_HFLIP_BELOW,
        ge=0,
        le=1,
        description="mirror only the faces whose top probability is below this and "
        "average: the default's end-to-end gain of tta_hflip (89.4% against 88.8%, its "
        "recipe cross-fitted) for 1.1-1.3x one pass instead of 2x; 0 = never; unused "
        "with tta_hflip or a model that mirrors inside its graph",
    )

    @model_validator(mode="after")
    def _path_or_bundled(self) -> ModelConfig:
        if self.path is not None and "bundled" in self.model_fields_set:
            raise _rule_error(
                "model.path and model.bundled are both set; keep path for your own model "
                "or bundled for one of the shipped ones",
                "bundled",
            )
        return self

    def choose(self, int8_dot: bool) -> ModelChoice:
        """The model file to load on a CPU with (or without) int8 dot products:
        ``path``, the bundled model named, or ``auto``'s choice (:data:`AUTO_BUNDLED`)."""
        if self.path is not None:
            return ModelChoice(self.path, None, "model.path")
        if self.bundled != "auto":
            return ModelChoice(BUNDLED_MODELS[self.bundled], self.bundled, "model.bundled")
        name = AUTO_BUNDLED[int8_dot]
        cpu = "with" if int8_dot else "without"
        reason = f"model.bundled auto: this CPU is {cpu} int8 dot products"
        return ModelChoice(BUNDLED_MODELS[name], name, reason)


class DetectorConfig(StrictModel):
    """Face detection (BlazeFace in LiteRT)."""

    model: DetectorModel = Field(
        DEFAULT_DETECTOR_MODEL,
        description="both: full range, plus short range for the large close faces full "
        "range misses (about 1.5x the detector's cost per frame); full_range: faces from a "
        "few percent of the frame up, misses many that fill a large part of it (38% of "
        "labelled head shots filling 77% of the frame); short_range: faces within ~2 m, "
        "larger than about a fifth of the frame",
    )
    min_confidence: float = Field(
        0.6,
        ge=0.05,
        le=0.99,
        description=(
            "minimum detector score for a face; real faces score 0.85-0.97, cartoon and "
            "face-like patterns up to about 0.68 (measured on the shared videos): lower "
            "finds smaller/turned faces, higher rejects more false faces"
        ),
    )
    added_min_confidence: float = Field(
        DEFAULT_ADDED_MIN_CONFIDENCE,
        ge=0.05,
        le=0.99,
        description=(
            "model both: the score a face found by short range alone needs (never below "
            "min_confidence); its false faces (badges, patches) score higher than full "
            "range's, and 96% of the real close faces it adds score above 0.75"
        ),
    )
    threads: int = Field(
        1,
        ge=1,
        le=8,
        description="LiteRT threads per camera's detector: more lowers one camera's "
        "latency, 1 gives the best total throughput with several cameras",
    )
    every_n_frames: int = Field(
        4,
        ge=1,
        le=30,
        description="in a settled scene (every face found belongs to a confirmed track and "
        "every track was found) run detection and classification every Nth frame and only "
        "track in between, decoding those frames without colour conversion; while the "
        "detector and the tracker disagree (new faces, faces found now and then, crowds) "
        "detect every frame. 4 at 25 fps: the same per-track emotions as 1 on the shared "
        "videos for about a third of the CPU in a settled scene; lower it for fast motion",
    )
    max_faces: int = Field(20, ge=1, le=256, description="maximum faces kept per frame")
    min_face_px: int = Field(
        20, ge=4, le=1024, description="faces smaller than this (pixels) are ignored and counted"
    )


class TrackerConfig(StrictModel):
    """IoU tracker that links detections across frames. The defaults are the tracker's
    own named constants (edge_daemon/track/tracker.py, with their trade-offs)."""

    iou_threshold: float = Field(
        DEFAULT_IOU_THRESHOLD,
        ge=0.01,
        le=0.95,
        description="minimum IoU to match a detection to a track",
    )
    min_hits: int = Field(
        DEFAULT_MIN_HITS,
        ge=1,
        le=30,
        description="detections before a track is confirmed (and reported)",
    )
    max_missed_s: float = Field(
        DEFAULT_MAX_MISSED_S,
        ge=0.05,
        le=60,
        description="a track is lost after this long without a match",
    )
    smoothing_half_life_s: float = Field(
        DEFAULT_SMOOTHING_HALF_LIFE_S,
        ge=0,
        le=30,
        description="EMA half-life of the class probabilities, seconds; 0 = no smoothing",
    )
    weak_min_confidence: float = Field(
        DEFAULT_WEAK_MIN_CONFIDENCE,
        ge=0.05,
        le=0.99,
        description="faces the detector scores from this up to detector.min_confidence "
        "may extend a confirmed track (a face looking down or turning keeps its id); they "
        "never start a track and are not classified. At or above detector.min_confidence: "
        "off",
    )


class EventsConfig(StrictModel):
    """When emotion events (start/update/end) are emitted. The defaults are the policy's
    own named constants (edge_daemon/policy/events.py, with their trade-offs)."""

    min_confidence: float = Field(
        DEFAULT_MIN_CONFIDENCE,
        ge=0,
        le=1,
        description="smoothed probability the dominant emotion needs",
    )
    establish_s: float = Field(
        DEFAULT_ESTABLISH_S,
        ge=0,
        le=60,
        description="how long a dominant emotion must hold before a start/update event",
    )
    min_update_interval_s: float = Field(
        DEFAULT_MIN_UPDATE_INTERVAL_S,
        ge=0,
        le=3600,
        description="minimum seconds between two events of one track",
    )


class EmbeddedBrokerConfig(StrictModel):
    """An in-process MQTT broker (amqtt), so the daemon runs without infrastructure."""

    enabled: bool = Field(False, description="start an embedded MQTT broker")
    host: str = Field(
        "127.0.0.1", min_length=1, max_length=253, description="address the broker listens on"
    )
    port: int = Field(1883, ge=1, le=65535, description="port the broker listens on")
    if_port_taken: Literal["fail", "use_running"] = Field(
        "fail",
        description=(
            "when another program already serves MQTT on the port: fail (refuse to start) "
            "or use_running (publish to that broker, anonymously: mqtt.username and "
            "password are never sent to a broker the daemon did not start)"
        ),
    )


class TlsConfig(StrictModel):
    """TLS for the MQTT connection. An empty mapping means TLS with the system CAs."""

    ca_file: ReadableFile | None = Field(
        None, description="CA bundle (PEM) to verify the broker; null = system CAs"
    )
    cert_file: ReadableFile | None = Field(
        None, description="client certificate (PEM) for mutual TLS"
    )
    key_file: ReadableFile | None = Field(
        None, description="client private key (PEM); requires cert_file"
    )
    insecure: bool = Field(
        False, description="skip broker certificate/hostname verification (testing only)"
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise _rule_error("key_file is set but cert_file is not; set both", "cert_file")
        return self


class SnapshotConfig(StrictModel):
    """The picture published with an event when ``mqtt.publish_images`` is on."""

    what: Literal["face", "frame_blur", "frame"] = Field(
        "face",
        description="face: the event's face, cropped; frame_blur: the whole frame, blurred "
        "except that face; frame: the whole frame",
    )
    max_width: int = Field(640, ge=64, le=3840, description="pictures wider are scaled down")
    jpeg_quality: int = Field(80, ge=30, le=95, description="JPEG quality")
    max_bytes: int = Field(
        262144,
        ge=16384,
        le=4194304,
        description="largest JPEG published (re-encoded smaller to fit, else skipped "
        "and counted); keep it under the broker's message size limit",
    )


class MqttConfig(StrictModel):
    """Where and how events are published."""

    embedded_broker: EmbeddedBrokerConfig = Field(
        default_factory=EmbeddedBrokerConfig, description="optional in-process broker"
    )
    host: str = Field("127.0.0.1", min_length=1, max_length=253, description="broker host")
    port: int = Field(1883, ge=1, le=65535, description="broker port")
    client_id: str | None = Field(
        None, min_length=1, max_length=128, description="MQTT client id; null = generated"
    )
    username: str | None = Field(None, min_length=1, max_length=256, description="broker user")
    password: SecretStr | None = Field(
        None, description="broker password; prefer ${MQTT_PASSWORD} over writing it here"
    )
    tls: TlsConfig | None = Field(None, description="TLS settings; null = plain TCP")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds")
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        "auto",
        description=(
            "MQTT version: auto = 5 (a broker can then refuse single publishes, which are "
            "counted as failures), or 3.1.1 when the broker does not speak 5"
        ),
    )
    topic_prefix: str = Field(
        "edge",
        min_length=1,
        max_length=128,
        description="first topic level(s); no '#', '+', empty levels, leading '$' or "
        "leading/trailing '/'",
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of event messages")
    outbox_max: int = Field(
        10000,
        ge=10,
        le=1_000_000,
        description="events kept while the broker is unreachable (oldest dropped beyond)",
    )
    outbox_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        le=16 * 1024**3,
        description="payload bytes kept while the broker is unreachable (oldest dropped beyond)",
    )
    outbox_max_age_s: float | None = Field(
        7 * 24 * 3600.0,
        ge=60,
        le=366 * 24 * 3600.0,
        description="events older than this are dropped undelivered (counted); null = no limit",
    )
    stats_interval_s: float = Field(30, ge=1, le=3600, description="seconds between stats messages")
    commands: bool = Field(
        False,
        description=(
            'accept commands on <topic_prefix>/<camera>/set, e.g. {"analysis": "off"} to '
            "pause a camera's analysis (and a Home Assistant switch for it); anyone who may "
            "publish there controls the cameras, so restrict it in the broker's ACL"
        ),
    )
    publish_images: bool = Field(
        False,
        description=(
            "publish a JPEG with every start/update/alert event, retained on "
            "<topic_prefix>/<camera>/snapshot/<type> (what it shows: snapshots.what); "
            "pictures of people leave the box when on"
        ),
    )
    snapshots: SnapshotConfig = Field(
        default_factory=SnapshotConfig, description="the event pictures"
    )

    @model_validator(mode="after")
    def _password_needs_username(self) -> MqttConfig:
        # The publisher refused this at `run` while `validate-config` said OK.
        if self.password is not None and self.username is None:
            raise _rule_error("mqtt.password is set but mqtt.username is not; set both", "password")
        return self

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_number(cls, value: object) -> object:
        # YAML reads `protocol: 5` as a number; the version is the same either way.
        return "5" if value == 5 and not isinstance(value, bool) else value

    @field_validator("topic_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if "\x00" in value:
            raise _value_error("must not contain NUL characters")
        if "#" in value or "+" in value:
            raise _value_error(f"must not contain MQTT wildcards '#' or '+' (got {_short(value)})")
        if value.startswith("$"):
            # Brokers reserve $-topics ($SYS...) and deny client publishes to them.
            raise _value_error(f"must not start with '$': brokers reserve it (got {_short(value)})")
        if value.startswith("/") or value.endswith("/"):
            raise _value_error(f"must not start or end with '/' (got {_short(value)})")
        if "//" in value:
            raise _value_error(f"must not contain empty topic levels '//' (got {_short(value)})")
        return value


# --------------------------------------------------------------------------- operations


def _loopback_note(host: str) -> str:
    return "" if host in ("127.0.0.1", "::1", "localhost") else " (reachable from the network)"


class HttpEndpointConfig(StrictModel):
    """Common part of the daemon's HTTP endpoints: off unless enabled, loopback by default."""

    enabled: bool = Field(False, description="serve this endpoint")
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        max_length=253,
        description="listen address; 127.0.0.1 keeps it on the box, 0.0.0.0 exposes it",
    )
    port: int = Field(..., ge=1, le=65535, description="listen port")
    token: SecretStr | None = Field(
        None,
        description="if set, requests need ?token=... or 'Authorization: Bearer ...'; "
        "prefer ${VAR} or ${credential:NAME} over writing it here",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="host names clients may use to reach this endpoint, besides loopback "
        "names, this machine's name and the address connected to (e.g. a reverse proxy's "
        "or DNS name); other Host headers get 421, which stops DNS-rebinding pages",
    )

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token (say ${LV_TOKEN:-} with the variable unset) matched an empty
        # ?token= and so silently turned authentication off.
        if value is not None and not value.get_secret_value().strip():
            raise _value_error(
                "is empty, which would turn authentication off; set a token or use null"
            )
        return value

    @property
    def exposure(self) -> str:
        return _loopback_note(self.host)


class MetricsConfig(HttpEndpointConfig):
    """Prometheus metrics plus /healthz and /readyz (off by default)."""

    port: int = Field(9108, ge=1, le=65535, description="listen port")


class LiveViewConfig(HttpEndpointConfig):
    """A small web page with each camera's live picture, faces and latest events."""

    port: int = Field(8088, ge=1, le=65535, description="listen port")
    fps: float = Field(
        10, ge=0.5, le=30, description="frames per second sent to each viewer (JPEG encoding)"
    )
    jpeg_quality: int = Field(75, ge=10, le=95, description="JPEG quality of the live picture")
    max_width: int = Field(
        960, ge=160, le=3840, description="pictures wider than this are scaled down for viewing"
    )
    blur_faces: bool = Field(
        False, description="blur every detected face in the live picture (privacy)"
    )
    max_clients: int = Field(
        8, ge=1, le=64, description="simultaneous live streams; further viewers get HTTP 503"
    )


class HomeAssistantConfig(StrictModel):
    """Home Assistant MQTT discovery (opt-in)."""

    enabled: bool = Field(False, description="publish retained Home Assistant discovery messages")
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        max_length=128,
        description="Home Assistant's discovery prefix (its MQTT integration setting)",
    )
    node_id: str = Field(
        "edge_daemon",
        pattern=NAME_PATTERN,
        description="unique id of this daemon in Home Assistant (one device per daemon)",
    )
    device_name: str = Field(
        "Edge emotion daemon", min_length=1, max_length=64, description="device name shown in HA"
    )


# --------------------------------------------------------------------------- sources


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    shown = _short(redact_url(value))
    allowed = " or ".join(f"{s}://" for s in schemes)
    if not any(value.lower().startswith(f"{s}://") for s in schemes):
        raise _value_error(f"must start with {allowed} (got {shown})")
    if any(c.isspace() for c in value):
        raise _value_error(f"must not contain whitespace (got {shown})")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a non-numeric / out-of-range port
    except ValueError:
        # Not the parser's message: it quotes the text it choked on, which can be the
        # password of a URL it split in the wrong place.
        raise _value_error(
            f"is not a valid URL (a bad port, or a '[' without ']'; characters such as "
            f"@ / ? # in a password must be percent-encoded) (got {shown})"
        ) from None
    if not parts.hostname:
        raise _value_error(f"must include a host, e.g. {schemes[0]}://camera.local/ (got {shown})")
    return value


class FileSource(StrictModel):
    """A video file (mp4, mkv, ...), decoded with OpenCV."""

    type: Literal["file"] = Field("file", description="source kind")
    path: ReadableFile = Field(
        ..., description="video file; relative paths are resolved against the config directory"
    )
    loop: bool = Field(True, description="restart at the end instead of ending the stream")
    realtime: bool = Field(
        True, description="pace frames at the file's fps; false = as fast as possible"
    )


class UsbSource(StrictModel):
    """A local V4L2 camera."""

    type: Literal["usb"] = Field("usb", description="source kind")
    device: int | str = Field(..., description="device index 0..63 or a path like /dev/video0")
    width: int | None = Field(None, ge=16, le=7680, description="requested width; null = default")
    height: int | None = Field(None, ge=16, le=4320, description="requested height; null = default")
    fps: float | None = Field(None, gt=0, le=240, description="requested fps; null = default")

    @field_validator("device", mode="before")
    @classmethod
    def _valid_device(cls, value: Any) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= 63:
                return value
        elif isinstance(value, str) and _USB_DEVICE_RE.match(value):
            return value
        raise _value_error(
            f"must be a device index 0..63 or a path like /dev/video0 (got {_short(value)})"
        )


class RtspSource(StrictModel):
    """An RTSP stream (IP camera, NVR)."""

    type: Literal["rtsp"] = Field("rtsp", description="source kind")
    url: str = Field(..., description="rtsp:// or rtsps:// URL, may contain user:password@")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTP transport")
    open_timeout_s: float = Field(
        10, ge=0.5, le=120, description="give up opening the stream after this long"
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _check_url(value, ("rtsp", "rtsps"))


class MjpegSource(StrictModel):
    """An HTTP multipart MJPEG stream."""

    type: Literal["mjpeg"] = Field("mjpeg", description="source kind")
    url: str = Field(..., description="http:// or https:// URL of the MJPEG stream")
    open_timeout_s: float = Field(
        10, ge=0.5, le=120, description="give up opening the stream after this long"
    )
    max_frame_side: int = Field(
        4096,
        ge=64,
        le=16384,
        description="frames wider or taller than this (pixels, as the JPEG header "
        "declares) are refused before decoding and counted as decode failures: a few "
        "hundred bytes can declare a 300 MB picture",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _check_url(value, ("http", "https"))


class SampleSource(StrictModel):
    """Synthetic frames from a public-domain image; needs no hardware."""

    type: Literal["sample"] = Field("sample", description="source kind")
    fps: float = Field(15, ge=1, le=120, description="frames per second")
    width: int = Field(640, ge=64, le=3840, description="frame width")
    height: int = Field(480, ge=64, le=2160, description="frame height")
    present_s: float = Field(
        8, ge=1, le=3600, description="seconds the camera looks at the face before looking away"
    )
    away_s: float = Field(
        0,
        ge=0,
        le=3600,
        description="seconds it then looks away (no face: the track ends, and a new one "
        "starts when the face is back); 0 = the face is always in view",
    )


CameraSource = Annotated[
    FileSource | UsbSource | RtspSource | MjpegSource | SampleSource,
    Field(discriminator="type"),
]

#: The allowed ``source.type`` values, in declaration order.
SOURCE_TYPES: tuple[str, ...] = tuple(
    get_args(m.model_fields["type"].annotation)[0]
    for m in (FileSource, UsbSource, RtspSource, MjpegSource, SampleSource)
)


# --------------------------------------------------------------------------- cameras


class AlertRule(StrictModel):
    """Raise an ``alert`` event when one emotion stays strong for long enough."""

    name: str = Field(..., pattern=NAME_PATTERN, description="rule name (used in MQTT topics)")
    emotion: Emotion = Field(..., description="the emotion to watch")
    min_score: float = Field(
        DEFAULT_ALERT_MIN_SCORE, ge=0, le=1, description="smoothed probability threshold"
    )
    min_duration_s: float = Field(
        DEFAULT_ALERT_MIN_DURATION_S,
        ge=0,
        le=3600,
        description="the score must stay above min_score this long",
    )
    cooldown_s: float = Field(
        DEFAULT_ALERT_COOLDOWN_S,
        ge=0,
        le=86400,
        description="minimum seconds between two alerts of this rule",
    )


class CameraConfig(StrictModel):
    """One camera stream."""

    name: str = Field(..., pattern=NAME_PATTERN, description="unique name (used in MQTT topics)")
    enabled: bool = Field(True, description="false = keep the entry but do not open it")
    source: CameraSource = Field(..., description="where frames come from, chosen by `type`")
    analysis_failing_s: float = Field(
        30,
        ge=1,
        le=3600,
        description="a frame whose analysis fails is skipped and counted; when failures "
        "keep recurring (no gap this long without one) for this many seconds, the "
        "camera's tracks end and its analysis restarts (again at most every 30 s, "
        "doubling to 10 min while it keeps failing)",
    )
    stall_timeout_s: float = Field(
        10, ge=0.5, le=600, description="no frame for this long -> reopen the source"
    )
    reconnect_initial_s: float = Field(
        1, ge=0.1, le=60, description="first reconnect delay (doubles up to reconnect_max_s)"
    )
    reconnect_max_s: float = Field(
        30, ge=1, le=3600, description="longest reconnect delay; must be >= reconnect_initial_s"
    )
    queue_size: int = Field(
        2,
        ge=1,
        le=8,
        description="frames buffered between capture and analysis; oldest dropped and counted",
    )
    alerts: list[AlertRule] = Field(default_factory=list, description="alert rules")

    @model_validator(mode="after")
    def _cross_checks(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise _rule_error(
                f"must be >= reconnect_initial_s ({self.reconnect_initial_s:g}) "
                f"(got {self.reconnect_max_s:g})",
                "reconnect_max_s",
            )
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.alerts):
            if rule.name in seen:
                raise _rule_error(
                    f"alert name {rule.name!r} is already used by alerts[{seen[rule.name]}]; "
                    "alert names must be unique per camera",
                    "alerts",
                    i,
                    "name",
                )
            seen[rule.name] = i
        return self


# --------------------------------------------------------------------------- root


def _state_dir(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a state directory against the base directory (it need not exist yet)."""
    if value is None:
        return None
    path = value.expanduser()
    if not path.is_absolute():
        path = _base_dir(info) / path
    path = Path(os.path.normpath(path))
    if path.exists() and not path.is_dir():
        raise _value_error(f"not a directory: {path}")
    return path


class StateConfig(StrictModel):
    """What must survive a restart: the events not yet delivered, the per-camera ``seq``
    and the daemon's identity (edge_daemon/publish/store.py)."""

    dir: Annotated[Path | None, AfterValidator(_state_dir)] = Field(
        None,
        description=(
            "state directory (made if missing; relative paths are resolved against the "
            "config file's directory); null = $STATE_DIRECTORY when systemd provides one "
            "(StateDirectory=), otherwise nothing is kept: undelivered events are lost at a "
            "restart and seq starts again at 1"
        ),
    )
    sync: Literal["full", "normal"] = Field(
        "full",
        description=(
            "full: every commit reaches the disk (survives a power cut); normal: survives a "
            "crash of the daemon, may lose the last commits on power loss (less disk wear)"
        ),
    )
    history_days: float = Field(
        30,
        ge=0,
        le=3660,
        description="days of event history kept in the state directory (the history API "
        "and `edge-daemon history` read it); 0 = keep none",
    )
    history_max_mb: int = Field(
        256, ge=1, le=1024 * 1024, description="size bound of the history (oldest dropped)"
    )


class AppConfig(StrictModel):
    """The whole daemon configuration (``config.yaml``)."""

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="log verbosity"
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="emotion classifier")
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="face detector")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="face tracker")
    events: EventsConfig = Field(default_factory=EventsConfig, description="event policy")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT output")
    homeassistant: HomeAssistantConfig = Field(
        default_factory=HomeAssistantConfig, description="Home Assistant MQTT discovery"
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Prometheus metrics and health endpoints"
    )
    live_view: LiveViewConfig = Field(
        default_factory=LiveViewConfig, description="live web view of the cameras"
    )
    state: StateConfig = Field(
        default_factory=StateConfig, description="what survives a restart (event outbox)"
    )
    cameras: list[CameraConfig] = Field(..., min_length=1, description="camera streams")

    @model_validator(mode="after")
    def _unique_camera_names(self) -> AppConfig:
        seen: dict[str, int] = {}
        for i, camera in enumerate(self.cameras):
            if camera.name in seen:
                raise _rule_error(
                    f"camera name {camera.name!r} is already used by cameras[{seen[camera.name]}]"
                    "; camera names must be unique",
                    "cameras",
                    i,
                    "name",
                )
            seen[camera.name] = i
        return self

    def redacted_dict(self) -> dict[str, Any]:
        """A JSON-compatible dump for logging: passwords -> ``"***"``, URL passwords too."""
        data = self.model_dump(mode="json")
        if self.mqtt.password is not None:
            data["mqtt"]["password"] = "***"
        for section in ("metrics", "live_view"):
            if getattr(self, section).token is not None:
                data[section]["token"] = "***"
        for camera in data["cameras"]:
            url = camera["source"].get("url")
            if isinstance(url, str):
                camera["source"]["url"] = redact_url(url)
        return data
