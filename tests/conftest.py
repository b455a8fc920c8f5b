import pytest


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The whole pipeline at the tiny scale after one `dvc repro`, committed: shared by the
    end-to-end modules, which copy it (pipeline_repo.copy_of) before changing anything."""
    from pipeline_repo import built_repo

    return built_repo(tmp_path_factory.mktemp("built"))


@pytest.fixture(scope="session")
def digits():
    """The data stage's split of the bundled digits."""
    from test_quality import _load

    return _load("data").fetch_bundled(test_fraction=0.2, seed=0)


# The judge's training, started at collection (`pytest_collection_modifyitems`) when a chosen
# test asks for it: a function that waits for it and returns the judges.
_judges_training = None


def _start_training_the_judge():
    """The judge stage's judge, trained as it trains it (params.yaml `judge`, the calibration part
    of labels/), its members side by side in processes of their own."""
    import yaml

    from ebm.data import to_unit_range
    from ebm.judge import start_training_judges
    from ebm.labels import judge_examples
    from pipeline_repo import ROOT
    from test_quality import _load

    digits = _load("data").fetch_bundled(test_fraction=0.2, seed=0)
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())["judge"]
    return start_training_judges(
        to_unit_range(digits["x_train"]),
        digits["y_train"],
        cfg["seed"],
        cfg["members"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        max_shift=cfg["max_shift"],
        non_digit_ratio=cfg["non_digits"],
        read_by_eye=judge_examples(ROOT / "labels") if cfg["read_by_eye"] else None,
        read_by_eye_per_batch=cfg["read_by_eye"],
    )


def pytest_collection_modifyitems(config, items):
    """The tests that use the judge go last, and its training starts now: it takes a few minutes
    of CPU, and the end-to-end tests before them leave a core idle most of the time (their
    stages run on one thread)."""
    global _judges_training
    judged = [item for item in items if "judge" in getattr(item, "fixturenames", ())]
    if judged:
        items[:] = [item for item in items if item not in judged] + judged
        _judges_training = _start_training_the_judge()


@pytest.fixture(scope="session")
def judge():
    """The judge stage's judge (`_start_training_the_judge`), shared by test_controls,
    test_labels and test_quality."""
    return _judges_training()
