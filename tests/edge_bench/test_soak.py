"""The 3-minute soak (the 30-minute one is `edge-bench soak`, run by hand)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_bench.soak import growth, run_soak


def test_growth_uses_medians_after_warmup() -> None:
    flat = [100.0] * 10 + [101.0, 99.0] * 10
    assert abs(growth(flat)) < 0.01
    leak = [100.0 + i for i in range(50)]
    assert 0.2 < growth(leak) < 0.3  # (144.5 - 114.5) / 114.5


@pytest.mark.measure
def test_three_minute_soak_four_streams(record_property: Any) -> None:
    result = run_soak(minutes=3, streams=4, fps=25, interval_s=3)
    for key in ("rss_growth", "fds_growth", "threads_growth", "rss_mb_max"):
        record_property(key, result.get(key))
    assert result["samples"] >= 50
    assert result["ok"], {k: v for k, v in result.items() if k != "series"}
    assert result["rss_growth"] < 0.05 and result["fds_growth"] < 0.05
