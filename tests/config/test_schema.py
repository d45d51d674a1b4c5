"""The schema itself: strictness, documentation, bounds, and use from code."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from edge_daemon.config import (
    EMOTIONS,
    SOURCE_TYPES,
    AlertRule,
    AppConfig,
    CameraConfig,
    SampleSource,
    StrictModel,
)

REPO = Path(__file__).resolve().parents[2]


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model class reachable from ``root``."""
    found: list[type[BaseModel]] = []

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in found:
                return
            found.append(tp)
            for field in tp.model_fields.values():
                visit(field.annotation)
        for arg in get_args(tp):
            visit(arg)

    visit(root)
    return found


MODELS = _models(AppConfig)


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def test_emotions() -> None:
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert get_args(AlertRule.model_fields["emotion"].annotation) == EMOTIONS


def test_label_order_is_spelled_out_once_in_the_daemon() -> None:
    """The FER label order lives in edge_daemon/labels.py only (docstring examples aside)."""
    holders = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "edge_daemon").rglob("*.py")
        if '"angry", "disgust"' in p.read_text()
    ]
    assert holders == ["edge_daemon/labels.py"]


def test_source_types() -> None:
    assert SOURCE_TYPES == ("file", "usb", "rtsp", "mjpeg", "sample")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_model_is_strict_and_frozen(model: type[BaseModel]) -> None:
    assert issubclass(model, StrictModel)
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_described_and_numbers_are_bounded(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
        tp = _strip_optional(field.annotation)
        if tp in (int, float):
            attrs = {a for m in field.metadata for a in ("ge", "gt", "le", "lt") if hasattr(m, a)}
            assert attrs & {"ge", "gt"}, f"{model.__name__}.{name} has no lower bound"
            assert attrs & {"le", "lt"}, f"{model.__name__}.{name} has no upper bound"


def test_default_config_yaml_documents_every_option() -> None:
    text = (REPO / "config.yaml").read_text()
    missing = [
        f"{model.__name__}.{name}"
        for model in MODELS
        for name in model.model_fields
        if not re.search(rf"^[\s#-]*{re.escape(name)}:", text, re.MULTILINE)
    ]
    assert not missing, f"config.yaml does not show: {missing}"
    for literal in ("rtsp", "usb", "mjpeg", "file"):
        assert f"type: {literal}" in text
    assert "${MQTT_PASSWORD}" in text
    assert "emotion: angry" in text


def test_construct_from_code() -> None:
    camera = CameraConfig(name="cam", source=SampleSource())
    config = AppConfig(cameras=[camera])
    assert config.cameras[0].source.type == "sample"
    assert config.model.path is None


def test_extra_keys_rejected_from_code() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SampleSource(fps=10, colour="red")  # type: ignore[call-arg]


def test_cross_field_rules_apply_from_code() -> None:
    with pytest.raises(ValidationError, match="reconnect_initial_s"):
        CameraConfig(name="cam", source=SampleSource(), reconnect_initial_s=10, reconnect_max_s=5)
    with pytest.raises(ValidationError, match="already used"):
        AppConfig(
            cameras=[
                CameraConfig(name="a", source=SampleSource()),
                CameraConfig(name="a", source=SampleSource()),
            ]
        )


def test_reconnect_max_equal_initial_is_fine() -> None:
    camera = CameraConfig(name="c", source=SampleSource(), reconnect_initial_s=5, reconnect_max_s=5)
    assert camera.reconnect_max_s == 5


def test_literal_fields_match_documented_values() -> None:
    def literal(model: type[BaseModel], name: str) -> tuple[Any, ...]:
        tp = model.model_fields[name].annotation
        assert get_origin(tp) is Literal
        return get_args(tp)

    assert literal(AppConfig, "log_level") == ("debug", "info", "warning", "error")
