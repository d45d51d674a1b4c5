"""Decide whether a freshly evaluated model replaces the bundled one.

``scripts/ship_model.sh`` writes the evaluation and latency reports of a run, then asks
this module for a verdict. The comparison is on the validation photos that have no
pixel-identical copy in the training split (``trainer.evaluate --seen-in train``): a
model trained on all of FER-2013 Training (``data.dedupe: false``, e.g. the ``seed002``
reproduction) has seen 280 PublicTest photos and scores higher on the full split for
that reason alone, while on the remaining photos every model is measured on faces it
never saw. The latency gate is the daemon's classifier budget (docs/PERFORMANCE.md).

    python -m trainer.ship_gate RUN_DIR [--budget-ms 0.5] [--min-gain-points 0.3]

prints the verdict and exits 0 (install), 1 (do not install) or 2 (missing or malformed
reports).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

# int8 ms per face at 1 thread, batch 1: the daemon's classifier budget.
DEFAULT_BUDGET_MS = 0.5
# Accuracy points the new model must gain on the unseen val photos. Late in training val
# accuracy moves about +-0.3 points from epoch to epoch and the best epoch is picked on
# val, so a smaller gain is selection noise (seed002 "won" by 0.15 points, 5 photos).
DEFAULT_MIN_GAIN_POINTS = 0.3


class ShipGateError(Exception):
    """A report is missing or lacks what the verdict needs; the message says which."""


@dataclass(frozen=True)
class Verdict:
    install: bool
    reason: str


def unseen_accuracy(report: dict, name: str) -> tuple[float, int]:
    """(accuracy, images) on the val photos without a copy in training."""
    try:
        unseen = report["seen_in"]["unseen"]
        return float(unseen["accuracy"]), int(unseen["n"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ShipGateError(
            f"{name}: no 'seen_in.unseen' accuracy; evaluate it with "
            "`python -m trainer.evaluate MODEL --split val --seen-in train --json`"
        ) from exc


def latency_ms(report: dict, threads: int = 1, batch: int = 1) -> float:
    """Median ms per face at ``threads`` and ``batch`` from a ``bench_latency --json``."""
    for row in report.get("results", []):
        if row.get("threads") == threads and row.get("batch") == batch:
            return float(row["median_ms_per_face"])
    raise ShipGateError(
        f"latency report has no threads={threads} batch={batch} row; run "
        f"`python -m trainer.bench_latency MODEL --threads {threads} --batch {batch} --json`"
    )


def decide(
    new: dict,
    bundled: dict,
    latency: dict,
    budget_ms: float,
    min_gain_points: float = DEFAULT_MIN_GAIN_POINTS,
) -> Verdict:
    """Install only if ``new`` beats ``bundled`` by at least ``min_gain_points`` on the
    same unseen photos and fits the latency budget. Ties and noise-sized gains do not
    install: churn without a measured gain."""
    new_acc, new_n = unseen_accuracy(new, "new model")
    old_acc, old_n = unseen_accuracy(bundled, "bundled model")
    if new_n != old_n:
        raise ShipGateError(
            f"the two reports count different unseen photos ({new_n} vs {old_n}): "
            "evaluate both on the same data with the same --seen-in split"
        )
    ms = latency_ms(latency)
    why = []
    gain = (new_acc - old_acc) * 100
    if new_acc <= old_acc or gain < min_gain_points:
        why.append(
            f"accuracy on the {new_n} val photos without a training copy, {new_acc:.4f}, "
            f"does not beat the bundled model's {old_acc:.4f} by {min_gain_points} points "
            f"(gain {gain:+.2f})"
        )
    if ms > budget_ms:
        why.append(f"{ms:.3f} ms per face on one thread is over the {budget_ms} ms budget")
    if why:
        return Verdict(False, "; ".join(why))
    return Verdict(
        True,
        f"accuracy on the {new_n} val photos without a training copy {new_acc:.4f} > "
        f"{old_acc:.4f} (gain {gain:+.2f} points), {ms:.3f} ms per face",
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
        help="accuracy points the new model must gain on the unseen val photos",
    )
    args = ap.parse_args(argv)
    try:
        verdict = decide(
            _load(args.run / "eval_int8.json"),
            _load(args.run / "eval_bundled.json"),
            _load(args.run / "latency_int8.json"),
            args.budget_ms,
            args.min_gain_points,
        )
    except ShipGateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(verdict.reason)
    return 0 if verdict.install else 1


if __name__ == "__main__":
    sys.exit(main())
