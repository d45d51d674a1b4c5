"""End-to-end accuracy: labelled photos through the daemon's own detector, crop and model.

    python -m trainer.evaluate_e2e [MODEL.onnx | fast | ferplus | accurate ...]
        [--data DIR] [--limit N] [--conditions all|none|NAME,...] [--cond-limit N]
        [--people auto|all|train|held_out] [--seen] [--crop-margin M] [--tta-hflip]
        [--tta-hflip-below P] [--out DIR] [--json]

What a user sees is the emotion the daemon names for a face in a camera frame, not a
model's score on pre-cut 48x48 crops. This command measures that:

* **In the wild** (``$EDGE_DATA_DIR/inthewild``): each labelled photo is a tight head shot,
  so it is centred on a grey canvas 2.5x its size (the face then fills a realistic share
  of the frame), run through :class:`~edge_daemon.detect.blazeface.FaceDetector` with the
  daemon's default detector settings, cut by :func:`~edge_daemon.classify.crop.crop_faces`
  with the model's own contract, and classified by
  :class:`~edge_daemon.classify.model.EmotionModel` as the daemon loads it. The labelled
  face is the detection whose centre is nearest the photo's centre (inside the photo);
  a photo without one is a *missed* face. Accuracy is reported over the faces found and
  over all photos (a miss counts as wrong), with per-class recall and precision and the
  macro F1 over the classes present in the labels.
* **Camera conditions** (generated from FER+ val faces, majority-vote labels): each face
  is enlarged, placed in a frame and degraded (low light, low contrast, sensor noise,
  motion blur, JPEG artefacts, small faces, grey IR-like, head roll, a band over the
  eyes), then detected and classified the same way. Accuracy per condition and per model,
  with the drop against the clean frames.

Several models run side by side on the same detections (the detector does not depend on
the model). The shared videos carry no expression labels, so they are not scored here.
Writes ``<out>/<model>_inthewild_confusion.png`` and, with ``--json``, prints the whole
report as JSON on stdout (the tables go to stderr). Errors exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_daemon.classify.crop import crop_faces
from edge_daemon.classify.model import EmotionModel, ModelLoadError
from edge_daemon.config.schema import BUNDLED_MODELS, DetectorConfig, ModelConfig
from edge_daemon.detect.blazeface import DEFAULT_MODEL as DEFAULT_DETECTOR_MODEL
from edge_daemon.detect.blazeface import (
    PARTS,
    DetectorError,
    DetectorParams,
    FaceDetector,
)
from edge_daemon.labels import FER_LABELS
from trainer.data import DataError, default_data_dir, load_ferplus_npz
from trainer.evaluate import EvaluateError, label_columns, report_cli
from trainer.metrics import confusion, expected_calibration_error, plot_confusion

#: The in-the-wild photos are tight head shots: the canvas side is this many times the
#: photo's, so the face covers about a sixth of the frame's area, as on a close camera.
CANVAS_SCALE = 2.5
CANVAS_GREY = 128
#: FER+ val faces are 48x48: enlarged to this side before they are placed in a frame,
#: about the size of a face 1-2 m from a 720p camera.
FACE_SIDE = 144
#: FER crops are cut tighter than the in-the-wild photos (chin and forehead often
#: outside): on a 3.5x canvas the detector finds about 82% of them, on 2.5x about 72%.
FER_CANVAS_SCALE = 3.5
DEFAULT_COND_LIMIT = 1000  # FER+ val faces per condition (0 = all 3,579)


class E2EError(Exception):
    """The benchmark cannot run; the message says why."""


# ------------------------------------------------------------------------ scenes


def place_in_frame(
    photo_bgr: np.ndarray, scale: float = CANVAS_SCALE, fill: int = CANVAS_GREY
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo centred on a ``scale`` times larger canvas; returns (frame, photo xyxy)."""
    h, w = photo_bgr.shape[:2]
    ch, cw = round(h * scale), round(w * scale)
    frame = np.full((ch, cw, 3), fill, np.uint8)
    y0, x0 = (ch - h) // 2, (cw - w) // 2
    frame[y0 : y0 + h, x0 : x0 + w] = photo_bgr
    return frame, (x0, y0, x0 + w, y0 + h)


def pick_face(xyxy: np.ndarray, region: tuple[int, int, int, int]) -> int:
    """Index of the detection whose centre is nearest the region's centre, inside it; -1."""
    if not len(xyxy):
        return -1
    x0, y0, x1, y1 = region
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
    if not inside.any():
        return -1
    d = np.hypot(cx - (x0 + x1) / 2, cy - (y0 + y1) / 2)
    d[~inside] = np.inf
    return int(d.argmin())


# -------------------------------------------------------------- camera conditions

Condition = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Scene = tuple[np.ndarray, tuple[int, int, int, int]]  # BGR frame, labelled face region


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = (255.0 * (np.arange(256) / 255.0) ** g).round().astype(np.uint8)
    return cv2.LUT(img, lut)


def _low_light(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A dim room: gamma 2.2 pulls mid-grey (128) down to about 56, then the sensor's gain
    # adds noise to what is left.
    dark = _gamma(frame, 2.2).astype(np.float32)
    return np.clip(dark + rng.normal(0, 4.0, dark.shape), 0, 255).astype(np.uint8)


def _low_contrast(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = frame.astype(np.float32)
    return np.clip((f - 128) * 0.4 + 128, 0, 255).astype(np.uint8)  # haze, backlight


def _noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = frame.astype(np.float32) + rng.normal(0, 15.0, frame.shape)  # cheap sensor at gain
    return np.clip(f, 0, 255).astype(np.uint8)


def _motion_blur(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    k = 11  # pixels at the frame's scale: a face of 144 px moving about 8% of its width
    kern = np.zeros((k, k), np.float32)
    kern[k // 2, :] = 1.0 / k
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1)
    kern = cv2.warpAffine(kern, rot, (k, k))
    return cv2.filter2D(frame, -1, kern / max(float(kern.sum()), 1e-6))


def _jpeg(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 12])
    if not ok:  # cannot happen for a uint8 BGR frame
        raise E2EError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _small_face(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # The frame at a quarter of its size and back: the face keeps about 36 px of detail,
    # a face 4-5 m from a 720p camera, as the daemon's crop would then upsample it.
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _ir_gray(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Night mode of a CCTV camera: no colour, skin glows under IR (lifted, flatter
    # tones) and the image is soft.
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    g = _gamma(g, 0.6).astype(np.float32)
    g = np.clip((g - 128) * 0.75 + 140, 0, 255).astype(np.uint8)
    g = cv2.GaussianBlur(g, (3, 3), 0)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)


def face_roll(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face image rotated by up to 30 degrees either way (head roll)."""
    s = face.shape[0]
    rot = cv2.getRotationMatrix2D((s / 2, s / 2), float(rng.uniform(-30, 30)), 1.0)
    return cv2.warpAffine(face, rot, (s, s), borderMode=cv2.BORDER_REFLECT)


def face_band(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark band across the eyes, like sunglasses (FER framing: eyes at ~40% height)."""
    s = face.shape[0]
    out = face.copy()
    top = int(s * rng.uniform(0.32, 0.38))
    out[top : top + int(s * 0.14)] = 25
    return out


#: Frame-level conditions (applied to the whole frame after the face is placed).
FRAME_CONDITIONS: dict[str, Condition] = {
    "low_light": _low_light,
    "low_contrast": _low_contrast,
    "noise": _noise,
    "motion_blur": _motion_blur,
    "jpeg_q12": _jpeg,
    "small_face": _small_face,
    "ir_gray": _ir_gray,
}
#: Face-level conditions (applied to the face before it is placed).
FACE_CONDITIONS: dict[str, Condition] = {"roll_30": face_roll, "eye_band": face_band}
CONDITIONS = ("clean", *FRAME_CONDITIONS, *FACE_CONDITIONS)


def condition_scene(
    face_gray: np.ndarray, condition: str, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 48x48 grey face -> (BGR frame with the degraded face, face region xyxy)."""
    face = cv2.resize(face_gray, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
    if condition in FACE_CONDITIONS:
        face = FACE_CONDITIONS[condition](face, rng)
    frame, region = place_in_frame(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), FER_CANVAS_SCALE)
    if condition in FRAME_CONDITIONS:
        frame = FRAME_CONDITIONS[condition](frame, rng)
    return frame, region


# ---------------------------------------------------------------------- running


def detector_config(model: str | None = None) -> DetectorConfig:
    """The daemon's default detector settings (``model``: another ``detector.model``)."""
    return DetectorConfig() if model is None else DetectorConfig(model=model)


def detector_report(cfg: DetectorConfig) -> dict:
    """What a report or a crops file records of the detector that found its faces."""
    return {
        "model": cfg.model,
        "min_confidence": cfg.min_confidence,
        "added_min_confidence": cfg.added_min_confidence,
    }


def default_detector(cfg: DetectorConfig) -> FaceDetector:
    """The detector as the daemon builds it from ``cfg`` (:func:`detector_config`: the
    daemon's default settings, or another ``detector.model`` to measure the detector)."""
    try:
        return FaceDetector(DetectorParams.from_config(cfg))
    except DetectorError as exc:
        raise E2EError(str(exc)) from exc


def labelled_faces(
    detector: FaceDetector, scenes: Iterable[Scene]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(scene index, frame, box [1, 4])`` for each scene whose labelled face the
    detector finds (:func:`pick_face`); scenes without one are skipped (misses)."""
    for i, (frame, region) in enumerate(scenes):
        det = detector.detect(frame)
        k = pick_face(det.xyxy, region)
        if k >= 0:
            yield i, frame, det.xyxy[k : k + 1]


@dataclass(frozen=True)
class Scored:
    """One model's view of one labelled set: probabilities for the faces found."""

    labels: np.ndarray  # int [N] FER order, every item of the set
    found: np.ndarray  # bool [N] the detector found the labelled face
    probs: np.ndarray  # float [N, 7] FER order; rows of missed faces are zero


@dataclass
class Runner:
    """The daemon's detector and each model, as the daemon builds them."""

    models: dict[str, EmotionModel]
    detector: FaceDetector
    crop_margin: float | None = None  # override every model's contract (tuning only)

    def score(self, scenes: Iterable[Scene], labels: np.ndarray) -> dict[str, Scored]:
        """``scenes`` is consumed lazily, one frame at a time (2,800 frames of 875x875
        pixels would hold 6 GB at once)."""
        n = len(labels)
        found = np.zeros(n, bool)
        probs = {name: np.zeros((n, len(FER_LABELS)), np.float32) for name in self.models}
        cols = {name: label_columns(m.labels, FER_LABELS) for name, m in self.models.items()}
        for i, frame, box in labelled_faces(self.detector, scenes):
            if i >= n:
                raise E2EError(f"more scenes than the {n} labels")
            found[i] = True
            for name, model in self.models.items():
                contract = model.contract
                if self.crop_margin is not None:
                    contract = dataclasses.replace(contract, crop_margin=self.crop_margin)
                crop = crop_faces(frame, box, contract)
                probs[name][i] = model.predict(crop)[0][cols[name]]
        return {name: Scored(labels, found, p) for name, p in probs.items()}


def summary(s: Scored) -> dict:
    """Accuracy (found faces and all), per-class recall/precision, macro F1 over present."""
    n_cls = len(FER_LABELS)
    y, p = s.labels[s.found], s.probs[s.found]
    pred = p.argmax(1) if len(p) else np.zeros(0, np.int64)
    cm = confusion(y, pred, n_cls)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(1), cm.sum(0)
    prec = np.divide(tp, predicted, out=np.zeros(n_cls), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros(n_cls), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(n_cls), where=(prec + rec) > 0)
    present = np.bincount(s.labels, minlength=n_cls) > 0
    correct = int(tp.sum())
    return {
        "items": len(s.labels),
        "found": int(s.found.sum()),
        "missed": int((~s.found).sum()),
        "accuracy": correct / max(1, len(y)),  # over the faces found
        "accuracy_all": correct / max(1, len(s.labels)),  # a missed face counts as wrong
        "macro_f1_present": float(f1[present].mean()) if present.any() else 0.0,
        "ece": expected_calibration_error(y, p) if len(y) else 0.0,
        "per_class": {
            lab: {
                "support": int(support[i]),
                "recall": float(rec[i]),
                "precision": float(prec[i]),
                "f1": float(f1[i]),
                "predicted": int(predicted[i]),
            }
            for i, lab in enumerate(FER_LABELS)
        },
        "confusion": cm.tolist(),
    }


# ------------------------------------------------------------------------- data


#: ``--people``: every photo, or one of two halves split by person (never by photo, so
#: no one is in both). A model fitted on one half (``trainer.wild_crops``; ``train`` by
#: convention) is scored on the other; fitting one model per half (cross-fitting) scores
#: a recipe on every person, each by a model that never saw them.
PEOPLE = ("all", "train", "held_out")
HALVES = ("train", "held_out")


def person_fold(person: str) -> str:
    """``train`` or ``held_out`` for a person's name: a fixed hash, so the split is the
    same on every machine and does not move when photos are added for other people."""
    digest = hashlib.sha256(person.encode("utf-8")).digest()
    return "train" if digest[0] % 2 == 0 else "held_out"


def load_inthewild(
    root: Path, limit: int = 0, people: str = "all"
) -> tuple[list[Path], np.ndarray]:
    """Photo paths and FER-order labels from ``root/labels.csv`` (``file,emotion,person``),
    only the photos of ``people`` (see :data:`PEOPLE`)."""
    if people not in PEOPLE:
        raise E2EError(f"people {people!r}: allowed {', '.join(PEOPLE)}")
    table = root / "labels.csv"
    if not table.is_file():
        raise E2EError(f"{table}: no such file (set EDGE_DATA_DIR or --data)")
    paths: list[Path] = []
    labels: list[int] = []
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        need = {"file", "emotion"} | ({"person"} if people != "all" else set())
        if not need <= set(reader.fieldnames or ()):
            raise E2EError(
                f"{table}: needs columns {','.join(sorted(need))} (has {reader.fieldnames})"
            )
        for lineno, row in enumerate(reader, start=2):
            if row["emotion"] not in FER_LABELS:
                raise E2EError(
                    f"{table}:{lineno}: emotion {row['emotion']!r} is not one of {FER_LABELS}"
                )
            if people != "all" and person_fold(row["person"]) != people:
                continue
            paths.append(root / "images" / row["file"])
            labels.append(FER_LABELS.index(row["emotion"]))
    if not paths:
        raise E2EError(f"{table}: no rows" + (f" for people {people}" if people != "all" else ""))
    if limit and limit < len(paths):
        # Every k-th photo: a fixed, class-mixed subset (the file is sorted by name).
        idx = np.linspace(0, len(paths) - 1, limit).round().astype(int)
        paths, labels = [paths[i] for i in idx], [labels[i] for i in idx]
    return paths, np.array(labels, np.int64)


def inthewild_scenes(paths: list[Path], canvas: float = CANVAS_SCALE) -> Iterator[Scene]:
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise E2EError(f"{p}: not a readable image")
        yield place_in_frame(img, canvas)


def ferplus_faces(path: Path, limit: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """FER+ val faces and majority labels; ``limit`` > 0 takes a fixed random subset."""
    try:
        ds = load_ferplus_npz(path, "val")
    except DataError as exc:
        raise E2EError(str(exc)) from exc
    idx = np.arange(len(ds))
    if limit and limit < len(ds):
        idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
    return ds.images[idx], ds.labels[idx]


# ----------------------------------------------------------------------- report


def resolve_models(names: Sequence[str]) -> dict[str, Path]:
    """Bundled names (fast, ferplus, ...), ONNX paths or ``NAME=PATH`` -> {name: path}.

    ``NAME=PATH`` names a model in the report (``candidate=runs/x/emotion_int8.onnx``);
    PATH may itself be a bundled name (``bundled=fast``).
    """
    out: dict[str, Path] = {}
    for n in names or BUNDLED_MODELS:
        label, sep, target = n.partition("=")
        if not sep:
            label, target = "", n
        path = BUNDLED_MODELS.get(target, Path(target))
        name = label or (target if target in BUNDLED_MODELS else path.stem)
        if name in out:
            name = str(path)
        out[name] = path
    return out


def format_report(r: dict) -> str:
    lines = []
    itw = r.get("inthewild")
    if itw:
        lines.append(
            f"In the wild: {itw['items']} photos ({r['data']['inthewild']}, people "
            f"{r['data'].get('people', 'all')}) on a canvas "
            f"{r['data']['canvas']}x their size, detector "
            f"{r['detector']['model']} min_confidence {r['detector']['min_confidence']}"
        )
        present = [
            c for c in FER_LABELS if next(iter(itw["models"].values()))["per_class"][c]["support"]
        ]
        head = f"{'model':<24}{'found':>7}{'acc':>8}{'acc_all':>9}{'F1':>7}" + "".join(
            f"{c[:7]:>9}" for c in present
        )
        lines += [head, "-" * len(head)]
        for name, s in itw["models"].items():
            lines.append(
                f"{name:<24}{s['found']:>7}{s['accuracy']:>8.1%}{s['accuracy_all']:>9.1%}"
                f"{s['macro_f1_present']:>7.3f}"
                + "".join(f"{s['per_class'][c]['recall']:>9.2f}" for c in present)
            )
        lines.append("(per-class columns: recall; precision and confusion in --json)")
        if r["data"].get("seen_by"):
            lines.append(
                f"SEEN: {', '.join(r['data']['seen_by'])} trained on some of these photos: "
                "a check of the file, not accuracy on people it has not seen"
            )
    cond = r.get("conditions")
    if cond:
        lines.append("")
        lines.append(
            f"Camera conditions: {cond['faces']} FER+ val faces each; accuracy over the faces "
            "found, change against clean in points (accuracy_all in --json counts misses)"
        )
        names = list(cond["models"])
        head = f"{'condition':<14}{'found':>7}" + "".join(f"{n[:18]:>20}" for n in names)
        lines += [head, "-" * len(head)]
        for c in cond["conditions"]:
            row = f"{c:<14}{cond['found'][c]:>7}"
            for n in names:
                m = cond["models"][n]
                acc, clean = m[c]["accuracy"], m["clean"]["accuracy"]
                delta = "" if c == "clean" else f" ({(acc - clean) * 100:+.1f})"
                row += f"{f'{acc:.1%}{delta}':>20}"
            lines.append(row)
    return "\n".join(lines)


def _seen(model: EmotionModel) -> set[str]:
    """The in-the-wild people a model was trained on (empty: none)."""
    return {p for p in model.contract.extra.get("trained_on_inthewild", "").split(",") if p}


def _unseen_halves(seen: set[str]) -> set[str]:
    return set() if "all" in seen else set(HALVES) - seen


def check_unseen(models: dict[str, EmotionModel], people: str) -> None:
    """Refuse to score a model on in-the-wild photos it was trained on (the export writes
    ``trained_on_inthewild``, from ``trainer.wild_crops`` files or an init that had them):
    such a number would look like accuracy on real people and be memory."""
    for name, m in models.items():
        seen = _seen(m)
        if not seen or people in _unseen_halves(seen):
            continue
        unseen = sorted(_unseen_halves(seen))
        hint = (
            f"score it with --people {unseen[0]}"
            if unseen
            else "it has seen every person: score its recipe fitted on one half of them "
            "(a cross-fit), or pass --seen to check the file on photos it knows"
        )
        raise E2EError(
            f"{name}: trained on the in-the-wild photos of people {','.join(sorted(seen))}"
            f", cannot be scored on people {people}: {hint}"
        )


def resolve_people(models: dict[str, EmotionModel], people: str) -> str:
    """``auto`` -> the half of the people no model was fitted on when any was (``held_out``
    for the usual ``train`` fit), else ``all``; then refuse a choice that would score a
    model on people it saw."""
    if people == "auto":
        seen = [s for s in map(_seen, models.values()) if s]
        common = set(HALVES).intersection(*map(_unseen_halves, seen))
        # No half unseen by all: check_unseen below names the model and the way out.
        people = "all" if not seen else min(common, default="held_out")
    check_unseen(models, people)
    return people


def scored_people(models: dict[str, EmotionModel], people: str, seen_ok: bool) -> str:
    """:func:`resolve_people`, or with ``seen_ok`` (``--seen``) every photo under auto
    and no refusal: a regression check of files fitted on these people."""
    if seen_ok:
        return "all" if people == "auto" else people
    return resolve_people(models, people)


def seen_by(models: dict[str, EmotionModel], people: str) -> list[str]:
    """The models fitted on some of ``people``'s photos (only under ``--seen``): their
    figures check the file and the pipeline, not accuracy on unseen people."""
    return sorted(
        n for n, m in models.items() if (s := _seen(m)) and people not in _unseen_halves(s)
    )


def run(args: argparse.Namespace) -> dict:
    data = Path(args.data) if args.data else default_data_dir()
    conditions = _parse_conditions(args.conditions)
    mcfg = ModelConfig()
    dcfg = detector_config(args.detector)
    tta = args.tta_hflip or mcfg.tta_hflip
    # As the daemon runs: the mirrored pass for the uncertain faces unless told otherwise.
    below = mcfg.tta_hflip_below if args.tta_hflip_below is None else args.tta_hflip_below
    models = {}
    for name, path in resolve_models(args.models).items():
        try:
            models[name] = EmotionModel(path, "cpu", mcfg.intra_op_threads, tta, below)
        except ModelLoadError as exc:
            raise E2EError(str(exc)) from exc
        try:
            label_columns(models[name].labels, FER_LABELS)
        except EvaluateError as exc:
            raise E2EError(f"{path}: {exc}") from exc
    # Without the in-the-wild photos no person is scored: nothing to refuse.
    people = scored_people(models, args.people, args.seen or args.no_inthewild)
    runner = Runner(models, default_detector(dcfg), args.crop_margin)
    report: dict = {
        "detector": detector_report(dcfg),
        "crop_margin_override": args.crop_margin,
        "tta_hflip": tta,
        "tta_hflip_below": below,
        "models": {
            n: {"path": str(p.info.path), "sha256": p.info.sha256} for n, p in models.items()
        },
        "data": {},
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_inthewild:
        root = data / "inthewild"
        paths, labels = load_inthewild(root, args.limit, people)
        scored = runner.score(inthewild_scenes(paths, args.canvas), labels)
        report["data"]["inthewild"] = str(root)
        report["data"]["canvas"] = args.canvas
        report["data"]["people"] = people
        report["data"]["seen_by"] = seen_by(models, people)
        report["inthewild"] = {
            "items": len(labels),
            "models": {n: summary(s) for n, s in scored.items()},
        }
        for n, s in report["inthewild"]["models"].items():
            plot_confusion(
                np.array(s["confusion"]),
                FER_LABELS,
                out_dir / f"{n}_inthewild_confusion.png",
                f"{n}: in the wild, {s['accuracy']:.1%} of {s['found']} faces",
            )
    if conditions:
        fp_path = data / "ferplus" / "ferplus_trainval.npz"
        faces, labels = ferplus_faces(fp_path, args.cond_limit)
        report["data"]["ferplus_val"] = str(fp_path)
        per_model: dict[str, dict] = {n: {} for n in models}
        found: dict[str, int] = {}
        for c in conditions:
            rng = np.random.default_rng(1)  # the same degradations for every model
            scenes = (condition_scene(f, c, rng) for f in faces)
            for n, s in runner.score(scenes, labels).items():
                per_model[n][c] = summary(s)
                found[c] = per_model[n][c]["found"]
        report["conditions"] = {
            "faces": len(faces),
            "conditions": list(conditions),
            "found": found,
            "models": per_model,
        }
    return report


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{v} is not a probability in [0, 1]")
    return v


def _parse_conditions(spec: str) -> tuple[str, ...]:
    if spec == "none":
        return ()
    if spec == "all":
        return CONDITIONS
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise E2EError(
            f"--conditions: unknown {unknown} (allowed: all, none, {', '.join(CONDITIONS)})"
        )
    return names if "clean" in names else ("clean", *names)


def add_detector_option(ap: argparse.ArgumentParser, why: str) -> None:
    """``--detector``: a ``detector.model`` other than the daemon's (``why`` to use one)."""
    ap.add_argument(
        "--detector",
        choices=list(PARTS),
        default=None,
        help=f"detector.model (default: the daemon's, {DEFAULT_DETECTOR_MODEL}); {why}",
    )


def add_people_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--people",
        choices=("auto", *PEOPLE),
        default="auto",
        help="in-the-wild photos of every person, or of one half split by person; auto "
        "(default): the half no model was fitted on (held_out for a fit on train), else all",
    )
    ap.add_argument(
        "--seen",
        action="store_true",
        help="score models on photos they were trained on too (auto then means all): a "
        "regression check of a file, marked SEEN, not accuracy on unseen people",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "models",
        nargs="*",
        help="ONNX files, bundled names or NAME=PATH (default: every bundled model)",
    )
    ap.add_argument("--data", help="data root (default: $EDGE_DATA_DIR or ../shared/data)")
    ap.add_argument("--limit", type=int, default=0, help="in-the-wild photos (0 = all)")
    ap.add_argument(
        "--canvas",
        type=float,
        default=CANVAS_SCALE,
        help=f"in-the-wild canvas side / photo side (default {CANVAS_SCALE}, >= 1)",
    )
    add_people_option(ap)
    add_detector_option(ap, "another one measures the detector, not what the daemon does")
    ap.add_argument("--no-inthewild", action="store_true", help="skip the in-the-wild photos")
    ap.add_argument(
        "--conditions",
        default="all",
        help=f"camera conditions: all, none or a comma list of {', '.join(CONDITIONS)}",
    )
    ap.add_argument(
        "--cond-limit",
        type=int,
        default=DEFAULT_COND_LIMIT,
        help=f"FER+ val faces per condition (default {DEFAULT_COND_LIMIT}; 0 = all)",
    )
    ap.add_argument(
        "--crop-margin",
        type=float,
        default=None,
        help="override every model's crop margin (to measure the crop; not the daemon's)",
    )
    ap.add_argument("--tta-hflip", action="store_true", help="the daemon's model.tta_hflip")
    ap.add_argument(
        "--tta-hflip-below",
        type=_probability,
        metavar="P",
        help="the daemon's model.tta_hflip_below (default: the daemon's default; "
        "0 scores each model's single pass)",
    )
    ap.add_argument("--out", default="runs/e2e", help="folder for the confusion PNGs")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    args = ap.parse_args(argv)
    if args.limit < 0 or args.cond_limit < 0:
        print("error: --limit and --cond-limit must be >= 0", file=sys.stderr)
        return 2
    if not 1 <= args.canvas <= 10:
        print("error: --canvas must be in 1..10", file=sys.stderr)
        return 2
    if args.crop_margin is not None and not 0 <= args.crop_margin <= 1:
        print("error: --crop-margin must be in 0..1", file=sys.stderr)
        return 2
    return report_cli(run, format_report, args, (E2EError, EvaluateError))


if __name__ == "__main__":
    sys.exit(main())
