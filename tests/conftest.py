import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "stages"))


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The whole pipeline at the tiny scale after one `dvc repro`, committed: shared by the
    end-to-end modules, which copy it (pipeline_repo.copy_of) before changing anything."""
    from pipeline_repo import built_repo

    return built_repo(tmp_path_factory.mktemp("built"))
