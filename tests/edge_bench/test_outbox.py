"""edge-bench outbox: every mode and batch size is measured on a real store in the given
directory, nothing is left behind, and bad arguments are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_bench.cli import main
from edge_bench.outbox import MODES


def test_every_mode_and_batch_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["outbox", "--events", "120", "--batch", "1,40", "--dir", str(tmp_path), "--json"])
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["batch"]) for r in results] == [(m, b) for b in (1, 40) for m in MODES]
    for r in results:
        assert r["events"] == 120 and r["add_events_per_s"] > 0 and r["ack_events_per_s"] > 0
        assert r["add_cpu_us_per_event"] >= 0 and r["ack_cpu_us_per_event"] >= 0
    assert list(tmp_path.iterdir()) == []  # the stores went with the temp folder


@pytest.mark.parametrize("args", [["--events", "0"], ["--batch", "0"]])
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", *args]) == 2
    assert "must be >= 1" in capsys.readouterr().err
