"""The install decision of scripts/ship_model.sh (pure logic on report dicts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.ship_gate import ShipGateError, decide, main


def _model(acc: float, f1: float, n: int = 2812) -> dict:
    return {"items": n, "accuracy": acc, "macro_f1_present": f1}


def _e2e(new: dict, old: dict, conditions: dict | None = None) -> dict:
    report: dict = {"inthewild": {"models": {"candidate": new, "bundled": old}}}
    if conditions is not None:
        report["conditions"] = {
            "models": {
                "candidate": {c: {"accuracy": a} for c, a in conditions.items()},
                "bundled": {c: {"accuracy": 0.5} for c in conditions},
            }
        }
    return report


def _latency(ms_1x1: float) -> dict:
    return {
        "results": [
            {"threads": 1, "batch": 1, "median_ms_per_face": ms_1x1},
            {"threads": 2, "batch": 1, "median_ms_per_face": ms_1x1 / 2},
        ]
    }


def test_better_end_to_end_keeping_f1_and_fast_enough_installs() -> None:
    v = decide(_e2e(_model(0.90, 0.60), _model(0.61, 0.33)), _latency(0.35), 0.5)
    assert v.install
    assert "0.9000 > 0.6100" in v.reason and "0.350 ms" in v.reason


def test_accuracy_bought_with_the_rare_classes_does_not_install() -> None:
    # More accurate (neutral and happy) but a lower macro F1: fear/sad/angry paid.
    v = decide(_e2e(_model(0.92, 0.40), _model(0.88, 0.45)), _latency(0.35), 0.5)
    assert not v.install and "macro F1 0.400 is below" in v.reason


def test_a_tie_or_a_noise_sized_gain_does_not_install() -> None:
    assert not decide(_e2e(_model(0.88, 0.5), _model(0.88, 0.5)), _latency(0.3), 0.5).install
    v = decide(_e2e(_model(0.882, 0.5), _model(0.880, 0.5)), _latency(0.3), 0.5)
    assert not v.install and "by 0.3 points (gain +0.20)" in v.reason
    # The margin is a parameter: with none, any strict gain installs.
    assert decide(_e2e(_model(0.882, 0.5), _model(0.880, 0.5)), _latency(0.3), 0.5, 0.0).install


def test_a_camera_condition_that_breaks_the_model_does_not_install() -> None:
    cond = {"clean": 0.80, "noise": 0.78, "eye_band": 0.65}
    v = decide(_e2e(_model(0.9, 0.6), _model(0.6, 0.3), cond), _latency(0.3), 0.5)
    assert not v.install and "eye_band costs 15.0 accuracy points" in v.reason
    assert decide(
        _e2e(_model(0.9, 0.6), _model(0.6, 0.3), cond), _latency(0.3), 0.5, 0.3, 20
    ).install


def test_over_the_latency_budget_does_not_install_and_every_reason_is_given() -> None:
    v = decide(_e2e(_model(0.6, 0.3), _model(0.88, 0.45)), _latency(0.76), 0.5)
    assert not v.install
    assert "does not beat" in v.reason and "macro F1" in v.reason and "0.760 ms" in v.reason
    v = decide(_e2e(_model(0.95, 0.6), _model(0.88, 0.45)), _latency(0.76), 0.5)
    assert not v.install and "does not beat" not in v.reason


def test_on_a_slower_machine_the_same_cost_as_the_bundled_model_passes() -> None:
    better = _e2e(_model(0.95, 0.6), _model(0.88, 0.45))
    # Over the absolute budget, but no slower than today's model measured beside it.
    v = decide(better, _latency(1.12), 0.5, reference_latency=_latency(1.10))
    assert v.install and "bundled 1.100 ms beside it" in v.reason
    # Slower than the bundled one by more than the slack: refused, saying both.
    v = decide(better, _latency(1.40), 0.5, reference_latency=_latency(1.10))
    assert not v.install and "slower than the bundled model's 1.100 ms" in v.reason


def test_reports_without_what_the_verdict_needs_are_refused_by_name() -> None:
    with pytest.raises(ShipGateError, match=r"'bundled'.*trainer\.evaluate_e2e"):
        decide({"inthewild": {"models": {"candidate": _model(0.9, 0.5)}}}, _latency(0.3), 0.5)
    with pytest.raises(ShipGateError, match="different photos"):
        decide(_e2e(_model(0.9, 0.5, 100), _model(0.8, 0.4)), _latency(0.3), 0.5)
    with pytest.raises(ShipGateError, match="threads=1 batch=1"):
        decide(_e2e(_model(0.9, 0.5), _model(0.8, 0.4)), {"results": []}, 0.5)


def _write(run: Path, e2e: dict, latency: dict) -> None:
    run.mkdir(exist_ok=True)
    (run / "e2e.json").write_text(json.dumps(e2e))
    (run / "latency_int8.json").write_text(json.dumps(latency))


def test_cli_exit_codes(tmp_path: Path, capsys) -> None:
    _write(tmp_path, _e2e(_model(0.9, 0.6), _model(0.6, 0.3)), _latency(0.3))
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--budget-ms", "0.2"]) == 1
    assert "over the 0.2 ms budget" in capsys.readouterr().out
    (tmp_path / "e2e.json").write_text("{not json")
    assert main([str(tmp_path)]) == 2
    assert "e2e.json is not a readable JSON report" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
