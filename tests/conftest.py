import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures"
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    # One intra-op thread per test worker: workers that each start a thread per core only spin against each other.
    torch.set_num_threads(1)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def fixture_maps() -> list[Path]:
    return sorted((FIXTURES / "songs").rglob("*.osu"))


@pytest.fixture(scope="session")
def replay_cache(tmp_path_factory) -> Path:
    """A replay cache prepared from the fixture songs and replays (three paired, one without its map); read only."""
    from data.prepare import main as prepare_main

    out = tmp_path_factory.mktemp("replay_cache")
    assert prepare_main(["--input", str(FIXTURES / "songs"), "--output", str(out), "--workers", "1",
                         "--no-progress", "--replays", str(FIXTURES / "replays")]) == 0  # fmt: skip
    return out
