"""The install decision of scripts/ship_model.sh (pure logic on report dicts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.ship_gate import ShipGateError, decide, main


def _eval(overall: float, unseen: float, n_unseen: int = 3309) -> dict:
    return {
        "accuracy": overall,
        "seen_in": {
            "split": "train",
            "seen": {"n": 280, "same_label": 273, "accuracy": 0.9},
            "unseen": {"n": n_unseen, "accuracy": unseen},
        },
    }


def _latency(ms_1x1: float) -> dict:
    return {
        "results": [
            {"threads": 1, "batch": 1, "median_ms_per_face": ms_1x1},
            {"threads": 2, "batch": 1, "median_ms_per_face": ms_1x1 / 2},
        ]
    }


def test_better_on_unseen_photos_and_fast_enough_installs() -> None:
    v = decide(_eval(0.675, 0.668), _eval(0.671, 0.665), _latency(0.35), 0.5)
    assert v.install
    assert "0.6680 > 0.6650" in v.reason and "0.350 ms" in v.reason


def test_memorised_val_copies_do_not_buy_the_slot() -> None:
    # Higher on the full split only because it trained on copies of val photos.
    v = decide(_eval(0.70, 0.660), _eval(0.675, 0.668), _latency(0.35), 0.5)
    assert not v.install
    assert "does not beat" in v.reason and "3309 val photos" in v.reason


def test_a_tie_does_not_install() -> None:
    assert not decide(_eval(0.68, 0.668), _eval(0.67, 0.668), _latency(0.3), 0.5).install


def test_a_noise_sized_gain_does_not_install() -> None:
    # seed002's real numbers: 0.6694 vs 0.6679 on 3,309 photos, i.e. 5 photos.
    v = decide(_eval(0.6832, 0.6694), _eval(0.6748, 0.6679), _latency(0.467), 0.5)
    assert not v.install and "by 0.3 points (gain +0.15)" in v.reason
    # The margin is a parameter: with none, any strict gain installs.
    assert decide(_eval(0.6832, 0.6694), _eval(0.6748, 0.6679), _latency(0.467), 0.5, 0.0).install


def test_over_the_latency_budget_does_not_install_and_both_reasons_are_given() -> None:
    v = decide(_eval(0.6, 0.60), _eval(0.67, 0.668), _latency(0.76), 0.5)
    assert not v.install
    assert "does not beat" in v.reason and "0.760 ms per face" in v.reason
    v = decide(_eval(0.7, 0.69), _eval(0.67, 0.668), _latency(0.76), 0.5)
    assert not v.install and "does not beat" not in v.reason


def test_reports_without_what_the_verdict_needs_are_refused_by_name() -> None:
    no_seen = {"accuracy": 0.7}
    with pytest.raises(ShipGateError, match=r"bundled model.*--seen-in train"):
        decide(_eval(0.7, 0.69), no_seen, _latency(0.3), 0.5)
    with pytest.raises(ShipGateError, match="different unseen photos"):
        decide(_eval(0.7, 0.69, 3000), _eval(0.67, 0.668), _latency(0.3), 0.5)
    with pytest.raises(ShipGateError, match="threads=1 batch=1"):
        decide(_eval(0.7, 0.69), _eval(0.67, 0.668), {"results": []}, 0.5)


def _write(run: Path, new: dict, bundled: dict, latency: dict) -> None:
    run.mkdir(exist_ok=True)
    (run / "eval_int8.json").write_text(json.dumps(new))
    (run / "eval_bundled.json").write_text(json.dumps(bundled))
    (run / "latency_int8.json").write_text(json.dumps(latency))


def test_cli_exit_codes(tmp_path: Path, capsys) -> None:
    _write(tmp_path, _eval(0.68, 0.67), _eval(0.67, 0.66), _latency(0.3))
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--budget-ms", "0.2"]) == 1
    assert "over the 0.2 ms budget" in capsys.readouterr().out
    (tmp_path / "eval_bundled.json").write_text("{not json")
    assert main([str(tmp_path)]) == 2
    assert "eval_bundled.json is not a readable JSON report" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
