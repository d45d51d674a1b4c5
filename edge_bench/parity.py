"""Same frames, same answers: the detector's boxes and the models' probabilities on one
platform against another (x86-64 against aarch64, a VNNI CPU against an AVX2 one, the
CPU provider against another).

    edge-bench parity record --video V.mp4 [--video ...] [--frames 12] [--every 5]
        [--model fast ...] [--boxes-from A.json] --out B.json
    edge-bench parity compare A.json B.json [--box-tol 0.02] [--score-tol 0.01]
        [--prob-tol 0.02] [--min-agreement 0.9] [--json]

``record`` decodes frames from real video files, runs them through the daemon's own
detector (its default settings), crop and emotion models (one thread; the CPU provider
unless ``--providers``), and writes every box, score and probability with a
description of the machine.
With ``--boxes-from`` (a record of the reference platform) each model also classifies
the crops cut at the *reference's* boxes, so the classifier is compared on identical
input, apart from the detector.

``compare`` matches the two files frame by frame and face by face and reports the
largest differences; it exits 1 when a face is missing on one side or a difference is
over its tolerance, 2 on unreadable input. Three checks:

* **detector**: every face found on both sides, corners within ``--box-tol`` of the
  face's side (a fraction; at least one pixel) and their median within a tenth of it,
  scores within ``--score-tol``;
* **classifier** (needs ``--boxes-from``): probabilities on identical crops within
  ``--prob-tol``, or, on a crop so ambiguous that one grey level of input noise moves
  its probabilities further, within that move (the reference records it: ``jitter``);
  and their median, over all crops, within a fifth of ``--prob-tol``: a kernel that is
  wrong moves every crop, where a rounding difference moves the ambiguous ones;
* **end to end**: the same top class on at least ``--min-agreement`` of the faces.
  Not a per-face probability bound: a box a pixel away moves the crop, and on an
  ambiguous face that moves the probabilities by more than any kernel difference
  (measured: 0.17 on one small crowd face whose box moved 1.2 px, top class unchanged).

The defaults were set from a measured run (x86-64 against emulated aarch64,
docs/PERFORMANCE.md, "Other platforms").
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Default tolerances, from x86-64 (AVX-512 VNNI) against emulated aarch64 (Cortex-A76)
#: on 19 faces of three shared videos (docs/PERFORMANCE.md, "Other platforms"); the
#: measured value follows each. Box corners, as a fraction of the face's side: every
#: face (8.2%: one crowd face whose weighted-NMS group differed; the others 1.5% at
#: most) and the median (0.2%). Detector score: every face (0.019). Probability on
#: identical crops (0.029; a later default, 2026-12-07: 0.077 on one angry/neutral crop
#: that one grey level of noise moves by 0.14 on x86 itself, median 0.001); the median
#: over crops (0.005) within a fifth of it. Top-class agreement end to end (100%).
BOX_TOL = 0.10
BOX_MEDIAN_TOL = 0.01
SCORE_TOL = 0.03
PROB_TOL = 0.05
MIN_AGREEMENT = 0.9
#: Median of the same-crop differences, as a fraction of the per-crop tolerance.
PROB_MEDIAN_FRACTION = 0.2
#: How the reference measures a crop's own sensitivity: this many copies of the crop,
#: each pixel moved by -1, 0 or +1 grey level (seeded), and the largest probability move.
JITTER_DRAWS = 16
JITTER_SEED = 0


class ParityError(Exception):
    """Unusable input for record/compare; the message says which and why."""


def record(
    videos: list[Path],
    models: list[str],
    frames: int = 12,
    every: int = 5,
    boxes_from: dict[str, Any] | None = None,
    providers: str = "cpu",
) -> dict[str, Any]:
    """Boxes, scores and probabilities for ``frames`` frames of each video, one every
    ``every`` frames from the first; with ``boxes_from``, also the probabilities of
    crops cut at that record's boxes. Without it (a reference), each face also gets its
    ``jitter`` per model: how far one grey level of noise moves its probabilities here."""
    import cv2

    from edge_daemon.classify.crop import crop_faces
    from edge_daemon.classify.model import EmotionModel, ModelLoadError
    from edge_daemon.config.schema import BUNDLED_MODELS, DetectorConfig
    from edge_daemon.detect.blazeface import DetectorParams, FaceDetector
    from edge_daemon.ops.cpu import cpu_info

    if frames < 1 or every < 1:
        raise ParityError("--frames and --every must be at least 1")
    loaded: dict[str, EmotionModel] = {}
    for name in models:
        path = Path(BUNDLED_MODELS[name]) if name in BUNDLED_MODELS else Path(name)
        try:
            loaded[name] = EmotionModel(path, providers=providers, threads=1)
        except ModelLoadError as exc:
            raise ParityError(str(exc)) from exc
    detector = FaceDetector(DetectorParams.from_config(DetectorConfig()))
    ref = (
        None if boxes_from is None else {(f["video"], f["index"]): f for f in boxes_from["frames"]}
    )
    out_frames: list[dict[str, Any]] = []
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise ParityError(f"{video}: cannot be opened as a video")
        try:
            index, kept = 0, 0
            while kept < frames:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % every == 0:
                    det = detector.detect(frame)
                    row: dict[str, Any] = {
                        "video": video.name,
                        "index": index,
                        "boxes": det.xyxy.round(3).tolist(),
                        "scores": det.scores.round(5).tolist(),
                        "probs": {},
                    }
                    for name, model in loaded.items():
                        crops = crop_faces(frame, det.xyxy, model.contract)
                        probs = model.predict(crops)
                        row["probs"][name] = probs.round(5).tolist()
                        if ref is None:
                            row.setdefault("jitter", {})[name] = (
                                _jitter(model, crops, probs).round(5).tolist()
                            )
                    if ref is not None:
                        if (video.name, index) not in ref:
                            raise ParityError(f"--boxes-from has no {video.name} frame {index}")
                        boxes = np.array(ref[video.name, index]["boxes"], np.float32)
                        row["probs_on_ref_boxes"] = {
                            name: model.predict(
                                crop_faces(frame, boxes.reshape(-1, 4), model.contract)
                            )
                            .round(5)
                            .tolist()
                            for name, model in loaded.items()
                        }
                    out_frames.append(row)
                    kept += 1
                index += 1
        finally:
            cap.release()
        if kept == 0:
            raise ParityError(f"{video}: no frame could be decoded")
    import onnxruntime

    return {
        "platform": {
            "machine": platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__,
            "cpu": cpu_info().describe(),
        },
        "models": {n: m.info.sha256 for n, m in loaded.items()},
        "providers": {n: list(m.info.providers) for n, m in loaded.items()},
        "frames": out_frames,
    }


def _jitter(model: Any, crops: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per crop, the largest probability move that one grey level of noise causes."""
    if not len(crops):
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(JITTER_SEED)
    worst = np.zeros(len(crops), np.float32)
    for _ in range(JITTER_DRAWS):
        noisy = np.clip(crops.astype(np.int16) + rng.integers(-1, 2, crops.shape), 0, 255)
        moved = np.abs(model.predict(noisy.astype(crops.dtype)) - probs).max(axis=1)
        worst = np.maximum(worst, moved)
    return worst


def _pair_faces(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Greedy nearest-corner pairing of two box sets (order can differ on ties)."""
    if not len(a) or not len(b):
        return []
    d = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    pairs: list[tuple[int, int]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(d, axis=None):
        i, j = divmod(int(flat), len(b))
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def compare(
    a: dict[str, Any],
    b: dict[str, Any],
    box_tol: float = BOX_TOL,
    score_tol: float = SCORE_TOL,
    prob_tol: float = PROB_TOL,
    min_agreement: float = MIN_AGREEMENT,
) -> dict[str, Any]:
    """Differences between two ``record`` results; ``ok`` says whether all are within
    tolerance. Raises :class:`ParityError` when the files do not describe the same run."""
    if a.get("models") != b.get("models"):
        raise ParityError(
            f"the files were recorded with different models: {a.get('models')} against "
            f"{b.get('models')}"
        )
    fa = {(f["video"], f["index"]): f for f in a["frames"]}
    fb = {(f["video"], f["index"]): f for f in b["frames"]}
    if set(fa) != set(fb):
        only = sorted(set(fa) ^ set(fb))[:5]
        raise ParityError(f"the files hold different frames (e.g. {only})")
    problems: list[str] = []
    faces = 0
    box_max = score_max = box_rel = 0.0
    rel_all: list[float] = []
    prob_max = {m: 0.0 for m in a["models"]}
    same_crop_all: dict[str, list[float]] = {m: [] for m in a["models"]}
    same_crops = all("probs_on_ref_boxes" in f for f in b["frames"])
    top_same = {m: 0 for m in a["models"]}
    for key in sorted(fa):
        ba, bb = (
            np.array(fa[key]["boxes"]).reshape(-1, 4),
            np.array(fb[key]["boxes"]).reshape(-1, 4),
        )
        pairs = _pair_faces(ba, bb)
        if len(ba) != len(bb):
            problems.append(f"{key[0]} frame {key[1]}: {len(ba)} faces against {len(bb)}")
        for i, j in pairs:
            faces += 1
            box_d = float(np.abs(ba[i] - bb[j]).max())
            side = float(max(ba[i][2] - ba[i][0], ba[i][3] - ba[i][1]))
            score_d = abs(fa[key]["scores"][i] - fb[key]["scores"][j])
            box_max, score_max = max(box_max, box_d), max(score_max, score_d)
            box_rel = max(box_rel, box_d / max(side, 1.0))
            rel_all.append(box_d / max(side, 1.0))
            if box_d > max(1.0, box_tol * side):
                problems.append(
                    f"{key[0]} frame {key[1]} face {i}: box corners {box_d:.2f} px apart"
                )
            if score_d > score_tol:
                problems.append(f"{key[0]} frame {key[1]} face {i}: score differs by {score_d:.4f}")
            for m in prob_max:
                pa, pb = np.array(fa[key]["probs"][m][i]), np.array(fb[key]["probs"][m][j])
                d = float(np.abs(pa - pb).max())
                prob_max[m] = max(prob_max[m], d)
                top_same[m] += int(pa.argmax() == pb.argmax())
                if same_crops:
                    pc = np.array(fb[key]["probs_on_ref_boxes"][m][i])
                    dc = float(np.abs(pa - pc).max())
                    same_crop_all[m].append(dc)
                    jit = fa[key].get("jitter", {}).get(m)
                    allowed = max(prob_tol, float(jit[i]) if jit else 0.0)
                    if dc > allowed:
                        problems.append(
                            f"{key[0]} frame {key[1]} face {i}: {m} probabilities on the same "
                            f"crop differ by {dc:.4f} (allowed {allowed:.4f})"
                        )
    agreement = {m: (top_same[m] / faces if faces else None) for m in top_same}
    median_tol = PROB_MEDIAN_FRACTION * prob_tol
    same_crop_max = {m: max(v, default=0.0) for m, v in same_crop_all.items()}
    same_crop_median = {m: float(np.median(v)) if v else 0.0 for m, v in same_crop_all.items()}
    for m, med in same_crop_median.items():
        if same_crops and med > median_tol:
            problems.append(
                f"{m}: the median difference on the same crop is {med:.4f} "
                f"(allowed {median_tol:.4f})"
            )
    box_median = float(np.median(rel_all)) if rel_all else 0.0
    if box_median > BOX_MEDIAN_TOL * (box_tol / BOX_TOL):
        problems.append(f"the median box difference is {box_median:.2%} of the face's side")
    for m, v in agreement.items():
        if v is not None and v < min_agreement:
            problems.append(f"{m}: the same top class on only {v:.1%} of the faces")
    return {
        "ok": not problems and faces > 0,
        "frames": len(fa),
        "faces": faces,
        "box_max_px": round(box_max, 4),
        "box_max_of_side": round(box_rel, 5),
        "box_median_of_side": round(box_median, 5),
        "prob_max_same_crop": (
            {m: round(v, 6) for m, v in same_crop_max.items()} if same_crops else None
        ),
        "prob_median_same_crop": (
            {m: round(v, 6) for m, v in same_crop_median.items()} if same_crops else None
        ),
        "score_max": round(score_max, 6),
        "prob_max": {m: round(v, 6) for m, v in prob_max.items()},
        "top_class_agreement": agreement,
        "tolerance": {
            "box_of_side": box_tol,
            "box_median_of_side": BOX_MEDIAN_TOL * (box_tol / BOX_TOL),
            "score": score_tol,
            "prob_same_crop": prob_tol,
            "prob_same_crop_jitter": any("jitter" in f for f in a["frames"]),
            "prob_median_same_crop": round(median_tol, 6),
            "min_agreement": min_agreement,
        },
        "platforms": [a.get("platform"), b.get("platform")],
        "problems": problems[:50] + ([] if faces else ["no face in either file"]),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="parity_command", required=True)
    r = sub.add_parser("record", help="boxes and probabilities of a few frames, as JSON")
    r.add_argument("--video", type=Path, action="append", required=True, help="video file")
    r.add_argument("--frames", type=int, default=12, help="frames kept per video")
    r.add_argument("--every", type=int, default=5, help="keep one frame in N")
    r.add_argument(
        "--model",
        action="append",
        help="bundled model name or ONNX file (repeatable; default: fast)",
    )
    r.add_argument(
        "--boxes-from",
        type=Path,
        help="a reference record: also classify crops cut at its boxes",
    )
    r.add_argument("--providers", default="cpu", help="as model.providers (default: cpu)")
    r.add_argument("--out", type=Path, required=True, help="JSON file to write")
    c = sub.add_parser("compare", help="compare two recorded files")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--box-tol", type=float, default=BOX_TOL, help="fraction of the face's side")
    c.add_argument("--score-tol", type=float, default=SCORE_TOL)
    c.add_argument(
        "--prob-tol",
        type=float,
        default=PROB_TOL,
        help="per identical crop (or its recorded jitter, where larger)",
    )
    c.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT)
    c.add_argument("--json", action="store_true", help="print the report as JSON")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParityError(f"{path}: not a readable parity file ({exc})") from exc
    if not isinstance(data, dict) or "frames" not in data or "models" not in data:
        raise ParityError(f"{path}: not a file written by 'edge-bench parity record'")
    return data


def run(args: argparse.Namespace) -> int:
    try:
        if args.parity_command == "record":
            ref = None if args.boxes_from is None else _load(args.boxes_from)
            res = record(
                args.video, args.model or ["fast"], args.frames, args.every, ref, args.providers
            )
            args.out.write_text(json.dumps(res))
            faces = sum(len(f["boxes"]) for f in res["frames"])
            print(f"parity: {len(res['frames'])} frames, {faces} faces -> {args.out}")
            return 0
        rep = compare(
            _load(args.a),
            _load(args.b),
            args.box_tol,
            args.score_tol,
            args.prob_tol,
            args.min_agreement,
        )
    except ParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        agree = ", ".join(
            f"{m} {v:.1%}" for m, v in rep["top_class_agreement"].items() if v is not None
        )
        probs = ", ".join(f"{m} {v:.4f}" for m, v in rep["prob_max"].items())
        same = rep["prob_max_same_crop"]
        same_s = (
            "not recorded" if same is None else ", ".join(f"{m} {v:.4f}" for m, v in same.items())
        )
        print(
            f"parity: {rep['frames']} frames, {rep['faces']} faces; largest differences: "
            f"box {rep['box_max_px']:.3f} px ({rep['box_max_of_side']:.2%} of the face), "
            f"score {rep['score_max']:.5f}; probability on the same crop: {same_s}; "
            f"end to end: {probs}; same top class: {agree}"
        )
        for line in rep["problems"]:
            print(f"  {line}")
    print("parity: " + ("within tolerance" if rep["ok"] else "FAILED"), file=sys.stderr)
    return 0 if rep["ok"] else 1
