"""Shared fixtures: paths to the real reference files and a small synthetic world generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEAL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny` synthetic world, generated once for the whole test session (seconds)."""
    from seal_transfer.data.synthetic.config import SynthConfig
    from seal_transfer.data.synthetic.world import ensure_world

    cache = tmp_path_factory.mktemp("world_cache")
    return Path(ensure_world(SynthConfig(preset="tiny", seed=0), cache))
