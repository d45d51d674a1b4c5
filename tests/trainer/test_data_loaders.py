"""Trainer data loaders on small generated files: FER-2013/FER+ .npz, Kaggle CSV, folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edge_daemon.labels import FER_LABELS
from trainer.data import (
    DataError,
    FaceDataset,
    balanced_repeats,
    concat,
    crops_people,
    load_fer2013_npz,
    load_fer_csv,
    load_ferplus_npz,
    load_image_folder,
    load_split,
    remove_duplicates,
)

VOTE_NAMES = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def write_fer2013_npz(path: Path, n_train: int = 10, n_val: int = 4, **override) -> dict:
    n = n_train + n_val
    arrays = {
        "images": _images(n),
        "labels": np.arange(n, dtype=np.int64) % 7,
        "split": np.array(["train"] * n_train + ["val"] * n_val),
        "class_names": np.array(FER_LABELS),
        "filenames": np.array([f"{i:05d}.png" for i in range(n)]),
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def _votes(**kw: int) -> list[int]:
    return [kw.get(name, 0) for name in VOTE_NAMES]


def write_ferplus_npz(path: Path) -> dict:
    votes = np.array(
        [
            _votes(neutral=10),
            _votes(happiness=6, surprise=4),
            _votes(contempt=7, unknown=3),  # no FER-2013 class: dropped
            _votes(anger=3, unknown=7),  # normalised over FER classes only -> angry 1.0
            _votes(sadness=5, fear=5),  # tie: first in FER order (fear=2 < sad=4)
            _votes(disgust=8, NF=2),
        ],
        np.uint8,
    )
    n = len(votes)
    arrays = {
        "images": _images(n, 1),
        "votes": votes,
        "vote_names": np.array(VOTE_NAMES),
        "split": np.array(["train", "train", "train", "train", "val", "val"]),
        "fer_label": np.full(n, -1, np.int64),
        "csv_row": np.arange(n, dtype=np.int64),
    }
    np.savez(path, **arrays)
    return arrays


def write_csv(path: Path, rows: list[tuple], header=("emotion", "pixels", "Usage")) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _px(img: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in img.ravel())


# ---------------------------------------------------------------- FER-2013 .npz


def test_fer2013_npz_splits(tmp_path: Path) -> None:
    arrays = write_fer2013_npz(tmp_path / "fer.npz", n_train=10, n_val=4)
    train = load_fer2013_npz(tmp_path / "fer.npz", "train")
    val = load_split("fer2013_npz", tmp_path / "fer.npz", "val")
    assert len(train) == 10 and len(val) == 4
    assert train.images.dtype == np.uint8 and train.images.shape == (10, 48, 48)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.images, arrays["images"][:10])
    np.testing.assert_array_equal(val.labels, arrays["labels"][10:])
    assert train.soft is None
    assert train.class_counts().sum() == 10


def test_fer2013_npz_wrong_class_order(tmp_path: Path) -> None:
    write_fer2013_npz(tmp_path / "fer.npz", class_names=np.array(FER_LABELS[::-1]))
    with pytest.raises(DataError, match="not FER order"):
        load_fer2013_npz(tmp_path / "fer.npz", "train")


def test_fer2013_npz_unknown_split(tmp_path: Path) -> None:
    write_fer2013_npz(tmp_path / "fer.npz")
    with pytest.raises(DataError, match="no rows with split 'test'"):
        load_fer2013_npz(tmp_path / "fer.npz", "test")


def test_fer2013_npz_missing_key(tmp_path: Path) -> None:
    write_fer2013_npz(tmp_path / "fer.npz", split=None)
    with pytest.raises(DataError, match="split"):
        load_fer2013_npz(tmp_path / "fer.npz", "train")


def test_fer2013_npz_bad_image_shape(tmp_path: Path) -> None:
    write_fer2013_npz(tmp_path / "fer.npz", n_train=3, n_val=1, images=_images(4)[:, :40, :40])
    with pytest.raises(DataError, match=r"\[N, 48, 48\]"):
        load_fer2013_npz(tmp_path / "fer.npz", "train")


def test_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_split("fer2013_npz", tmp_path / "nope.npz", "train")
    with pytest.raises(DataError, match="no such file"):
        load_split("ferplus_npz", tmp_path / "nope.npz", "train")


def test_npz_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_fer2013_npz(tmp_path / "junk.npz", "train")


# ---------------------------------------------------------------- FER+ .npz


def test_ferplus_npz_soft_targets(tmp_path: Path) -> None:
    arrays = write_ferplus_npz(tmp_path / "ferplus.npz")
    train = load_ferplus_npz(tmp_path / "ferplus.npz", "train")
    idx = {name: i for i, name in enumerate(FER_LABELS)}
    # row 2 (contempt/unknown only) is dropped
    assert len(train) == 3
    np.testing.assert_array_equal(train.images, arrays["images"][[0, 1, 3]])
    assert train.soft is not None and train.soft.dtype == np.float32
    np.testing.assert_allclose(train.soft.sum(1), 1.0, atol=1e-6)
    assert train.labels.tolist() == [idx["neutral"], idx["happy"], idx["angry"]]
    assert train.soft[1, idx["happy"]] == pytest.approx(0.6)
    assert train.soft[1, idx["surprise"]] == pytest.approx(0.4)
    assert train.soft[2, idx["angry"]] == pytest.approx(1.0)

    val = load_split("ferplus_npz", tmp_path / "ferplus.npz", "val")
    assert val.labels.tolist() == [idx["fear"], idx["disgust"]]
    assert val.soft[0, idx["sad"]] == pytest.approx(0.5)


def test_ferplus_npz_missing_key(tmp_path: Path) -> None:
    arrays = write_ferplus_npz(tmp_path / "ferplus.npz")
    del arrays["votes"]
    np.savez(tmp_path / "ferplus.npz", **arrays)
    with pytest.raises(DataError, match="votes"):
        load_ferplus_npz(tmp_path / "ferplus.npz", "train")


def test_ferplus_npz_unknown_split(tmp_path: Path) -> None:
    write_ferplus_npz(tmp_path / "ferplus.npz")
    with pytest.raises(DataError, match="no rows with split 'test'"):
        load_ferplus_npz(tmp_path / "ferplus.npz", "test")


# ---------------------------------------------------------------- Kaggle CSV


def test_csv_usages(tmp_path: Path) -> None:
    imgs = _images(5, 2)
    rows = [
        (3, _px(imgs[0]), "Training"),
        (6, _px(imgs[1]), "Training"),
        (0, _px(imgs[2]), "PublicTest"),
        (5, _px(imgs[3]), "PrivateTest"),
        (1, _px(imgs[4]), "Training"),
    ]
    write_csv(tmp_path / "fer2013.csv", rows)
    train = load_split("csv", tmp_path / "fer2013.csv", "train")
    assert train.labels.tolist() == [3, 6, 1]
    np.testing.assert_array_equal(train.images, imgs[[0, 1, 4]])
    val = load_split("csv", tmp_path / "fer2013.csv", "val")
    assert val.labels.tolist() == [0]
    test = load_split("csv", tmp_path / "fer2013.csv", "test")
    np.testing.assert_array_equal(test.images, imgs[[3]])
    both = load_fer_csv(tmp_path / "fer2013.csv", ("Training", "PublicTest"))
    assert len(both) == 4


def test_csv_bad_pixel_count(tmp_path: Path) -> None:
    imgs = _images(2)
    rows = [(3, _px(imgs[0]), "Training"), (3, _px(imgs[1])[:-4], "Training")]
    write_csv(tmp_path / "fer2013.csv", rows)
    with pytest.raises(DataError, match=r"fer2013.csv:3: pixels must be 2304 values"):
        load_fer_csv(tmp_path / "fer2013.csv", "Training")


def test_csv_pixel_out_of_range(tmp_path: Path) -> None:
    bad = " ".join(["300"] * 2304)
    write_csv(tmp_path / "fer2013.csv", [(3, bad, "Training")])
    with pytest.raises(DataError, match=r"0\.\.255"):
        load_fer_csv(tmp_path / "fer2013.csv", "Training")


def test_csv_non_numeric(tmp_path: Path) -> None:
    write_csv(tmp_path / "fer2013.csv", [("happy", _px(_images(1)[0]), "Training")])
    with pytest.raises(DataError, match="malformed row"):
        load_fer_csv(tmp_path / "fer2013.csv", "Training")


def test_csv_label_out_of_range(tmp_path: Path) -> None:
    write_csv(tmp_path / "fer2013.csv", [(7, _px(_images(1)[0]), "Training")])
    with pytest.raises(DataError, match=r"labels outside 0\.\.6"):
        load_fer_csv(tmp_path / "fer2013.csv", "Training")


def test_csv_missing_columns(tmp_path: Path) -> None:
    write_csv(tmp_path / "fer2013.csv", [(3, _px(_images(1)[0]))], header=("emotion", "pixels"))
    with pytest.raises(DataError, match=r"missing columns \['Usage'\]"):
        load_fer_csv(tmp_path / "fer2013.csv", "Training")


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_split("csv", tmp_path / "fer2013.csv", "train")


def test_csv_no_rows_for_usage(tmp_path: Path) -> None:
    write_csv(tmp_path / "fer2013.csv", [(3, _px(_images(1)[0]), "Training")])
    with pytest.raises(DataError, match="no rows with Usage"):
        load_split("csv", tmp_path / "fer2013.csv", "val")


# ---------------------------------------------------------------- image folders


def _write_folder(root: Path, per_class: dict[str, int]) -> dict[str, list[np.ndarray]]:
    import cv2

    written: dict[str, list[np.ndarray]] = {}
    rng = np.random.default_rng(3)
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            assert cv2.imwrite(str(root / cls / f"{i:03d}.png"), img)
            written.setdefault(cls, []).append(img)
    return written


def test_folder_loader(tmp_path: Path) -> None:
    import cv2

    written = _write_folder(tmp_path / "train", {"happy": 2, "angry": 1, "neutral": 1})
    (tmp_path / "train" / "sad").mkdir()
    assert cv2.imwrite(str(tmp_path / "train" / "sad" / "big.png"), np.zeros((64, 64), np.uint8))
    (tmp_path / "train" / "happy" / "notes.txt").write_text("not an image")
    ds = load_split("folder", tmp_path, "train")
    idx = {name: i for i, name in enumerate(FER_LABELS)}
    # classes come out in FER order, files sorted inside each class
    expected = [idx["angry"], idx["happy"], idx["happy"], idx["sad"], idx["neutral"]]
    assert ds.labels.tolist() == expected  # .txt ignored
    assert ds.images.shape == (5, 48, 48) and ds.images.dtype == np.uint8  # 64x64 resized
    np.testing.assert_array_equal(ds.images[0], written["angry"][0])  # PNG is lossless
    np.testing.assert_array_equal(ds.images[1], written["happy"][0])
    np.testing.assert_array_equal(ds.images[2], written["happy"][1])
    np.testing.assert_array_equal(ds.images[3], 0)


def test_folder_unknown_class(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train", {"happy": 1, "contempt": 1})
    with pytest.raises(DataError, match=r"unknown class folders \['contempt'\]"):
        load_image_folder(tmp_path / "train")


def test_folder_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        load_split("folder", tmp_path, "val")


def test_folder_unreadable_image(tmp_path: Path) -> None:
    (tmp_path / "train" / "fear").mkdir(parents=True)
    (tmp_path / "train" / "fear" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        load_image_folder(tmp_path / "train")


def test_folder_empty(tmp_path: Path) -> None:
    (tmp_path / "train" / "fear").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_image_folder(tmp_path / "train")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown data format 'parquet'"):
        load_split("parquet", tmp_path, "train")


# ---------------------------------------------------------------- duplicates


def test_remove_duplicates() -> None:
    a, b, c, d, e = _images(5, 4)
    train = FaceDataset(
        np.stack([a, b, a, c, d, b]),
        np.array([0, 1, 2, 3, 4, 5], np.int64),
        np.eye(7, dtype=np.float32)[[0, 1, 2, 3, 4, 5]],
        "train",
    )
    val = FaceDataset(np.stack([c, e]), np.array([3, 4], np.int64), None, "val")
    kept, dup, leak = remove_duplicates(train, (val,))
    assert (dup, leak) == (2, 1)
    # first occurrence kept, in original order; c (also in val) dropped
    assert kept.labels.tolist() == [0, 1, 4]
    np.testing.assert_array_equal(kept.images, np.stack([a, b, d]))
    assert kept.soft is not None
    np.testing.assert_array_equal(kept.soft.argmax(1), [0, 1, 4])


def test_remove_duplicates_without_others() -> None:
    a, b = _images(2, 5)
    train = FaceDataset(np.stack([a, a, b]), np.zeros(3, np.int64), None, "train")
    kept, dup, leak = remove_duplicates(train)
    assert (len(kept), dup, leak) == (2, 1, 0)


def test_concat_gives_hard_labelled_crops_one_hot_targets_beside_votes() -> None:
    soft = np.full((2, 7), 1 / 7, np.float32)
    a = FaceDataset(np.zeros((2, 48, 48), np.uint8), np.array([0, 1]), soft, "a")
    b = FaceDataset(np.ones((1, 48, 48), np.uint8), np.array([3]), None, "b")
    c = concat(a, b, repeat=3)
    assert c.labels.tolist() == [0, 1, 3, 3, 3]
    assert (c.images[2:] == 1).all() and c.soft is not None
    assert np.array_equal(c.soft[:2], soft)
    assert (c.soft[2:] == np.eye(7, dtype=np.float32)[3]).all()
    hard = concat(FaceDataset(a.images, a.labels, None, "a"), b)
    assert hard.soft is None and len(hard) == 3
    with pytest.raises(DataError, match="repeat must be >= 1"):
        concat(a, b, repeat=0)


def test_crops_people_reads_the_wild_crops_meta(tmp_path: Path) -> None:
    img, lab = np.zeros((1, 48, 48), np.uint8), np.zeros(1, np.int64)
    np.savez(tmp_path / "a.npz", images=img, labels=lab, meta=np.array('{"people": "train"}'))
    np.savez(tmp_path / "b.npz", images=img, labels=lab)
    np.savez(tmp_path / "c.npz", images=img, labels=lab, meta=np.array("{oops"))
    assert crops_people(tmp_path / "a.npz") == "train"
    assert crops_people(tmp_path / "b.npz") == ""
    with pytest.raises(DataError, match="meta is not JSON"):
        crops_people(tmp_path / "c.npz")


def test_balanced_repeats_lift_rare_classes_up_to_the_cap() -> None:
    labels = np.array([6] * 400 + [4] * 100 + [2] * 1)
    assert balanced_repeats(labels, 2, 0.0).tolist() == [2] * 501  # off: every item twice
    r = balanced_repeats(labels, 2, 0.5)
    assert (r[:400] == 2).all()  # the commonest class: the base repeat
    assert (r[400:500] == 4).all()  # 4x rarer: sqrt(4) = 2x more
    assert r[500] == 16  # 400x rarer: sqrt = 20x, capped at 8x the base repeat
    a = FaceDataset(np.zeros((1, 48, 48), np.uint8), np.array([0]), None, "a")
    b = FaceDataset(np.zeros((3, 48, 48), np.uint8), np.array([1, 2, 3]), None, "b")
    assert concat(a, b, np.array([1, 3, 2])).labels.tolist() == [0, 1, 2, 2, 2, 3, 3]
