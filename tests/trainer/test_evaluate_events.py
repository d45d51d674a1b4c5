"""False-event benchmark: counting rules on synthetic events, and a real replay.

The replay builds clips from scikit-image's public-domain astronaut photo and runs them
through the daemon's CameraAnalyzer with the bundled model (no shared data needed).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer import evaluate_events as ev
from trainer.evaluate_e2e import E2EError


def _event(kind: str, emotion: str, ts: float = 1.7e9 + 1.0, track: int = 1) -> ev.Event:
    return ev.Event(
        camera="clip",
        type=kind,
        track_id=track,
        emotion=emotion,
        confidence=0.9,
        scores={},
        bbox=(0.1, 0.1, 0.2, 0.2),
        ts=ts,
    )


def test_neutral_report_counts_other_emotions_and_alerts_as_false() -> None:
    ok = ev.ClipResult("neutral", [_event("start", "neutral"), _event("end", "neutral")])
    flip = ev.ClipResult("neutral", [_event("start", "neutral"), _event("update", "sad")])
    alert = ev.ClipResult("neutral", [_event("start", "neutral"), _event("alert", "angry")])
    r = ev.neutral_report([ok, flip, alert], seconds=6.0)
    assert (r["clips"], r["clips_with_false_event"]) == (3, 2)
    assert (r["false_start_update"], r["false_alerts"]) == (1, 1)
    assert r["false_per_minute"] == pytest.approx(2 / (3 * 6 / 60))
    assert r["false_by_emotion"] == {"sad": 1}
    assert r["neutral_reported"] == 3


def test_expressive_report_measures_the_delay_of_the_labelled_emotion() -> None:
    late = ev.ClipResult(
        "happy",
        [_event("start", "neutral", 1.7e9 + 0.5), _event("update", "happy", 1.7e9 + 2.0)],
    )
    quick = ev.ClipResult("happy", [_event("start", "happy", 1.7e9 + 1.0)])
    never = ev.ClipResult("sad", [_event("start", "neutral", 1.7e9 + 1.0)])
    r = ev.expressive_report([late, quick, never])
    assert (r["clips"], r["reported"], r["first_event_right"]) == (3, 2, 1)
    assert r["median_delay_s"] == pytest.approx(1.5)
    assert r["reported_by_emotion"] == {"happy": [2, 2], "sad": [0, 1]}


def test_folds_split_every_emotion_in_two_disjoint_halves() -> None:
    # FER order: 3 happy, 4 sad, 6 neutral; 40 happy, 3 sad, 10 neutral photos.
    labels = [3] * 40 + [4] * 3 + [6] * 10
    tune, check = (ev.select_clips(labels, 0, 0, f) for f in ("tune", "check"))
    everything = ev.select_clips(labels, 0, 0, "all")
    for a, b, every in zip(tune, check, everything, strict=True):
        assert not set(a) & set(b) and sorted(a + b) == sorted(every)
    sad = [i for i in everything[1] if labels[i] == 4]
    assert [i for i in tune[1] if labels[i] == 4] == sad[0::2]


def test_expressive_clips_are_balanced_over_the_emotions() -> None:
    labels = [3] * 40 + [4] * 3 + [5] * 10 + [6] * 10
    neutral, expressive = ev.select_clips(labels, 4, 12)
    assert len(neutral) == 4 and all(labels[i] == 6 for i in neutral)
    counts = {y: sum(labels[i] == y for i in expressive) for y in (3, 4, 5)}
    # every sad photo (fewer than a share), the rest split between happy and surprise
    assert counts == {3: 5, 4: 3, 5: 4} or counts == {3: 4, 4: 3, 5: 5}
    assert len(set(expressive)) == 12


def test_grid_is_the_product_of_the_settings() -> None:
    grid = ev._grid(["events.establish_s=0.5,1", "tracker.min_hits=2,3"])
    assert len(grid) == 4 and {"events.establish_s": 1, "tracker.min_hits": 3} in grid
    assert ev._grid([]) == [{}]
    with pytest.raises(E2EError, match=r"section\.key"):
        ev._grid(["establish_s=1"])


def test_base_config_has_one_alert_per_non_neutral_emotion_and_takes_overrides() -> None:
    cfg = ev.base_config({"events.establish_s": 1.5})
    assert cfg.events.establish_s == 1.5
    assert sorted(a.emotion for a in cfg.cameras[0].alerts) == sorted(
        ["angry", "disgust", "fear", "happy", "sad", "surprise"]
    )


def test_replay_of_a_real_face_reports_one_track_and_its_events(tmp_path: Path, capsys) -> None:
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:220, 130:330]
    root = tmp_path / "inthewild"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), face)
    cv2.imwrite(str(root / "images" / "b.png"), np.ascontiguousarray(face[:, ::-1]))
    # fer2013 has seen none of the in-the-wild people (fast and nano have seen them all)
    (root / "labels.csv").write_text(
        "file,emotion,person\na.png,neutral,alice\nb.png,happy,alice\n"
    )
    rc = ev.main(["fer2013", "--data", str(tmp_path), "--seconds", "3", "--fps", "10", "--json"])
    assert rc == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["neutral"]["clips"] == 1 and run["expressive"]["clips"] == 1
    # A held face must be reported once (start), whatever the emotion the model names.
    n = run["neutral"]
    assert n["neutral_reported"] + n["false_start_update"] >= 1


def test_a_model_fitted_on_in_the_wild_photos_replays_the_other_people_only(
    tmp_path: Path, capsys
) -> None:
    import onnx

    from edge_daemon.config.schema import BUNDLED_MODELS

    m = onnx.load(str(BUNDLED_MODELS["fast"]))
    # the bundled default says so already: replace, not add a second entry
    kept = [x for x in m.metadata_props if x.key != "trained_on_inthewild"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    m.metadata_props.add(key="trained_on_inthewild", value="train")
    seen = tmp_path / "seen.onnx"
    onnx.save(m, str(seen))
    root = tmp_path / "inthewild"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    # carol is in the train half, alice held out (trainer.evaluate_e2e.person_fold)
    (root / "labels.csv").write_text(
        "file,emotion,person\na.png,neutral,carol\na.png,neutral,alice\na.png,sad,alice\n"
    )
    argv = [str(seen), "--data", str(tmp_path), "--seconds", "1", "--fps", "5", "--json"]
    assert ev.main(argv) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["people"] == "held_out"
    assert r["runs"][0]["neutral"]["clips"] == 1 and r["runs"][0]["expressive"]["clips"] == 1
    assert ev.main([*argv, "--people", "all"]) == 2
    assert "cannot be scored on people all" in capsys.readouterr().err


def test_bad_arguments_exit_2(tmp_path: Path, capsys) -> None:
    assert ev.main(["--seconds", "0"]) == 2
    assert ev.main(["fer2013", "--data", str(tmp_path)]) == 2
    assert "labels.csv" in capsys.readouterr().err


def test_the_default_fitted_on_every_person_is_refused_unless_seen(tmp_path: Path, capsys) -> None:
    # The bundled default has seen every in-the-wild person: its false events on them
    # would flatter it. Refused with the way out; --seen runs it and marks it.
    root = tmp_path / "inthewild"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    (root / "labels.csv").write_text("file,emotion,person\na.png,neutral,alice\n")
    argv = ["--data", str(tmp_path), "--seconds", "1", "--fps", "5", "--json"]
    assert ev.main(argv) == 2
    err = capsys.readouterr().err
    assert "fast: trained on the in-the-wild photos of people all" in err and "--seen" in err
    assert ev.main([*argv, "--seen"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert r["people"] == "all" and r["seen_by"] == ["fast"]


def test_a_new_id_where_a_face_was_just_seen_is_a_suspected_break() -> None:
    recent = {1: (1.0, (100.0, 100.0, 180.0, 180.0))}
    assert ev.is_rebirth((130.0, 110.0, 210.0, 190.0), 1.5, recent, window_s=1.0)
    # too long ago: a track lost for longer than max_missed_s is a new id by design
    assert not ev.is_rebirth((130.0, 110.0, 210.0, 190.0), 2.1, recent, window_s=1.0)
    # more than a face width away: someone else
    assert not ev.is_rebirth((300.0, 100.0, 380.0, 180.0), 1.5, recent, window_s=1.0)
