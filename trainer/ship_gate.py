"""Decide whether a freshly evaluated model replaces the bundled one.

``scripts/ship_model.sh`` writes the evaluation and latency reports of a run, then asks
this module for a verdict. The yardstick is what users see: accuracy **end to end** on
the labelled in-the-wild photos, through the daemon's own detector and crop
(``trainer.evaluate_e2e``, candidate and bundled model side by side on the same
detections). The candidate must gain at least ``--min-gain-points`` accuracy there and
must not lose macro F1 over the classes present (so it cannot buy accuracy on neutral
and happy faces with the rare classes alert rules fire on), nor drop by more than
``--max-condition-drop-points`` against clean faces under any camera condition. The
latency gate is the daemon's classifier budget (docs/PERFORMANCE.md), set on a CPU
with int8 dot-product instructions; on a slower machine the budget cannot be checked,
so the candidate also passes when it is no slower than the bundled model measured in the
same run (``RUN_DIR/latency_bundled.json``, within ``REFERENCE_SLACK``): the same cost
on whatever machine the budget holds on.

    python -m trainer.ship_gate RUN_DIR [--budget-ms 0.5] [--min-gain-points 0.3]
        [--max-condition-drop-points 10]

reads ``RUN_DIR/e2e.json`` (models ``candidate`` and ``bundled``) and
``RUN_DIR/latency_int8.json``; prints the verdict and exits 0 (install), 1 (do not
install) or 2 (missing or malformed reports).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

# int8 ms per face at 1 thread, batch 1: the daemon's classifier budget.
DEFAULT_BUDGET_MS = 0.5
# Accuracy points the new model must gain end to end. On the 2,812 in-the-wild photos
# one point is about 26 faces; less than 0.3 (8 faces) is within what a different epoch
# or calibration subset changes.
DEFAULT_MIN_GAIN_POINTS = 0.3
# The robustness target: no camera condition may cost more than this many
# accuracy points against clean faces.
DEFAULT_MAX_CONDITION_DROP_POINTS = 10.0
# How much slower than the bundled model, measured side by side, still counts as the
# same cost: the run-to-run spread of `edge-bench latency` medians on a shared machine.
REFERENCE_SLACK = 1.10


class ShipGateError(Exception):
    """A report is missing or lacks what the verdict needs; the message says which."""


@dataclass(frozen=True)
class Verdict:
    install: bool
    reason: str


def e2e_scores(report: dict, name: str) -> tuple[float, float, int]:
    """(accuracy, macro F1 over present classes, photos) of model ``name`` in the wild."""
    try:
        s = report["inthewild"]["models"][name]
        return float(s["accuracy"]), float(s["macro_f1_present"]), int(s["items"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShipGateError(
            f"e2e report has no in-the-wild scores for {name!r}; run `python -m "
            "trainer.evaluate_e2e candidate=RUN/emotion_int8.onnx bundled=fast --json`"
        ) from exc


def worst_condition(report: dict, name: str) -> tuple[str, float] | None:
    """(condition, accuracy points lost against clean) of the worst condition, or None."""
    cond = report.get("conditions")
    if not cond:
        return None
    try:
        per = cond["models"][name]
        clean = float(per["clean"]["accuracy"])
        drops = {c: (clean - float(v["accuracy"])) * 100 for c, v in per.items() if c != "clean"}
    except (KeyError, TypeError, ValueError) as exc:
        raise ShipGateError(f"e2e report: malformed camera conditions for {name!r}") from exc
    if not drops:
        return None
    worst = max(drops, key=lambda c: drops[c])
    return worst, drops[worst]


def latency_ms(report: dict, threads: int = 1, batch: int = 1) -> float:
    """Median ms per face at ``threads`` and ``batch`` from an ``edge-bench latency --json``."""
    for row in report.get("results", []):
        if row.get("threads") == threads and row.get("batch") == batch:
            return float(row["median_ms_per_face"])
    raise ShipGateError(
        f"latency report has no threads={threads} batch={batch} row; run "
        f"`edge-bench latency MODEL --threads {threads} --batch {batch} --json`"
    )


def decide(
    e2e: dict,
    latency: dict,
    budget_ms: float,
    min_gain_points: float = DEFAULT_MIN_GAIN_POINTS,
    max_condition_drop_points: float = DEFAULT_MAX_CONDITION_DROP_POINTS,
    reference_latency: dict | None = None,
) -> Verdict:
    """Install only if the candidate beats the bundled model end to end by at least
    ``min_gain_points``, keeps its macro F1, stays robust and fits the latency budget.
    Ties and noise-sized gains do not install: churn without a measured gain."""
    new_acc, new_f1, new_n = e2e_scores(e2e, "candidate")
    old_acc, old_f1, old_n = e2e_scores(e2e, "bundled")
    if new_n != old_n:
        raise ShipGateError(
            f"the two models were scored on different photos ({new_n} vs {old_n}): "
            "score both in one trainer.evaluate_e2e run"
        )
    ms = latency_ms(latency)
    why = []
    gain = (new_acc - old_acc) * 100
    if new_acc <= old_acc or gain < min_gain_points:
        why.append(
            f"end-to-end accuracy on the {new_n} in-the-wild photos, {new_acc:.4f}, "
            f"does not beat the bundled model's {old_acc:.4f} by {min_gain_points} points "
            f"(gain {gain:+.2f})"
        )
    if new_f1 < old_f1:
        why.append(f"macro F1 {new_f1:.3f} is below the bundled model's {old_f1:.3f}")
    worst = worst_condition(e2e, "candidate")
    if worst is not None and worst[1] > max_condition_drop_points:
        why.append(
            f"camera condition {worst[0]} costs {worst[1]:.1f} accuracy points against "
            f"clean faces (at most {max_condition_drop_points:g})"
        )
    ref_ms = latency_ms(reference_latency) if reference_latency is not None else None
    if ms > budget_ms and (ref_ms is None or ms > ref_ms * REFERENCE_SLACK):
        also = (
            f" and slower than the bundled model's {ref_ms:.3f} ms measured beside it"
            if ref_ms is not None
            else ""
        )
        why.append(f"{ms:.3f} ms per face on one thread is over the {budget_ms} ms budget{also}")
    if why:
        return Verdict(False, "; ".join(why))
    return Verdict(
        True,
        f"end-to-end accuracy on the {new_n} in-the-wild photos {new_acc:.4f} > "
        f"{old_acc:.4f} (gain {gain:+.2f} points), macro F1 {new_f1:.3f} >= {old_f1:.3f}, "
        f"{ms:.3f} ms per face"
        + (f" (bundled {ref_ms:.3f} ms beside it)" if ref_ms is not None else ""),
    )


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ShipGateError(f"{path} does not exist (run scripts/ship_model.sh)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ShipGateError(f"{path} is not a readable JSON report: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer.ship_gate", description=__doc__)
    ap.add_argument("run", type=Path, help="run directory with the eval/latency reports")
    ap.add_argument("--budget-ms", type=float, default=DEFAULT_BUDGET_MS)
    ap.add_argument(
        "--min-gain-points",
        type=float,
        default=DEFAULT_MIN_GAIN_POINTS,
        help="end-to-end accuracy points the new model must gain",
    )
    ap.add_argument(
        "--max-condition-drop-points",
        type=float,
        default=DEFAULT_MAX_CONDITION_DROP_POINTS,
        help="most accuracy points any camera condition may cost against clean faces",
    )
    args = ap.parse_args(argv)
    try:
        verdict = decide(
            _load(args.run / "e2e.json"),
            _load(args.run / "latency_int8.json"),
            args.budget_ms,
            args.min_gain_points,
            args.max_condition_drop_points,
            _load(ref) if (ref := args.run / "latency_bundled.json").exists() else None,
        )
    except ShipGateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(verdict.reason)
    return 0 if verdict.install else 1


if __name__ == "__main__":
    sys.exit(main())
