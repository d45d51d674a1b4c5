"""Execution providers: the choice, its errors, and the CPU fallback when an
accelerator provider is installed but cannot start."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from edge_daemon.classify import model as model_mod
from edge_daemon.classify.model import (
    BUNDLED_MODEL,
    PROVIDERS,
    EmotionModel,
    ModelLoadError,
    choose_providers,
)

CPU = "CPUExecutionProvider"


def test_auto_takes_cuda_first_only_when_present() -> None:
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("auto", ["CUDAExecutionProvider", CPU]) == [
        "CUDAExecutionProvider",
        CPU,
    ]
    # OpenVINO is never picked by auto: it is a choice a user makes for an Intel box.
    assert choose_providers("auto", ["OpenVINOExecutionProvider", CPU]) == [CPU]


@pytest.mark.parametrize("name", ["cuda", "openvino", "tensorrt"])
def test_a_named_provider_that_is_not_installed_is_a_clear_error(name: str) -> None:
    with pytest.raises(ModelLoadError, match=f"model.providers is '{name}' but this onnxruntime"):
        choose_providers(name, [CPU])


def test_named_provider_then_the_cpu() -> None:
    assert choose_providers("openvino", ["OpenVINOExecutionProvider", CPU]) == [
        "OpenVINOExecutionProvider",
        CPU,
    ]
    # TensorRT brings CUDA with it; where CUDA is absent the list skips it.
    assert choose_providers("tensorrt", ["TensorrtExecutionProvider", CPU]) == [
        "TensorrtExecutionProvider",
        CPU,
    ]
    assert all(v[-1] == CPU for v in PROVIDERS.values())


class _FakeSession:
    """Stands in for onnxruntime.InferenceSession: ``refuse`` says why a creation fails
    (None: a real CPU session is made and used)."""

    real: Any = None  # the real InferenceSession class, set before patching

    def refuse(self, so: Any, providers: list[str]) -> str | None:
        raise NotImplementedError

    def __init__(self, path: str, so: Any, providers: list[str]) -> None:
        why = self.refuse(so, providers)
        if why is not None:
            raise RuntimeError(why)
        self._real = _FakeSession.real(path, so, providers=[CPU])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _FailingAccelerator(_FakeSession):
    """The accelerator provider raises at session creation, as a CUDA provider without
    its driver does; the CPU works."""

    calls: ClassVar[list[list[str]]] = []

    def refuse(self, so: Any, providers: list[str]) -> str | None:
        type(self).calls.append(list(providers))
        if providers[0] != CPU:
            return "CUDA failure 35: CUDA driver version is insufficient\nmore"
        return None


def _use_fake_session(monkeypatch: pytest.MonkeyPatch, fake: type[_FakeSession]) -> None:
    """Make onnxruntime build ``fake`` sessions (which wrap the real class)."""
    import onnxruntime as ort

    _FakeSession.real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", fake)


def test_an_accelerator_that_fails_to_start_falls_back_to_the_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _use_fake_session(monkeypatch, _FailingAccelerator)
    monkeypatch.setattr(
        model_mod, "choose_providers", lambda requested: ["CUDAExecutionProvider", CPU]
    )
    _FailingAccelerator.calls = []
    with caplog.at_level(logging.WARNING):
        m = EmotionModel(BUNDLED_MODEL, providers="cuda")
    assert _FailingAccelerator.calls == [["CUDAExecutionProvider", CPU], [CPU]]
    assert m.info.providers == (CPU,)
    assert m.info.fallback is not None and "CUDA driver version is insufficient" in m.info.fallback
    d = m.info.describe()
    assert d["providers_requested"] == "cuda"
    assert d["provider_fallback"] == m.info.fallback
    assert "running the emotion model on the CPU" in caplog.text


def test_a_broken_file_on_the_cpu_is_still_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        EmotionModel(bad, providers="cpu")


def test_cpu_session_reports_no_fallback() -> None:
    m = EmotionModel(BUNDLED_MODEL, providers="cpu")
    assert m.info.fallback is None
    assert m.info.describe()["providers"] == [CPU]


class _BrokenOptimizer(_FakeSession):
    """An onnxruntime release whose extended graph optimisations break a valid model
    (1.24.1 on the FER-2013 ensemble bundled as `accurate` until 2026-12-08: "two nodes
    with same node name")."""

    def refuse(self, so: Any, providers: list[str]) -> str | None:
        import onnxruntime as ort

        if so.graph_optimization_level != ort.GraphOptimizationLevel.ORT_ENABLE_BASIC:
            return "This is an invalid model. Error: two nodes with same node name"
        return None


def test_a_graph_the_optimiser_breaks_runs_with_basic_optimisations(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _use_fake_session(monkeypatch, _BrokenOptimizer)
    with caplog.at_level(logging.WARNING):
        m = EmotionModel(BUNDLED_MODEL, providers="cpu")
    assert m.predict(np.full((2, 48, 48), 128, np.uint8)).shape == (2, 7)
    assert "could not optimise the graph fully (This is an invalid model" in caplog.text
    assert "upgrade onnxruntime" in caplog.text
