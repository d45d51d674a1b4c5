"""A frame whose analysis fails is skipped and counted; the camera lives on (robustness
round 2, item 2). Real daemon, real sample camera, a real ONNX model that outputs NaN."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.classify.test_model import _linear_model
from tests.support.app import app_config, running_app, sample_camera


def nan_model(path: Path) -> Path:
    """A valid model file (contract and shapes right) whose every output is NaN."""
    return _linear_model(path, weights=np.full((48 * 48, 7), np.nan, np.float32))


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_failing_frames_are_skipped_counted_and_restart_only_the_analysis(
    tmp_path: Path, mosquitto: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model = nan_model(tmp_path / "nan.onnx")
    cams = [{**sample_camera("bad", 10), "analysis_failing_s": 1}]
    data = app_config(mosquitto.port, cams, model={"path": str(model)})
    with running_app(tmp_path / "c.yaml", data) as app:
        rt = app.cameras[0]
        # Every frame with a face fails in the tracker (NaN probabilities)...
        _wait(lambda: rt.pipeline.analyzer.metrics.frame_errors >= 5)
        # ...yet the thread runs, health stays good, and the state says why.
        assert rt.pipeline.is_alive()
        assert app.health().healthy, app.health()
        state = rt.pipeline.state()
        assert state["frame_errors"] >= 5
        assert "frame analysis failed: ValueError" in state["analysis_error"]
        # After analysis_failing_s of nothing but failures, the analysis restarts.
        _wait(lambda: rt.pipeline.analyzer.metrics.analysis_restarts >= 1)
        assert rt.pipeline.is_alive()
        snap = rt.pipeline.analyzer.metrics.snapshot()
        assert snap["frame_errors"] >= 5 and snap["analysis_restarts"] >= 1
    # One traceback, then rate-limited lines: not one log line per frame.
    lines = [r for r in caplog.records if "frame analysis failed" in r.getMessage()]
    assert 1 <= len(lines) <= 5
    assert lines[0].exc_info is not None
