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


@pytest.fixture(scope="session")
def judge(digits):
    """The judge stage's judge, trained as it trains it (params.yaml `judge`, the calibration part
    of labels/; about two minutes on 2 cores), shared by test_controls and test_labels."""
    import yaml

    from ebm.data import to_unit_range
    from ebm.judge import train_judges
    from ebm.labels import judge_examples
    from pipeline_repo import ROOT

    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())["judge"]
    return train_judges(
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
