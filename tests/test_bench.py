"""`edge-daemon bench` on a small generated video: decode, pipeline and naive baseline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from edge_daemon.bench import BenchError, run_bench
from edge_daemon.cli import main


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "face.mp4"
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for i in range(20):
        w.write(np.roll(face, i * 2, axis=1))
    w.release()
    return path


def test_bench_reports_decode_pipeline_and_baseline(face_video: Path) -> None:
    r = run_bench(face_video, streams=2, max_frames=12, baseline=True)
    assert r["frames"] == 24 and r["streams"] == 2
    assert (r["width"], r["height"]) == (512, 512)
    assert r["decode_fps"] > 0 and r["pipeline_fps"] > 0
    ratio = r["pipeline_fps"] / r["decode_fps"]
    assert r["pipeline_to_decode_ratio"] == pytest.approx(ratio, rel=0.05, abs=0.002)
    assert r["faces_per_frame"] == pytest.approx(1.0, abs=0.1)  # BlazeFace finds the face
    assert r["naive_fps"] > 0 and r["naive_faces_per_frame"] > 0.5  # so does Haar
    assert r["pipeline_to_naive_ratio"] > 0
    assert r["latency_ms_p99"] >= r["latency_ms_p50"] > 0


def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BenchError, match="no such file"):
        run_bench(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(BenchError, match=r"cannot open|no decodable"):
        run_bench(text)
    assert main(["bench", "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
