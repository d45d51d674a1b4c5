"""`edge-bench pipeline` on a small generated video: decode, pipeline and naive baseline."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest

from edge_bench.cli import main
from edge_bench.pipeline import BenchError, parse_size, run_bench, track_emotions, transcode
from edge_daemon.classify.model import EmotionModel
from edge_daemon.config import AppConfig
from tests.support.video import write_face_video


@pytest.fixture(scope="module")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_face_video(tmp_path_factory.mktemp("bench") / "face.mp4", 20, shift_px=2)


def test_bench_reports_decode_pipeline_and_baseline(face_video: Path) -> None:
    r = run_bench(face_video, streams=2, max_frames=12, baseline=True)
    assert r["frames"] == 24 and r["streams"] == 2
    assert (r["width"], r["height"]) == (512, 512)
    assert r["decode_fps"] > 0 and r["pipeline_fps"] > 0
    ratio = r["pipeline_fps"] / r["decode_fps"]
    assert r["pipeline_to_decode_ratio"] == pytest.approx(ratio, rel=0.05, abs=0.002)
    assert r["faces_per_frame"] == pytest.approx(1.0, abs=0.1)  # BlazeFace finds the face
    assert 0.0 <= r["faces_mirrored_share"] <= 1.0  # model.tta_hflip_below's second passes
    assert r["naive_fps"] > 0 and r["naive_faces_per_frame"] > 0.5  # so does Haar
    assert r["pipeline_to_naive_ratio"] > 0
    assert r["latency_ms_p99"] >= r["latency_ms_p50"] > 0
    assert r["analysis_ms_p99"] >= r["analysis_ms_p50"] > 0
    assert r["latency_ms_p50"] >= r["analysis_ms_p50"]  # latency includes the analysis
    assert 0 < r["cpu_cores_used"] <= (os.cpu_count() or 1) + 0.5


def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BenchError, match="no such file"):
        run_bench(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(BenchError, match=r"cannot open|no decodable"):
        run_bench(text)
    assert main(["pipeline", "--source", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_transcode_makes_the_requested_h264_file(face_video: Path, tmp_path: Path) -> None:
    out = transcode(face_video, tmp_path / "small.mp4", 320, 240, 5)
    cap = cv2.VideoCapture(str(out))
    frames = 0
    while cap.read()[0]:
        frames += 1
    size = (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert size == (320, 240)
    assert frames == 10  # 20 frames at 10 fps resampled to 5 fps
    with pytest.raises(BenchError, match="WIDTHxHEIGHT"):
        parse_size("720p")
    with pytest.raises(BenchError, match="even width"):
        parse_size("1281x720")


def _cfg(video: Path, every_n: int | None) -> AppConfig:
    detector = {} if every_n is None else {"every_n_frames": every_n}
    return AppConfig.model_validate(
        {
            "detector": detector,
            "cameras": [{"name": "v", "source": {"type": "file", "path": str(video)}}],
        }
    )


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "pyfeat__single_face.mp4",
        "fer__woman2.mp4",
        "pyfeat__face_noface.mov",
        "pyfeat__noface_face.mov",
    ],
)
def test_default_detection_stride_reports_the_same_emotions(videos_dir: Path, name: str) -> None:
    """Speed must not cost accuracy: the default ``every_n_frames`` against detecting on
    every frame, on the shared videos of one person (each video's main track)."""
    model = EmotionModel()
    video = videos_dir / name
    every = track_emotions(video, _cfg(video, 1), model)
    default = track_emotions(video, _cfg(video, None), model)
    main_every = max(every, key=lambda t: t["end_s"] - t["start_s"])
    main_default = max(default, key=lambda t: t["end_s"] - t["start_s"])
    assert main_default["emotion"] == main_every["emotion"]
    assert abs(main_default["share"] - main_every["share"]) < 0.1
    assert abs(main_default["start_s"] - main_every["start_s"]) < 0.3  # found as early
    assert abs(main_default["end_s"] - main_every["end_s"]) < 0.3
    assert len(default) <= len(every)  # no extra (split or false) tracks


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["pyfeat__no_face.mp4", "ultralight__test1.mp4"])
def test_default_detection_stride_adds_no_false_tracks(videos_dir: Path, name: str) -> None:
    model = EmotionModel()
    video = videos_dir / name
    assert len(track_emotions(video, _cfg(video, None), model)) <= len(
        track_emotions(video, _cfg(video, 1), model)
    )


def test_bench_reports_the_share_of_faces_classified_mirrored(
    face_video: Path, tmp_path: Path
) -> None:
    """model.tta_hflip_below 1.0 mirrors every face, 0 none: the report says which share."""
    shares = []
    for floor in (0.0, 1.0):
        cfg = tmp_path / f"c{floor}.yaml"
        cfg.write_text(
            "cameras:\n  - name: b\n    source: {type: sample}\n"
            f"model:\n  tta_hflip_below: {floor}\n"
        )
        shares.append(run_bench(face_video, config=cfg, max_frames=8)["faces_mirrored_share"])
    assert shares == [0.0, 1.0]
