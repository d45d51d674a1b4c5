"""Shared fixtures. Real components live in tests/fixtures/* (one module per component)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.mqtt", "tests.fixtures.rtsp"]

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the shared (never committed) data lives: $EDGE_DATA_DIR or ../shared/data."""
    return Path(os.environ.get("EDGE_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if not (d / "README.md").exists():
        pytest.skip(f"shared data not found at {d} (set EDGE_DATA_DIR); it is present in CI")
    return d


@pytest.fixture(scope="session")
def videos_dir(data_dir: Path) -> Path:
    return data_dir / "videos"
