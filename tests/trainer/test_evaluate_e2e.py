"""End-to-end benchmark: scene geometry, face choice, metrics, conditions and the CLI.

The CLI tests build a tiny labelled set from scikit-image's public-domain astronaut
photo (no shared data needed) and run it through the real detector and bundled model.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_daemon.labels import FER_LABELS
from trainer import evaluate_e2e as e2e


def test_place_in_frame_centres_the_photo_on_grey() -> None:
    photo = np.full((10, 20, 3), 7, np.uint8)
    frame, (x0, y0, x1, y1) = e2e.place_in_frame(photo, 2.5)
    assert frame.shape == (25, 50, 3)
    assert (x1 - x0, y1 - y0) == (20, 10)
    assert (frame[y0:y1, x0:x1] == 7).all()
    frame[y0:y1, x0:x1] = e2e.CANVAS_GREY
    assert (frame == e2e.CANVAS_GREY).all()


def test_pick_face_is_the_detection_nearest_the_photo_centre_inside_it() -> None:
    region = (100, 100, 200, 200)
    boxes = np.array(
        [
            [0, 0, 50, 50],  # outside the photo
            [110, 110, 150, 150],  # inside, off centre
            [130, 130, 170, 170],  # inside, centred
        ],
        np.float32,
    )
    assert e2e.pick_face(boxes, region) == 2
    assert e2e.pick_face(boxes[:1], region) == -1
    assert e2e.pick_face(np.zeros((0, 4), np.float32), region) == -1


def _scored(labels: list[int], preds: list[int | None]) -> e2e.Scored:
    n = len(labels)
    probs = np.zeros((n, len(FER_LABELS)), np.float32)
    found = np.array([p is not None for p in preds])
    for i, p in enumerate(preds):
        if p is not None:
            probs[i, p] = 1.0
    return e2e.Scored(np.array(labels), found, probs)


def test_summary_counts_misses_and_averages_f1_over_present_classes_only() -> None:
    happy, neutral, sad = (FER_LABELS.index(c) for c in ("happy", "neutral", "sad"))
    # 4 happy (3 right, 1 missed), 2 neutral (1 right, 1 called sad).
    s = e2e.summary(_scored([happy] * 4 + [neutral] * 2, [happy, happy, happy, None, neutral, sad]))
    assert (s["items"], s["found"], s["missed"]) == (6, 5, 1)
    assert s["accuracy"] == pytest.approx(4 / 5)
    assert s["accuracy_all"] == pytest.approx(4 / 6)
    pc = s["per_class"]
    assert pc["happy"]["recall"] == 1.0 and pc["neutral"]["recall"] == 0.5
    assert pc["sad"]["precision"] == 0.0 and pc["sad"]["predicted"] == 1
    # Present classes: happy (F1 1) and neutral (P 1, R 0.5: F1 2/3). Sad is predicted
    # but absent from the labels, so it is not averaged in.
    assert s["macro_f1_present"] == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("condition", e2e.CONDITIONS)
def test_every_condition_makes_a_frame_of_the_same_kind(condition: str) -> None:
    face = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    clean, region = e2e.condition_scene(face, "clean", np.random.default_rng(1))
    frame, region2 = e2e.condition_scene(face, condition, np.random.default_rng(1))
    assert frame.dtype == np.uint8 and frame.shape == clean.shape and region2 == region
    again, _ = e2e.condition_scene(face, condition, np.random.default_rng(1))
    assert np.array_equal(frame, again)  # the same degradation for every model
    if condition != "clean":
        assert not np.array_equal(frame, clean)


def test_low_light_darkens_and_small_face_loses_detail() -> None:
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (48, 48), dtype=np.uint8)  # detail at every scale
    clean, (x0, y0, x1, y1) = e2e.condition_scene(face, "clean", rng)
    dark, _ = e2e.condition_scene(face, "low_light", rng)
    small, _ = e2e.condition_scene(face, "small_face", rng)
    assert dark.mean() < 0.6 * clean.mean()
    lap = lambda im: cv2.Laplacian(im[y0:y1, x0:x1], cv2.CV_64F).var()  # noqa: E731
    assert lap(small) < 0.5 * lap(clean)


def test_unknown_condition_is_refused() -> None:
    with pytest.raises(e2e.E2EError, match="unknown"):
        e2e._parse_conditions("clean,fog")
    assert e2e._parse_conditions("noise") == ("clean", "noise")


def _astronaut_set(root: Path, rows: list[tuple[str, str]], person: str = "alice") -> None:
    """A tiny labelled set of one person; alice is a held-out person (person_fold), so
    a model fitted on the train half of the people may be scored on her."""
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    face = img[20:220, 130:330]  # the astronaut's head, as tight as the shared photos
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "face.png"), face)
    (root / "images" / "blank.png").write_bytes(
        cv2.imencode(".png", np.full((200, 200, 3), 90, np.uint8))[1].tobytes()
    )
    lines = ["file,emotion,person"] + [f"{f},{e},{person}" for f, e in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def test_cli_scores_a_labelled_set_through_the_real_detector(tmp_path: Path, capsys) -> None:
    _astronaut_set(tmp_path / "inthewild", [("face.png", "happy"), ("blank.png", "neutral")])
    # fer2013: a bundled model fitted on none of the in-the-wild people (fast and nano
    # have seen every one of them, so only --seen would score them on any photo).
    rc = e2e.main(
        [
            "fer2013",
            "--data",
            str(tmp_path),
            "--conditions",
            "none",
            "--out",
            str(tmp_path / "o"),
            "--json",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    s = report["inthewild"]["models"]["fer2013"]
    # The astronaut is found; the blank photo has no face: a miss, not a wrong answer.
    assert (s["items"], s["found"], s["missed"]) == (2, 1, 1)
    assert s["per_class"]["happy"]["support"] == 1
    assert sum(s["per_class"][c]["predicted"] for c in FER_LABELS) == 1
    assert (tmp_path / "o" / "fer2013_inthewild_confusion.png").stat().st_size > 0


def test_the_default_detector_finds_a_close_face_full_range_misses(tmp_path: Path, capsys) -> None:
    """The face filling the whole frame (canvas 1.0), as at a webcam or a driver camera:
    the daemon's default detector (``both``) finds it, ``--detector full_range`` does not
    (the detector the end-to-end figures were measured with before 2026-12-02)."""
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    root = tmp_path / "inthewild"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "close.png"), cv2.resize(img[64:174, 170:280], (480, 480)))
    (root / "labels.csv").write_text("file,emotion,person\nclose.png,neutral,alice\n")
    found = {}
    for detector in (None, "full_range"):
        argv = ["fer2013", "--data", str(tmp_path), "--conditions", "none", "--canvas", "1"]
        argv += ["--out", str(tmp_path / "o"), "--json"]
        assert e2e.main(argv + ([] if detector is None else ["--detector", detector])) == 0
        report = json.loads(capsys.readouterr().out)
        found[report["detector"]["model"]] = report["inthewild"]["models"]["fer2013"]["found"]
    assert found == {"both": 1, "full_range": 0}
    with pytest.raises(SystemExit):
        e2e.main(["fer2013", "--data", str(tmp_path), "--detector", "huge"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("face.png", "smug")], "is not one of"),
        ([("gone.png", "happy")], "not a readable image"),
    ],
)
def test_cli_bad_data_is_one_line_and_exit_2(
    tmp_path: Path, capsys, rows: list[tuple[str, str]], message: str
) -> None:
    _astronaut_set(tmp_path / "inthewild", rows)
    rc = e2e.main(
        ["fer2013", "--data", str(tmp_path), "--conditions", "none", "--out", str(tmp_path)]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_missing_data_and_model(tmp_path: Path, capsys) -> None:
    assert e2e.main(["fer2013", "--data", str(tmp_path), "--conditions", "none"]) == 2
    assert "labels.csv: no such file" in capsys.readouterr().err
    assert e2e.main([str(tmp_path / "nope.onnx"), "--data", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_person_fold_is_fixed_and_splits_the_people_about_in_half() -> None:
    # Pinned: the split must not move between machines or releases, or a model fitted on
    # one half would later be scored on people it has seen.
    assert [e2e.person_fold(n) for n in ("alice", "bob", "carol", "erin")] == [
        "held_out",
        "held_out",
        "train",
        "train",
    ]
    share = np.mean([e2e.person_fold(f"person {i}") == "train" for i in range(2000)])
    assert 0.45 < share < 0.55


def test_load_inthewild_keeps_every_person_in_one_half(tmp_path: Path) -> None:
    people = ["alice", "bob", "carol", "erin", "dave"]
    rows = [f"{n}_{k}.jpg,{'happy' if k else 'neutral'},{n}" for n in people for k in range(3)]
    (tmp_path / "labels.csv").write_text("file,emotion,person\n" + "\n".join(rows) + "\n")
    got = {p: e2e.load_inthewild(tmp_path, people=p)[0] for p in e2e.PEOPLE}
    names = {p: {x.name.rsplit("_", 1)[0] for x in v} for p, v in got.items()}
    assert names["train"] == {"carol", "erin"}
    assert names["held_out"] == {"alice", "bob", "dave"}
    assert sorted(got["train"] + got["held_out"]) == sorted(got["all"])
    with pytest.raises(e2e.E2EError, match="allowed"):
        e2e.load_inthewild(tmp_path, people="some")
    (tmp_path / "labels.csv").write_text("file,emotion\na.jpg,happy\n")
    assert len(e2e.load_inthewild(tmp_path)[0]) == 1  # no person column: all still works
    with pytest.raises(e2e.E2EError, match="needs columns emotion,file,person"):
        e2e.load_inthewild(tmp_path, people="held_out")


def _seen_model(tmp_path: Path, people: str) -> Path:
    """The bundled default's graph, its metadata saying it was fitted on ``people``."""
    import onnx

    from edge_daemon.config.schema import BUNDLED_MODELS

    m = onnx.load(str(BUNDLED_MODELS["fast"]))
    # the bundled default says so already: replace, not add a second entry
    kept = [x for x in m.metadata_props if x.key != "trained_on_inthewild"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    m.metadata_props.add(key="trained_on_inthewild", value=people)
    path = tmp_path / f"seen_{people}.onnx"
    onnx.save(m, str(path))
    return path


def test_a_model_fitted_on_in_the_wild_photos_is_scored_on_other_people_only(
    tmp_path: Path, capsys
) -> None:
    data = tmp_path / "data"
    # The astronaut as a held-out person: the auto default scores the fitted model on her.
    _astronaut_set(data / "inthewild", [("face.png", "happy")], person="alice")
    seen = _seen_model(tmp_path, "train")
    argv = ["--data", str(data), "--conditions", "none", "--out", str(tmp_path), "--json"]
    assert e2e.main([f"cand={seen}", "fer2013", *argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["people"] == "held_out"
    assert report["inthewild"]["models"]["cand"]["found"] == 1
    # Asked for the photos it was fitted on, or for all of them: refused, one line.
    for people in ("all", "train"):
        assert e2e.main([f"cand={seen}", *argv, "--people", people]) == 2
        err = capsys.readouterr().err
        assert "cannot be scored on people" in err and "--people held_out" in err
    # A model fitted on every person has no held-out photos left.
    assert e2e.main([str(_seen_model(tmp_path, "all")), *argv, "--people", "held_out"]) == 2
    assert "it has seen every person" in capsys.readouterr().err
    # Unless asked (--seen): then scored on every photo and marked, in JSON and the table.
    assert e2e.main([f"every={_seen_model(tmp_path, 'all')}", "fer2013", *argv, "--seen"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["data"]["people"] == "all" and report["data"]["seen_by"] == ["every"]
    assert "SEEN: every trained on some of these photos" in out.err
    # Models that never saw the photos keep the whole set under auto.
    assert e2e.main(["fer2013", *argv]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["people"] == "all"


def test_a_cross_fit_scores_each_half_with_the_model_that_never_saw_it(
    tmp_path: Path, capsys
) -> None:
    data = tmp_path / "data"
    _astronaut_set(data / "inthewild", [("face.png", "happy")], person="carol")  # train half
    argv = ["--data", str(data), "--conditions", "none", "--out", str(tmp_path), "--json"]
    fitted_a, fitted_b = _seen_model(tmp_path, "train"), _seen_model(tmp_path, "held_out")
    # The second model (fitted on held_out) is scored on the train half under auto.
    assert e2e.main([f"b={fitted_b}", "fer2013", *argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["people"] == "train"
    assert report["inthewild"]["models"]["b"]["found"] == 1
    assert e2e.main([f"b={fitted_b}", *argv, "--people", "held_out"]) == 2
    err = capsys.readouterr().err
    assert "cannot be scored on people held_out" in err and "--people train" in err
    # Both halves' models in one run: no half is unseen by both, refused with the way out.
    assert e2e.main([f"a={fitted_a}", f"b={fitted_b}", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: b: trained on") and "--people train" in err
