"""edge-bench parity: record boxes and probabilities on a real (generated) video, and
compare two records face by face."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

from edge_bench.cli import main  # noqa: E402
from edge_bench.parity import ParityError, compare, record  # noqa: E402


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short MJPEG clip of the public-domain astronaut portrait, drifting a little."""
    face = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    path = tmp_path_factory.mktemp("parity") / "astronaut.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(12):
        frame = np.full((480, 640, 3), 90, np.uint8)
        small = cv2.resize(face, (300, 300))
        frame[60 + i : 360 + i, 150 + 2 * i : 450 + 2 * i] = small
        w.write(frame)
    w.release()
    return path


@pytest.fixture(scope="module")
def recorded(video: Path) -> dict:
    return record([video], ["fast", "fer2013"], frames=4, every=3)


def test_record_finds_the_face_with_every_model(recorded: dict) -> None:
    assert [f["index"] for f in recorded["frames"]] == [0, 3, 6, 9]
    assert all(len(f["boxes"]) == 1 for f in recorded["frames"])
    for f in recorded["frames"]:
        for m in ("fast", "fer2013"):
            assert np.isclose(sum(f["probs"][m][0]), 1.0, atol=1e-3)
    assert recorded["platform"]["cpu"]["machine"]
    assert set(recorded["models"]) == {"fast", "fer2013"}


def test_a_record_matches_itself(recorded: dict) -> None:
    rep = compare(recorded, copy.deepcopy(recorded))
    assert rep["ok"] and rep["faces"] == 4
    assert rep["box_max_px"] == 0 and rep["prob_max"] == {"fast": 0, "fer2013": 0}
    assert rep["top_class_agreement"] == {"fast": 1.0, "fer2013": 1.0}


def test_differences_over_tolerance_fail_and_are_named(video: Path, recorded: dict) -> None:
    other = record([video], ["fast", "fer2013"], frames=4, every=3, boxes_from=recorded)
    assert compare(recorded, other)["ok"]  # the same machine: identical
    side = recorded["frames"][1]["boxes"][0][2] - recorded["frames"][1]["boxes"][0][0]
    other["frames"][1]["boxes"][0][0] += 0.15 * side  # a corner 15% of the face away
    other["frames"][2]["probs_on_ref_boxes"]["fast"][0][0] += 0.2
    rep = compare(recorded, other)
    assert not rep["ok"]
    assert rep["box_max_of_side"] == pytest.approx(0.15, abs=1e-3)
    assert rep["prob_max_same_crop"]["fast"] == pytest.approx(0.2, abs=1e-4)
    text = "\n".join(rep["problems"])
    assert "frame 3 face 0: box corners" in text
    assert "frame 6 face 0: fast probabilities on the same crop differ by 0.2000" in text
    # Within looser tolerances the same pair passes.
    assert compare(recorded, other, box_tol=0.5, prob_tol=0.25)["ok"]


def test_end_to_end_top_class_flips_are_counted(recorded: dict) -> None:
    other = copy.deepcopy(recorded)
    for f in other["frames"][:2]:
        p = f["probs"]["fer2013"][0]
        f["probs"]["fer2013"][0] = p[1:] + p[:1]  # another top class
    rep = compare(recorded, other)
    assert rep["top_class_agreement"]["fer2013"] == 0.5
    assert not rep["ok"]
    assert "fer2013: the same top class on only 50.0% of the faces" in rep["problems"]
    assert compare(recorded, other, min_agreement=0.5)["ok"]


def test_a_missing_face_fails(recorded: dict) -> None:
    other = copy.deepcopy(recorded)
    f = other["frames"][0]
    f["boxes"], f["scores"], f["probs"] = [], [], {"fast": [], "fer2013": []}
    rep = compare(recorded, other)
    assert not rep["ok"]
    assert any("1 faces against 0" in p for p in rep["problems"])


def test_files_of_other_models_or_frames_are_refused(recorded: dict) -> None:
    other = copy.deepcopy(recorded)
    other["models"]["fast"] = "0" * 64
    with pytest.raises(ParityError, match="different models"):
        compare(recorded, other)
    other = copy.deepcopy(recorded)
    other["frames"].pop()
    with pytest.raises(ParityError, match="different frames"):
        compare(recorded, other)


def test_cli_exit_codes(
    recorded: dict, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(recorded))
    other = copy.deepcopy(recorded)
    other["frames"][0]["scores"][0] += 0.5
    b.write_text(json.dumps(other))
    assert main(["parity", "compare", str(a), str(a)]) == 0
    assert "within tolerance" in capsys.readouterr().err
    assert main(["parity", "compare", str(a), str(b)]) == 1
    assert "score differs by 0.5000" in capsys.readouterr().out
    (tmp_path / "junk.json").write_text("{")
    assert main(["parity", "compare", str(a), str(tmp_path / "junk.json")]) == 2
    assert "not a readable parity file" in capsys.readouterr().err
    assert main(["parity", "record", "--video", str(tmp_path / "none.mp4"), "--out", str(b)]) == 2
    assert "cannot be opened as a video" in capsys.readouterr().err


def test_a_small_shift_of_every_box_fails_on_the_median(recorded: dict) -> None:
    other = copy.deepcopy(recorded)
    for f in other["frames"]:
        b = f["boxes"][0]
        b[0] += 0.03 * (b[2] - b[0])  # 3% of the side: under the per-face 10%
    rep = compare(recorded, other)
    assert rep["box_max_of_side"] < 0.1 and rep["box_median_of_side"] == pytest.approx(
        0.03, abs=0.002
    )
    assert not rep["ok"]
    assert any("median box difference is 3.0" in p for p in rep["problems"])


def test_the_reference_records_each_crops_sensitivity(recorded: dict, video: Path) -> None:
    for f in recorded["frames"]:
        for m in ("fast", "fer2013"):
            (j,) = f["jitter"][m]
            assert 0.0 <= j < 0.5
    # The seeded noise makes it reproducible; the side that classifies at the
    # reference's boxes does not spend the time on it.
    again = record([video], ["fast", "fer2013"], frames=4, every=3)
    assert [f["jitter"] for f in again["frames"]] == [f["jitter"] for f in recorded["frames"]]
    other = record([video], ["fast"], frames=1, every=3, boxes_from=recorded)
    assert "jitter" not in other["frames"][0]


def _same_crops(recorded: dict) -> dict:
    other = copy.deepcopy(recorded)
    for f in other["frames"]:
        f["probs_on_ref_boxes"] = copy.deepcopy(f["probs"])
    return other


def test_an_ambiguous_crop_may_move_as_far_as_one_grey_level_moves_it(recorded: dict) -> None:
    ref = copy.deepcopy(recorded)
    other = _same_crops(ref)
    other["frames"][0]["probs_on_ref_boxes"]["fast"][0][0] += 0.08
    ref["frames"][0]["jitter"]["fast"] = [0.01]  # a confident crop: 0.08 is a fault
    rep = compare(ref, other)
    assert not rep["ok"]
    assert "frame 0 face 0: fast probabilities on the same crop differ by 0.0800" in (
        "\n".join(rep["problems"])
    )
    ref["frames"][0]["jitter"]["fast"] = [0.14]  # noise alone moves this one by 0.14
    assert compare(ref, other)["ok"]
    # A record without jitter (older files) is held to --prob-tol alone.
    for f in ref["frames"]:
        del f["jitter"]
    assert not compare(ref, other)["ok"]


def test_a_small_difference_on_every_crop_fails_on_the_median(recorded: dict) -> None:
    other = _same_crops(recorded)
    for f in other["frames"]:
        f["probs_on_ref_boxes"]["fer2013"][0][0] += 0.02  # under the per-crop 0.05
    rep = compare(recorded, other)
    assert rep["prob_max_same_crop"]["fer2013"] == pytest.approx(0.02, abs=1e-6)
    assert rep["prob_median_same_crop"]["fer2013"] == pytest.approx(0.02, abs=1e-6)
    assert not rep["ok"]
    assert any(
        "fer2013: the median difference on the same crop is 0.0200" in p for p in rep["problems"]
    )
    other["frames"][0]["probs_on_ref_boxes"]["fer2013"][0][0] -= 0.02
    other["frames"][1]["probs_on_ref_boxes"]["fer2013"][0][0] -= 0.02
    other["frames"][2]["probs_on_ref_boxes"]["fer2013"][0][0] -= 0.02  # 3 of 4 exact now
    assert compare(recorded, other)["ok"]
