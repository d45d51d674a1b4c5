"""Data loading for the trainer: FER-2013/FER+ .npz, Kaggle ``fer2013.csv``, image folders.

Every loader returns a :class:`FaceDataset`: uint8 grayscale 48x48 images, integer labels
in FER-2013 order (the order of :data:`edge_daemon.labels.FER_LABELS`), and optionally
soft targets (FER+ vote distributions mapped to the same order).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_daemon.labels import FER_LABELS

# FER+ vote columns -> FER-2013 class index; contempt/unknown/NF have no FER-2013 class.
_FERPLUS_TO_FER = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
}
IMAGE_SIZE = 48
_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}


class DataError(Exception):
    """A data set that cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class FaceDataset:
    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], FER order
    soft: np.ndarray | None = None  # float32 [N, 7] FER+ vote distribution, FER order
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(f"{self.name}: images must be [N, 48, 48], got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.images)} images, {len(self.labels)} labels")
        if self.soft is not None and self.soft.shape != (len(self.labels), len(FER_LABELS)):
            raise DataError(f"{self.name}: soft targets shape {self.soft.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(FER_LABELS)):
            raise DataError(f"{self.name}: labels outside 0..{len(FER_LABELS) - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> FaceDataset:
        soft = None if self.soft is None else self.soft[idx]
        return FaceDataset(self.images[idx], self.labels[idx], soft, self.name)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(FER_LABELS))


def default_data_dir() -> Path:
    """$EDGE_DATA_DIR, else ../shared/data relative to the repository."""
    env = os.environ.get("EDGE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise DataError(f"{path}: no such file (set EDGE_DATA_DIR or data.path)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc


def _require_keys(z: np.lib.npyio.NpzFile, path: Path, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in z.files]
    if missing:
        raise DataError(f"{path}: missing arrays {missing} (has {sorted(z.files)})")


def load_fer2013_npz(path: Path, split: str) -> FaceDataset:
    """FER-2013 Training (``train``) or PublicTest (``val``) from the shared .npz."""
    with _open_npz(path) as z:
        _require_keys(z, path, ("images", "labels", "split", "class_names"))
        names = [str(n) for n in z["class_names"]]
        if names != list(FER_LABELS):
            raise DataError(f"{path}: class order {names} is not FER order {list(FER_LABELS)}")
        mask = z["split"] == split
        if not mask.any():
            raise DataError(f"{path}: no rows with split {split!r}")
        return FaceDataset(z["images"][mask], z["labels"][mask].astype(np.int64), None, path.name)


def load_ferplus_npz(path: Path, split: str) -> FaceDataset:
    """FER+ images with soft targets from the crowd votes; hard label = majority vote.

    Images where no FER-2013 class gets a vote (only contempt/unknown) are skipped.
    """
    with _open_npz(path) as z:
        _require_keys(z, path, ("images", "votes", "vote_names", "split"))
        vote_names = [str(n) for n in z["vote_names"]]
        mask = z["split"] == split
        if not mask.any():
            raise DataError(f"{path}: no rows with split {split!r}")
        votes = z["votes"][mask].astype(np.float32)
        images = z["images"][mask]
    soft = np.zeros((len(votes), len(FER_LABELS)), np.float32)
    for col, vname in enumerate(vote_names):
        if vname in _FERPLUS_TO_FER:
            soft[:, FER_LABELS.index(_FERPLUS_TO_FER[vname])] = votes[:, col]
    total = soft.sum(1)
    keep = total > 0
    soft = soft[keep] / total[keep, None]
    return FaceDataset(images[keep], soft.argmax(1).astype(np.int64), soft, path.name)


def load_fer_csv(path: Path, usage: str | tuple[str, ...]) -> FaceDataset:
    """Kaggle ``fer2013.csv`` layout: columns emotion, pixels (2304 ints), Usage."""
    usages = (usage,) if isinstance(usage, str) else usage
    images: list[np.ndarray] = []
    labels: list[int] = []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing columns {sorted(missing)}")
            for lineno, row in enumerate(reader, start=2):
                if row["Usage"] not in usages:
                    continue
                px = np.array(row["pixels"].split(), dtype=np.int64)
                if px.size != IMAGE_SIZE * IMAGE_SIZE or px.min() < 0 or px.max() > 255:
                    raise DataError(f"{path}:{lineno}: pixels must be 2304 values in 0..255")
                images.append(px.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
                labels.append(int(row["emotion"]))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    except ValueError as exc:
        raise DataError(f"{path}: malformed row ({exc})") from exc
    if not images:
        raise DataError(f"{path}: no rows with Usage in {usages}")
    return FaceDataset(np.stack(images), np.array(labels, np.int64), None, path.name)


def load_image_folder(root: Path) -> FaceDataset:
    """``root/<class>/*.png``: class folder names must be FER class names."""
    import cv2  # local: only this loader needs it

    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    unknown = [d.name for d in root.iterdir() if d.is_dir() and d.name not in FER_LABELS]
    if unknown:
        raise DataError(f"{root}: unknown class folders {unknown} (allowed: {list(FER_LABELS)})")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, cls in enumerate(FER_LABELS):
        for p in sorted((root / cls).glob("*")) if (root / cls).is_dir() else []:
            if p.suffix.lower() not in _IMAGE_EXTS:
                continue
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise DataError(f"{p}: not a readable image")
            if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
                img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
            images.append(img)
            labels.append(label)
    if not images:
        raise DataError(f"{root}: no images found under <class>/ folders")
    return FaceDataset(np.stack(images), np.array(labels, np.int64), None, root.name)


def image_hashes(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in images]


def remove_duplicates(
    train: FaceDataset, others: tuple[FaceDataset, ...] = ()
) -> tuple[FaceDataset, int, int]:
    """Drop pixel-identical duplicates inside ``train`` and any train image that also
    appears in ``others`` (e.g. the validation split: that would be leakage).

    Returns (dataset, duplicates dropped, leaked images dropped).
    """
    forbidden = {h for ds in others for h in image_hashes(ds.images)}
    seen: set[bytes] = set()
    keep: list[int] = []
    dup = leak = 0
    for i, h in enumerate(image_hashes(train.images)):
        if h in forbidden:
            leak += 1
        elif h in seen:
            dup += 1
        else:
            seen.add(h)
            keep.append(i)
    return train.subset(np.array(keep, np.int64)), dup, leak


# Largest mean absolute pixel difference (0..255) at which a FER+ image counts as the
# same photo as a FER-2013 one. The shared FER-2013 copies are JPEG re-encodings of the
# lossless FER+ pixels: same photos differ by about 1-1.5 levels on average, different
# photos by tens of levels.
MAX_MATCH_DIFF = 4.0
_MATCH_CHUNK = 2048


def _thumbs(images: np.ndarray) -> np.ndarray:
    """12x12 block means: cheap nearest-neighbour keys that JPEG noise barely moves."""
    n = len(images)
    return images.reshape(n, 12, 4, 12, 4).mean((2, 4), dtype=np.float32).reshape(n, 144)


def match_images(
    images: np.ndarray, candidates: np.ndarray, max_diff: float = MAX_MATCH_DIFF
) -> np.ndarray:
    """For every image, the index of the same photo among ``candidates`` or -1.

    Nearest neighbour on block means, confirmed by the full-resolution mean absolute
    difference (``max_diff``), so re-encoded copies match and different photos do not.
    """
    out = np.full(len(images), -1, np.int64)
    if not len(images) or not len(candidates):
        return out
    a, b = _thumbs(images), _thumbs(candidates)
    b_sq = (b * b).sum(1)
    for lo in range(0, len(a), _MATCH_CHUNK):
        q = a[lo : lo + _MATCH_CHUNK]
        nearest = (b_sq[None, :] - 2.0 * q @ b.T).argmin(1)
        diff = np.abs(
            images[lo : lo + len(q)].astype(np.int16) - candidates[nearest].astype(np.int16)
        ).mean((1, 2))
        out[lo : lo + len(q)] = np.where(diff <= max_diff, nearest, -1)
    return out


def blend_ferplus(
    train: FaceDataset, ferplus: FaceDataset, weight: float
) -> tuple[FaceDataset, int]:
    """Soft targets ``(1 - weight) * one-hot(label) + weight * FER+ votes`` for ``train``.

    The hard labels stay (accuracy is still scored against them); the crowd votes only
    reshape the target where annotators saw something else too, a data-driven label
    smoothing. Images without a FER+ counterpart (FER+ drops non-faces) keep their
    one-hot target. Returns (dataset, images matched).
    """
    if not 0.0 <= weight <= 1.0:
        raise DataError(f"FER+ blend weight must be in 0..1, got {weight}")
    if ferplus.soft is None:
        raise DataError(f"{ferplus.name}: no vote distributions to blend")
    onehot = np.eye(len(FER_LABELS), dtype=np.float32)[train.labels]
    idx = match_images(train.images, ferplus.images)
    found = idx >= 0
    soft = onehot.copy()
    soft[found] = (1.0 - weight) * onehot[found] + weight * ferplus.soft[idx[found]]
    return FaceDataset(train.images, train.labels, soft, train.name), int(found.sum())


def load_crops_npz(path: Path) -> FaceDataset:
    """Training crops with hard labels: ``images`` uint8 [N, 48, 48], ``labels`` FER order
    (what ``trainer.wild_crops`` writes; its ``meta`` says which photos they are)."""
    with _open_npz(path) as z:
        _require_keys(z, path, ("images", "labels"))
        images, labels = z["images"], z["labels"]
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8, got {images.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, got {labels.dtype}")
    return FaceDataset(images, labels.astype(np.int64), None, path.name)


def crops_people(path: Path) -> str:
    """Which in-the-wild people a ``trainer.wild_crops`` file holds (``train``,
    ``held_out`` or ``all``);
    empty for crops from elsewhere. A model trained on them is scored on the others only."""
    with _open_npz(path) as z:
        if "meta" not in z.files:
            return ""
        try:
            meta = json.loads(str(z["meta"]))
        except ValueError as exc:
            raise DataError(f"{path}: meta is not JSON ({exc})") from exc
    return str(meta.get("people", "")) if isinstance(meta, dict) else ""


#: The most a rare class of an extra file is repeated beyond ``extra_repeat``: one fear
#: face among 600 neutral ones must not become a hundred copies of one photo.
EXTRA_BALANCE_CAP = 8.0


def balanced_repeats(labels: np.ndarray, repeat: int, power: float) -> np.ndarray:
    """Per-item repeat counts: ``repeat x (n_most / n_class) ** power``, capped, rounded."""
    counts = np.bincount(labels, minlength=len(FER_LABELS)).astype(np.float64)
    ratio = np.divide(counts.max(), counts, out=np.ones_like(counts), where=counts > 0)
    per_class = repeat * np.minimum(ratio**power, EXTRA_BALANCE_CAP)
    return np.maximum(1, np.round(per_class[labels])).astype(np.int64)


def concat(a: FaceDataset, b: FaceDataset, repeat: int | np.ndarray = 1) -> FaceDataset:
    """``a`` followed by ``repeat`` copies of ``b`` (or ``repeat[i]`` copies of item i).
    Where ``a`` has soft targets, ``b``'s rows get one-hot ones (its labels are hard)."""
    reps = np.broadcast_to(np.asarray(repeat, np.int64), (len(b),))
    if len(reps) and reps.min() < 1:
        raise DataError(f"repeat must be >= 1, got {int(reps.min())}")
    idx = np.repeat(np.arange(len(b)), reps)
    images = np.concatenate([a.images, b.images[idx]])
    labels = np.concatenate([a.labels, b.labels[idx]])
    soft = None
    if a.soft is not None:
        one_hot = np.eye(len(FER_LABELS), dtype=np.float32)
        b_soft = b.soft if b.soft is not None else one_hot[b.labels]
        soft = np.concatenate([a.soft, b_soft[idx]])
    return FaceDataset(images, labels, soft, f"{a.name}+{b.name}")


def load_split(fmt: str, path: Path, split: str) -> FaceDataset:
    """Dispatch on the data format named in the training config."""
    if fmt == "fer2013_npz":
        return load_fer2013_npz(path, split)
    if fmt == "ferplus_npz":
        return load_ferplus_npz(path, split)
    if fmt == "csv":
        usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}.get(split, split)
        return load_fer_csv(path, usage)
    if fmt == "folder":
        return load_image_folder(path / split)
    raise DataError(f"unknown data format {fmt!r} (allowed: fer2013_npz, ferplus_npz, csv, folder)")
