"""Face crops of the in-the-wild photos, cut the way the daemon cuts them, as training data.

    python -m trainer.wild_crops [--people train|held_out|all] [--model fast] [--data DIR]
        [--detector full_range|short_range|both] [--out runs/inthewild_train.npz]

FER+ faces are cut by FER-2013's own pipeline; what the daemon feeds the model is a
BlazeFace box squared and widened by the contract's margin. This command builds the
second kind from labelled photos of real people: each photo of ``--people`` is placed on
a canvas, detected and cropped exactly as ``trainer.evaluate_e2e`` (and the daemon) do,
and the 48x48 grey crops are written with their labels to an ``.npz`` that
``data.extra`` adds to a training run.

The ``train`` half of the people (split by person, :func:`~trainer.evaluate_e2e.
person_fold`) is the default: a model fitted on it is scored end to end on the
``held_out`` half, people it has never seen (``trainer.evaluate_e2e`` picks that half
and refuses the other). Crops of the ``held_out`` half fit the second model of a
cross-fit, scored on the ``train`` half; crops of ``all`` fit a model no in-the-wild
photo can score (its recipe is judged by the two halves' models). Photos whose face the
detector misses are counted and left out (the daemon would not classify them either).
``--detector`` cuts with another ``detector.model`` than the daemon's default, to refit
and compare a recipe on the crops an earlier default detector cut.
The file is data derived from the shared set: keep it under ``runs/`` (ignored by git),
never in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from edge_daemon.classify.crop import crop_faces
from edge_daemon.classify.model import EmotionModel, ModelLoadError
from trainer.data import IMAGE_SIZE, default_data_dir
from trainer.evaluate_e2e import (
    CANVAS_SCALE,
    E2EError,
    add_detector_option,
    default_detector,
    detector_config,
    detector_report,
    inthewild_scenes,
    labelled_faces,
    load_inthewild,
    resolve_models,
)

#: What ``data.extra`` reads; written by :func:`build`.
CROPS_KEYS = ("images", "labels", "files", "meta")


def build(
    data: Path, people: str, model_name: str, out: Path, detector_model: str | None = None
) -> dict:
    """Write the crops of ``people``'s photos to ``out``; returns what was done.
    ``detector_model``: a ``detector.model`` other than the daemon's default."""
    [path] = resolve_models([model_name]).values()
    try:
        contract = EmotionModel(path, "cpu", 1).contract
    except ModelLoadError as exc:
        raise E2EError(str(exc)) from exc
    if contract.channels != 1 or contract.input_size != IMAGE_SIZE:
        raise E2EError(
            f"{path}: the trainer trains {IMAGE_SIZE}x{IMAGE_SIZE} grey crops; this model "
            f"takes {contract.input_size}x{contract.input_size} with {contract.channels} channels"
        )
    dcfg = detector_config(detector_model)
    detector = default_detector(dcfg)
    root = data / "inthewild"
    paths, labels = load_inthewild(root, 0, people)
    crops: list[np.ndarray] = []
    kept: list[int] = []
    for i, frame, box in labelled_faces(detector, inthewild_scenes(paths, CANVAS_SCALE)):
        crops.append(crop_faces(frame, box, contract)[0])
        kept.append(i)
    if not kept:
        raise E2EError(f"{root}: the detector found no labelled face in {len(paths)} photos")
    meta = {
        "people": people,
        "photos": len(paths),
        "found": len(kept),
        "missed": len(paths) - len(kept),
        "canvas": CANVAS_SCALE,
        "detector": detector_report(dcfg),
        "crop_margin": contract.crop_margin,
        "crop_model": str(path),
        "labels_sha256": hashlib.sha256((root / "labels.csv").read_bytes()).hexdigest(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        images=np.stack(crops),
        labels=labels[kept],
        files=np.array([paths[i].name for i in kept]),
        meta=np.array(json.dumps(meta)),
    )
    tmp.replace(out)  # a half-written file is never taken for a finished one
    return {**meta, "out": str(out), "per_class": np.bincount(labels[kept], minlength=7).tolist()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--people", choices=("train", "all", "held_out"), default="train")
    ap.add_argument("--model", default="fast", help="whose crop contract to cut with")
    ap.add_argument("--data", help="data root (default: $EDGE_DATA_DIR or ../shared/data)")
    add_detector_option(ap, "another one cuts the crops an earlier default cut")
    ap.add_argument("--out", default="runs/inthewild_train.npz")
    args = ap.parse_args(argv)
    data = Path(args.data) if args.data else default_data_dir()
    try:
        done = build(data, args.people, args.model, Path(args.out), args.detector)
    except E2EError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{done['found']} crops of {done['photos']} photos ({done['missed']} faces missed), "
        f"people {done['people']}, detector {done['detector']['model']}, "
        f"per class {done['per_class']} -> {done['out']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
