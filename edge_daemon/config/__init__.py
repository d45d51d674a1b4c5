"""Daemon configuration: the strict schema and the YAML loader.

Typical use::

    from edge_daemon.config import ConfigError, load_config

    try:
        config = load_config("config.yaml")
    except ConfigError as exc:
        for issue in exc.errors:
            print(issue)  # config.yaml:12: cameras[0].source.url: must start with ...
"""

from edge_daemon.config.issues import ConfigError, ConfigIssue
from edge_daemon.config.loader import (
    load_config,
    load_config_text,
    warn_insecure_permissions,
)
from edge_daemon.config.schema import (
    AUTO_BUNDLED,
    BUNDLED_MODELS,
    EMOTIONS,
    NAME_PATTERN,
    SOURCE_TYPES,
    AlertRule,
    AppConfig,
    CameraConfig,
    CameraSource,
    DetectorConfig,
    EmbeddedBrokerConfig,
    Emotion,
    EventsConfig,
    FileSource,
    HomeAssistantConfig,
    LiveViewConfig,
    MetricsConfig,
    MjpegSource,
    ModelChoice,
    ModelConfig,
    MqttConfig,
    RtspSource,
    SampleSource,
    StrictModel,
    TlsConfig,
    TrackerConfig,
    UsbSource,
    redact_url,
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
    "ConfigError",
    "ConfigIssue",
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
    "load_config",
    "load_config_text",
    "redact_url",
    "warn_insecure_permissions",
]
