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


# The judge stage's judge, training since collection (`pytest_collection_modifyitems`) when a
# chosen test asks for it: a JudgesTraining, or the error that stopped its start.
_training = None


def _start_training_the_judge():
    """The judge stage's judge, trained as it trains it (params.yaml `judge`, the calibration part
    of labels/), its members side by side in processes of their own."""
    import yaml

    from ebm.data import to_unit_range
    from ebm.judge import JudgesTraining
    from ebm.labels import judge_examples
    from pipeline_repo import ROOT
    from test_quality import _load

    digits = _load("data").fetch_bundled(test_fraction=0.2, seed=0)
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())["judge"]
    return JudgesTraining(
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


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have chosen the tests
def pytest_collection_modifyitems(config, items):
    """The tests that use the stage's judge go last, and its training starts now: it takes a few
    minutes of CPU, and the end-to-end tests before them leave a core idle most of the time
    (their stages run on one thread)."""
    global _training
    judged = [item for item in items if "stage_judge" in getattr(item, "fixturenames", ())]
    if judged and not config.option.collectonly:
        items[:] = [item for item in items if item not in judged] + judged
        try:
            _training = _start_training_the_judge()
        except Exception as error:  # raised by the fixture: the judge's tests fail, not the run
            _training = error


def pytest_unconfigure(config):
    """A run that ends before its judge is trained (interrupted, or failed first) stops it."""
    if _training is not None and not isinstance(_training, Exception):
        _training.cancel()


@pytest.fixture(scope="session")
def stage_judge():
    """The judge stage's judge (`_start_training_the_judge`), shared by test_controls and
    test_labels (test_quality's unit tests train a small one of their own)."""
    if isinstance(_training, Exception):
        raise _training
    return _training.result()
