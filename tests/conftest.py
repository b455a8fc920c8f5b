import pytest


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The whole pipeline at the tiny scale after one `dvc repro`, committed: shared by the
    end-to-end modules, which copy it (pipeline_repo.copy_of) before changing anything."""
    from pipeline_repo import built_repo

    return built_repo(tmp_path_factory.mktemp("built"))
