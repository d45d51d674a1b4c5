"""trainer.wild_crops: daemon-path crops of one half of the in-the-wild people, as
training data that a run adds with ``data.extra`` (scikit-image's public-domain
astronaut photo stands in for the shared photos; the real detector and bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_daemon.classify.crop import crop_faces
from edge_daemon.classify.model import EmotionModel
from edge_daemon.config.schema import BUNDLED_MODELS, DetectorConfig
from edge_daemon.detect.blazeface import DetectorParams, FaceDetector
from edge_daemon.labels import FER_LABELS
from trainer import evaluate_e2e as e2e
from trainer import wild_crops
from trainer.data import crops_people, load_crops_npz


def _photos(root: Path) -> np.ndarray:
    """Two photos of a train-half person (the astronaut and a blank one, which has no
    face) and one of a held-out person; returns the astronaut photo."""
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:220, 130:330]
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "face.png"), face)
    cv2.imwrite(str(root / "images" / "other.png"), face)
    cv2.imwrite(str(root / "images" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    assert e2e.person_fold("carol") == "train" and e2e.person_fold("alice") == "held_out"
    (root / "labels.csv").write_text(
        "file,emotion,person\nface.png,happy,carol\nblank.png,sad,carol\nother.png,angry,alice\n"
    )
    return face


def test_crops_are_what_the_daemon_feeds_the_model(tmp_path: Path, capsys) -> None:
    face = _photos(tmp_path / "inthewild")
    out = tmp_path / "crops.npz"
    assert wild_crops.main(["--data", str(tmp_path), "--out", str(out)]) == 0
    assert "1 crops of 2 photos (1 faces missed), people train" in capsys.readouterr().out
    with np.load(out) as z:
        images, labels, files = z["images"], z["labels"], z["files"]
        meta = json.loads(str(z["meta"]))
    # Only the train person's photos; the blank one is a miss, not a crop.
    assert list(files) == ["face.png"] and labels.tolist() == [FER_LABELS.index("happy")]
    assert (meta["people"], meta["photos"], meta["found"], meta["missed"]) == ("train", 2, 1, 1)
    # The same pixels as the daemon's detector and crop on the same framed photo.
    frame, region = e2e.place_in_frame(face, e2e.CANVAS_SCALE)
    det = FaceDetector(DetectorParams.from_config(DetectorConfig())).detect(frame)
    k = e2e.pick_face(det.xyxy, region)
    contract = EmotionModel(BUNDLED_MODELS["fast"], "cpu", 1).contract
    want = crop_faces(frame, det.xyxy[k : k + 1], contract)
    assert images.dtype == np.uint8 and np.array_equal(images, want)
    # What a training run reads back, and which people it then says it has seen.
    ds = load_crops_npz(out)
    assert len(ds) == 1 and ds.soft is None
    assert crops_people(out) == "train"
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_held_out_crops_fit_the_second_half_of_a_cross_fit(tmp_path: Path, capsys) -> None:
    # The other half's crops, for the second model of a cross-fit: its own people only,
    # and the file says which, so the export records them and evaluate_e2e scores that
    # model on the train half.
    _photos(tmp_path / "inthewild")
    out = tmp_path / "crops.npz"
    argv = ["--data", str(tmp_path), "--out", str(out), "--people", "held_out"]
    assert wild_crops.main(argv) == 0
    assert "people held_out" in capsys.readouterr().out
    with np.load(out) as z:
        assert list(z["files"]) == ["other.png"]
        assert z["labels"].tolist() == [FER_LABELS.index("angry")]
    assert crops_people(out) == "held_out"


def test_bad_data_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "crops.npz"
    assert wild_crops.main(["--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "labels.csv: no such file" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("people", ["train", "all"])
def test_no_face_found_is_an_error_not_an_empty_file(tmp_path: Path, capsys, people: str) -> None:
    root = tmp_path / "inthewild"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "blank.png"), np.full((200, 200, 3), 90, np.uint8))
    (root / "labels.csv").write_text("file,emotion,person\nblank.png,sad,carol\n")
    out = tmp_path / "crops.npz"
    assert wild_crops.main(["--data", str(tmp_path), "--out", str(out), "--people", people]) == 2
    assert "found no labelled face in 1 photos" in capsys.readouterr().err
    assert not out.exists()


def test_detector_option_cuts_with_that_detector_and_says_so(tmp_path: Path, capsys) -> None:
    # A recipe refit on the crops of another detector.model (e.g. the full-range crops a
    # shipped model was fitted on) must get that detector's boxes, and the file must
    # say which detector cut it.
    face = _photos(tmp_path / "inthewild")
    frame, region = e2e.place_in_frame(face, e2e.CANVAS_SCALE)
    contract = EmotionModel(BUNDLED_MODELS["fast"], "cpu", 1).contract

    def crop_with(model: str | None) -> np.ndarray:
        cfg = DetectorConfig() if model is None else DetectorConfig(model=model)
        det = FaceDetector(DetectorParams.from_config(cfg)).detect(frame)
        k = e2e.pick_face(det.xyxy, region)
        return crop_faces(frame, det.xyxy[k : k + 1], contract)

    out = tmp_path / "crops.npz"
    argv = ["--data", str(tmp_path), "--out", str(out), "--detector", "short_range"]
    assert wild_crops.main(argv) == 0
    assert "detector short_range" in capsys.readouterr().out
    with np.load(out) as z:
        images, meta = z["images"], json.loads(str(z["meta"]))
    assert meta["detector"]["model"] == "short_range"
    assert np.array_equal(images, crop_with("short_range"))
    assert not np.array_equal(images, crop_with(None))  # the default cuts another box


def test_default_crops_record_the_daemons_detector(tmp_path: Path) -> None:
    _photos(tmp_path / "inthewild")
    out = tmp_path / "crops.npz"
    assert wild_crops.main(["--data", str(tmp_path), "--out", str(out)]) == 0
    with np.load(out) as z:
        meta = json.loads(str(z["meta"]))
    cfg = DetectorConfig()
    assert meta["detector"] == {
        "model": cfg.model,
        "min_confidence": cfg.min_confidence,
        "added_min_confidence": cfg.added_min_confidence,
    }
