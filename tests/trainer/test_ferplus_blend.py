"""FER+ votes blended into FER-2013 targets: matching re-encoded copies of the same photos
(real JPEG round trips of generated images) and the blended targets, alone and through
``trainer.train.load_data``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_daemon.labels import FER_LABELS
from tests.trainer.test_data_loaders import VOTE_NAMES
from trainer.config import TrainConfigError, load_train_config
from trainer.data import DataError, FaceDataset, blend_ferplus, match_images
from trainer.train import load_data

IDX = {name: i for i, name in enumerate(FER_LABELS)}


def _photos(n: int, seed: int) -> np.ndarray:
    """Smooth random images (like faces, unlike noise, they survive JPEG nearly intact)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 6, 6), dtype=np.uint8)
    return np.stack([cv2.resize(s, (48, 48), interpolation=cv2.INTER_CUBIC) for s in small])


def _jpeg(images: np.ndarray, quality: int = 90) -> np.ndarray:
    out = []
    for im in images:
        ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        out.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return np.stack(out)


def _soft(rows: list[dict[str, float]]) -> np.ndarray:
    soft = np.zeros((len(rows), len(FER_LABELS)), np.float32)
    for i, row in enumerate(rows):
        for name, p in row.items():
            soft[i, IDX[name]] = p
    return soft


def test_match_finds_jpeg_copies_in_any_order() -> None:
    lossless = _photos(300, 0)
    perm = np.random.default_rng(1).permutation(300)
    copies = _jpeg(lossless[perm])
    assert np.abs(copies.astype(int) - lossless[perm]).mean() > 0  # really re-encoded
    idx = match_images(copies, lossless)
    np.testing.assert_array_equal(idx, perm)


def test_match_rejects_photos_without_counterpart() -> None:
    lossless = _photos(50, 0)
    strangers = _jpeg(_photos(20, 99))
    assert (match_images(strangers, lossless) == -1).all()
    assert match_images(strangers[:0], lossless).shape == (0,)
    assert (match_images(strangers, lossless[:0]) == -1).all()


def test_blend_targets_keep_labels_and_unmatched_one_hot() -> None:
    lossless = _photos(3, 0)
    fer_images = np.concatenate([_jpeg(lossless[[2, 0]]), _photos(1, 7)])  # last: no FER+
    train = FaceDataset(fer_images, np.array([IDX["happy"], IDX["sad"], IDX["angry"]]))
    votes = _soft([{"neutral": 1.0}, {"sad": 0.5, "fear": 0.5}, {"happy": 0.6, "surprise": 0.4}])
    ferplus = FaceDataset(lossless, votes.argmax(1), votes)

    out, matched = blend_ferplus(train, ferplus, 0.3)
    assert matched == 2
    np.testing.assert_array_equal(out.labels, train.labels)
    assert out.soft is not None
    np.testing.assert_allclose(out.soft.sum(1), 1.0, atol=1e-6)
    # image 0 is FER+ photo 2: 0.7 happy + 0.3 * (0.6 happy, 0.4 surprise)
    assert out.soft[0, IDX["happy"]] == pytest.approx(0.7 + 0.18)
    assert out.soft[0, IDX["surprise"]] == pytest.approx(0.12)
    # image 1 is FER+ photo 0, whose voters said neutral although FER-2013 says sad
    assert out.soft[1, IDX["sad"]] == pytest.approx(0.7)
    assert out.soft[1, IDX["neutral"]] == pytest.approx(0.3)
    assert out.soft[2, IDX["angry"]] == 1.0  # unmatched: one-hot


def test_blend_rejects_bad_weight_and_hard_only_sets() -> None:
    ds = FaceDataset(_photos(2, 0), np.array([0, 1]))
    with pytest.raises(DataError, match=r"0\.\.1"):
        blend_ferplus(ds, FaceDataset(ds.images, ds.labels, _soft([{"angry": 1}] * 2)), 1.5)
    with pytest.raises(DataError, match="no vote distributions"):
        blend_ferplus(ds, ds, 0.3)


def _write_pair(tmp: Path) -> tuple[Path, Path, np.ndarray]:
    """A FER-2013-style npz of JPEG copies and a FER+-style npz of the lossless photos."""
    lossless = _photos(12, 3)
    labels = np.arange(12, dtype=np.int64) % 7
    split = np.array(["train"] * 9 + ["val"] * 3)
    fer = tmp / "fer.npz"
    np.savez(
        fer,
        images=_jpeg(lossless),
        labels=labels,
        split=split,
        class_names=np.array(FER_LABELS),
    )
    votes = np.zeros((12, len(VOTE_NAMES)), np.uint8)
    votes[:, VOTE_NAMES.index("neutral")] = 10  # every voter says neutral
    fp = tmp / "ferplus.npz"
    np.savez(
        fp,
        images=lossless[::-1],  # another order, as in the real files
        votes=votes,
        vote_names=np.array(VOTE_NAMES),
        split=split[::-1],
    )
    return fer, fp, labels


def test_load_data_blends_train_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fer, fp, labels = _write_pair(tmp_path)
    cfg = load_train_config(
        None,
        [f"data.path={fer}", f"data.ferplus_path={fp}", "data.ferplus_blend=0.25"],
    )
    train, val = load_data(cfg)
    assert "votes for 9 of 9 train images" in capsys.readouterr().out
    assert train.soft is not None and val.soft is None
    np.testing.assert_array_equal(train.labels, labels[:9])
    expect = np.eye(7, dtype=np.float32)[labels[:9]] * 0.75
    expect[:, IDX["neutral"]] += 0.25
    np.testing.assert_allclose(train.soft, expect, atol=1e-6)


def test_load_data_refuses_blend_on_ferplus_format(tmp_path: Path) -> None:
    _, fp, _ = _write_pair(tmp_path)
    cfg = load_train_config(
        None, ["data.format=ferplus_npz", f"data.path={fp}", "data.ferplus_blend=0.3"]
    )
    with pytest.raises(TrainConfigError, match="set it to 0"):
        load_data(cfg, log=False)
