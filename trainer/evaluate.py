"""Evaluate an exported ONNX emotion model on a labelled data set.

    python -m trainer.evaluate MODEL.onnx [--data PATH]
        [--format fer2013_npz|ferplus_npz|csv|folder] [--split val] [--out DIR] [--json]
        [--seen-in train] [--crowd [FERPLUS_NPZ]]

The model is loaded exactly as the daemon loads it (:class:`EmotionModel`), so its
metadata contract decides the preprocessing. The model's output columns are matched to
the data's FER-2013 classes by *name*; a model whose label names differ is refused.
Prints accuracy, macro F1, expected calibration error and per-class precision/recall/F1,
and writes ``<model>_<split>_confusion.png`` to ``--out`` (default: next to the model).
With ``--seen-in train`` accuracy is also reported separately for the images that have a
pixel-identical copy in that split: FER-2013 PublicTest shares 280 photos with Training,
and a model trained on them partly scores by memory there.
With ``--crowd`` (FER-2013 data only) the FER+ ten-person votes for the same photos are
matched by pixels, and accuracy is split by whether the FER-2013 label is the crowd's
majority choice; errors where the model picked the majority's emotion are counted. It
says how much of the remaining error is disagreement with a single annotator.
With ``--json`` the report is printed as JSON on stdout (the table goes to stderr).
Errors (missing file, unusable model, unreadable data) exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_daemon.labels import FER_LABELS
from trainer.data import (
    DataError,
    FaceDataset,
    default_data_dir,
    image_hashes,
    load_ferplus_npz,
    load_split,
    match_images,
)
from trainer.metrics import plot_confusion, summarize

FORMATS = ("fer2013_npz", "ferplus_npz", "csv", "folder")
_DEFAULT_FILES = {
    "fer2013_npz": "fer2013/fer2013_trainval.npz",
    "ferplus_npz": "ferplus/ferplus_trainval.npz",
}


class EvaluateError(Exception):
    """The evaluation cannot run; the message says why."""


def default_data_path(fmt: str) -> Path:
    if fmt not in _DEFAULT_FILES:
        raise EvaluateError(f"--data is required with --format {fmt}")
    return default_data_dir() / _DEFAULT_FILES[fmt]


def label_columns(model_labels: tuple[str, ...], data_labels: tuple[str, ...]) -> np.ndarray:
    """For each data class (in data order), the model output column with the same name."""
    if len(model_labels) != len(data_labels) or set(model_labels) != set(data_labels):
        only_model = sorted(set(model_labels) - set(data_labels))
        only_data = sorted(set(data_labels) - set(model_labels))
        raise EvaluateError(
            f"model labels {list(model_labels)} do not match the data classes "
            f"{list(data_labels)} by name (only in model: {only_model}, only in data: "
            f"{only_data})"
        )
    return np.array([model_labels.index(name) for name in data_labels], np.int64)


def to_model_crops(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 [N, 48, 48] grayscale -> uint8 crops at the contract's size and colour."""
    if images.shape[1:] != (size, size):
        import cv2

        interp = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_LINEAR
        images = np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])
    if channels == 3:  # gray -> rgb/bgr are the same: three equal planes
        images = np.repeat(images[..., None], 3, axis=-1)
    return images


def predict(model, data: FaceDataset, batch: int = 256) -> np.ndarray:
    """Probabilities [N, 7] in the data's FER order."""
    cols = label_columns(tuple(model.labels), FER_LABELS)
    c = model.contract
    out = [
        model.predict(to_model_crops(data.images[i : i + batch], c.input_size, c.channels))
        for i in range(0, len(data), batch)
    ]
    probs = np.concatenate(out) if out else np.zeros((0, len(FER_LABELS)), np.float32)
    return probs[:, cols]


def seen_report(data: FaceDataset, probs: np.ndarray, other: FaceDataset, split: str) -> dict:
    """Accuracy on the images of ``data`` that have a pixel-identical copy in ``other``
    (``seen``) and on the rest (``unseen``), and how many seen ones carry the same label
    in ``other`` (those a memorising model gets right for free)."""
    labels_of: dict[bytes, set[int]] = {}
    for h, lab in zip(image_hashes(other.images), other.labels.tolist(), strict=True):
        labels_of.setdefault(h, set()).add(lab)
    hashes = image_hashes(data.images)
    seen = np.array([h in labels_of for h in hashes], bool)
    same = sum(
        int(lab) in labels_of[h]
        for h, lab, s in zip(hashes, data.labels.tolist(), seen, strict=True)
        if s
    )
    correct = probs.argmax(1) == data.labels

    def acc(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    return {
        "split": split,
        "seen": {"n": int(seen.sum()), "same_label": int(same), "accuracy": acc(seen)},
        "unseen": {"n": int((~seen).sum()), "accuracy": acc(~seen)},
    }


def crowd_report(data: FaceDataset, probs: np.ndarray, crowd: FaceDataset) -> dict:
    """Accuracy split by whether each image's label is the crowd's majority vote.

    ``crowd`` holds the same photos (matched by pixels, so re-encoded copies count) with
    vote distributions in ``soft``; images without a crowd counterpart are left out of
    both groups. ``errors_with_crowd``: wrong predictions that are the crowd's majority
    choice, i.e. errors only against the single annotator's label.
    """
    if crowd.soft is None:
        raise EvaluateError(f"{crowd.name}: no vote distributions (not FER+ data)")
    idx = match_images(data.images, crowd.images)
    matched = idx >= 0
    majority = np.full(len(data), -1, np.int64)
    majority[matched] = crowd.soft[idx[matched]].argmax(1)
    pred = probs.argmax(1)
    correct = pred == data.labels
    agree = matched & (majority == data.labels)
    disagree = matched & (majority != data.labels)
    with_crowd = int((~correct & (pred == majority)).sum())

    def group(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        return {"n": n, "accuracy": float(correct[mask].mean()) if n else None}

    return {
        "votes": crowd.name,
        "matched": int(matched.sum()),
        "label_is_majority": group(agree),
        "label_not_majority": group(disagree),
        "errors": int((~correct).sum()),
        "errors_with_crowd": with_crowd,
    }


def evaluate(
    model_path: Path,
    data: FaceDataset,
    threads: int = 1,
    tta: bool = False,
    seen_in: tuple[str, FaceDataset] | None = None,
    crowd: FaceDataset | None = None,
) -> dict:
    """The report for ``data``; ``seen_in`` = (split name, data set) adds a
    :func:`seen_report` against that split, ``crowd`` (FER+ votes) a
    :func:`crowd_report`."""
    from edge_daemon.classify.model import EmotionModel

    if len(data) == 0:
        raise EvaluateError(f"{data.name}: no images to evaluate")
    model = EmotionModel(model_path, providers="cpu", threads=threads, tta_hflip=tta)
    probs = predict(model, data)
    report = summarize(data.labels, probs, FER_LABELS)
    counts = data.class_counts()
    report["support"] = {lab: int(counts[i]) for i, lab in enumerate(FER_LABELS)}
    report["model_labels"] = list(model.labels)
    report["tta_hflip"] = tta
    if seen_in is not None:
        report["seen_in"] = seen_report(data, probs, seen_in[1], seen_in[0])
    if crowd is not None:
        report["crowd"] = crowd_report(data, probs, crowd)
    report["contract"] = {
        k: v for k, v in model.contract.to_metadata().items() if k not in ("labels",)
    }
    return report


def format_report(r: dict) -> str:
    lines = [
        f"model:    {r['model']}",
        f"data:     {r['data']} [{r['split']}] {r['n']} images",
        f"accuracy: {r['accuracy']:.4f}",
        f"macro F1: {r['macro_f1']:.4f}",
        f"ECE:      {r['ece']:.4f}",
        "",
        f"{'class':10s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'support':>8s}",
    ]
    for lab, pc in r["per_class"].items():
        lines.append(
            f"{lab:10s} {pc['precision']:9.4f} {pc['recall']:7.4f} {pc['f1']:7.4f} "
            f"{r['support'][lab]:8d}"
        )
    lines.append("")
    if "seen_in" in r:
        seen, unseen, split = r["seen_in"]["seen"], r["seen_in"]["unseen"], r["seen_in"]["split"]

        def pct(a: float | None) -> str:
            return "-" if a is None else f"{a:.4f}"

        lines.append(
            f"also in {split}: {seen['n']} images ({seen['same_label']} with the same label), "
            f"accuracy {pct(seen['accuracy'])}"
        )
        lines.append(f"not in {split}:  {unseen['n']} images, accuracy {pct(unseen['accuracy'])}")
        lines.append("")
    if "crowd" in r:
        c = r["crowd"]
        yes, no = c["label_is_majority"], c["label_not_majority"]

        def acc(group: dict) -> str:
            return "-" if group["accuracy"] is None else f"{group['accuracy']:.4f}"

        share = f"{c['errors_with_crowd'] / c['errors']:.0%}" if c["errors"] else "-"
        lines += [
            f"crowd votes ({c['votes']}) for {c['matched']} of {r['n']} images:",
            f"  label is the majority's choice:  {yes['n']} images, accuracy {acc(yes)}",
            f"  label is not:                    {no['n']} images, accuracy {acc(no)}",
            f"  errors where the model chose the majority's emotion: {c['errors_with_crowd']} "
            f"of {c['errors']} ({share})",
            "",
        ]
    lines.append(f"confusion matrix: {r['confusion_png']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    if not args.model.is_file():
        raise EvaluateError(f"model file {args.model} does not exist")
    data_path = args.data if args.data is not None else default_data_path(args.format)
    data = load_split(args.format, data_path, args.split)
    if args.limit:
        rng = np.random.default_rng(0)
        data = data.subset(np.sort(rng.permutation(len(data))[: args.limit]))
    seen_in = None
    if args.seen_in:
        if args.seen_in == args.split:
            raise EvaluateError(f"--seen-in {args.seen_in} is the evaluated split itself")
        seen_in = (args.seen_in, load_split(args.format, data_path, args.seen_in))
    crowd = None
    if args.crowd is not None:
        if args.format == "ferplus_npz":
            raise EvaluateError(
                "--crowd compares FER-2013 labels with the FER+ votes, but --format "
                "ferplus_npz already scores against the votes' majority: drop --crowd"
            )
        votes = Path(args.crowd) if args.crowd else default_data_path("ferplus_npz")
        crowd = load_ferplus_npz(votes, args.split)
    report = {"model": str(args.model), "data": str(data_path), "split": args.split}
    report.update(
        evaluate(args.model, data, threads=args.threads, tta=args.tta, seen_in=seen_in, crowd=crowd)
    )
    out_dir = args.out if args.out is not None else args.model.parent
    png = out_dir / f"{args.model.stem}_{args.split}_confusion.png"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_confusion(
            np.array(report["confusion"]),
            FER_LABELS,
            png,
            f"{args.model.name} on {args.split}: acc {report['accuracy']:.4f}",
        )
    except OSError as exc:
        raise EvaluateError(f"cannot write {png}: {exc}") from exc
    report["confusion_png"] = str(png)
    return report


def main(argv: list[str] | None = None) -> int:
    from edge_daemon.classify.model import ModelLoadError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model", type=Path, help="ONNX model with the metadata contract")
    ap.add_argument("--data", type=Path, help="data file or folder (default: shared FER-2013)")
    ap.add_argument("--format", choices=FORMATS, default="fer2013_npz")
    ap.add_argument("--split", default="val", help="train | val (csv: also test)")
    ap.add_argument("--out", type=Path, help="where to write the confusion PNG")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--limit", type=int, default=0, help="evaluate a random subset (0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--tta", action="store_true", help="average with the mirrored face")
    ap.add_argument(
        "--seen-in",
        metavar="SPLIT",
        help="also score separately the images with a pixel-identical copy in SPLIT",
    )
    ap.add_argument(
        "--crowd",
        nargs="?",
        const="",
        metavar="FERPLUS_NPZ",
        help="split accuracy by whether the label is the FER+ crowd majority "
        "(default votes: the shared ferplus npz)",
    )
    args = ap.parse_args(argv)
    return report_cli(run, format_report, args, (EvaluateError, ModelLoadError, DataError))


def report_cli(
    run: Callable[[argparse.Namespace], dict],
    format_report: Callable[[dict], str],
    args: argparse.Namespace,
    user_errors: tuple[type[Exception], ...],
) -> int:
    """The evaluation CLIs' tail: run, print the report, exit 0; a user error: exit 2."""
    try:
        report = run(args)
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(report, format_report(report), args.json)
    return 0


def print_report(report: dict, text: str, as_json: bool) -> None:
    """The table on stdout, or (``--json``) the table on stderr and the JSON on stdout."""
    if as_json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=1))
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
