"""End to end: the whole pipeline at a tiny scale in a temporary git + DVC repo.

Checks what a user sees through DVC itself: `dvc repro`, `dvc metrics show`,
`dvc params diff`, `dvc plots show`, and that changing one experiment's value reruns
that experiment and what depends on it, nothing else.
"""

import json
import re

import pytest

from pipeline_repo import EXPERIMENTS, FINAL_EPOCHS, copy_of, dvc, edit_params, overlaid_files


@pytest.fixture(scope="module")
def repo(built, tmp_path_factory):
    """A copy of the session's tiny run (tests/conftest.py), for this module to change."""
    return copy_of(built, tmp_path_factory.mktemp("pipeline") / "repo")


def metrics_of(repo, *targets):
    shown = json.loads(dvc("metrics", "show", "--json", *targets, cwd=repo).stdout)
    return next(iter(shown.values()))["data"]


def test_metrics_show_prints_the_headline(repo):
    """`dvc metrics show` (and so `dvc exp show`) prints the one declared file: each step's
    verdict."""
    data = metrics_of(repo)
    assert list(data) == ["metrics/headline.json"]
    headline = data["metrics/headline.json"]["data"]
    steps = [*EXPERIMENTS, "long_run", "generation", "abilities"]
    assert list(headline) == [f"{number}_{name}" for number, name in enumerate(steps, 1)]
    assert {
        "auroc_uniform_noise",
        "auroc_inverted",
        "lower_half_acc",
        "lower_half_acc_mean",
    } <= set(headline["8_abilities"])
    assert headline["1_initial_attempt"] == {"verdict": "agrees", "status": "expected_error"}
    assert all(
        isinstance(headline[f"{number}_{name}"]["verdict"], str)
        for number, name in enumerate(steps[:-1], 1)
    )
    assert headline["7_generation"]["model"] == "final_training"


def test_metrics_show_tells_each_experiment(repo):
    data = metrics_of(
        repo,
        "metrics/data.json",
        "metrics/judge.json",
        "metrics/train",
        "metrics/eval",
        "metrics/generate",
    )
    train = {name: data[f"metrics/train/{name}.json"]["data"] for name in EXPERIMENTS}
    assert train["initial_attempt"]["status"] == "expected_error"
    assert "element 0 of tensors does not require grad" in train["initial_attempt"]["error"]
    for name in EXPERIMENTS[1:]:
        assert train[name]["status"] == "ok" and train[name]["iterations"] > 0
    assert data["metrics/data.json"]["data"]["source"] == "bundled"
    assert 0 <= data["metrics/judge.json"]["data"]["test_accuracy"] <= 1
    evaluation = data["metrics/eval/final_training.json"]["data"]
    for kind in ("fresh", "buffer"):  # every figure, beside the real line
        assert {
            "density",
            "coverage",
            "recognisable",
            "typical",
            "typical_vs_real",
            "class_entropy",
            "min_class_coverage",
            "ink",
            "saturated",
        } <= set(evaluation[kind])
    assert (
        evaluation["real"]["fld"] < evaluation["real"]["fld_ceiling"]
        and evaluation["real"]["density"] > 0
    )
    assert data["metrics/eval/initial_attempt.json"]["data"]["status"] == "no_model"
    assert "metrics/generate/final_training.json" in data


def test_outputs_on_disk(repo):
    assert (repo / "plots/generate/final_training/hq_samples_k20.png").is_file()
    assert (repo / f"plots/samples/final_training/samples_epoch_{FINAL_EPOCHS:03d}.png").is_file()
    assert (repo / "report/index.html").is_file()


def test_plots_show_overlays_the_experiments(repo):
    shown = json.loads(dvc("plots", "show", "--json", cwd=repo).stdout)["data"]
    for quantity in ["loss", "e_pos", "e_neg", "reg", "r1", "grad_norm", "lr"]:
        assert quantity in shown, f"no plot {quantity}: {sorted(shown)[:20]}"
        # exp 1 stops before its first step
        assert overlaid_files(shown, quantity) == {
            f"{name}.csv" for name in [*EXPERIMENTS[1:], "long_run"]
        }
    # the judge's view, per epoch
    for quantity in ["negatives_class_entropy", "negatives_coverage"]:
        assert overlaid_files(shown, quantity) == {
            f"{name}.csv" for name in [*EXPERIMENTS[1:], "long_run"]
        }
    images = [key for key in shown if key.endswith(".png")]
    assert any("hq_samples_k20.png" in key for key in images)
    assert any("plots/samples/final_training" in key for key in images)


def test_abilities_show_in_metrics_plots_and_report(repo):
    figures = metrics_of(repo, "metrics/abilities")["metrics/abilities/final_training.json"]["data"]
    for region in ("lower_half", "right_half", "square"):
        assert set(figures["completion"][region]["accuracy"]) == {
            "ebm",
            "background",
            "mean",
            "nearest",
        }
    assert set(figures["denoise"]["sigma_0.3"]["psnr"]) == {"noisy", "ebm", "median"}
    assert 0 <= figures["ood"]["uniform_noise"]["auroc"]["energy"] <= 1
    # download off at cpu
    assert figures["ood"]["fashion_mnist"]["skipped"].startswith("no local copy")
    shown = json.loads(dvc("plots", "show", "--json", cwd=repo).stdout)["data"]
    pictures = {key.rsplit("/", 1)[-1] for key in shown if "plots/abilities/final_training" in key}
    assert pictures == {
        "completion_lower_half.png",
        "completion_right_half.png",
        "completion_square.png",
        "denoise.png",
        "energy_hist.png",
    }
    report = (repo / "report/index.md").read_text()
    assert "../plots/abilities/final_training/energy_hist.png" in report
    assert (
        "The energy loses to the judge's max softmax" in report
        or "The energy beats the judge's" in report
    )


def test_changing_one_experiment_reruns_only_it(repo):
    edit_params(repo, lambda p: p["experiments"]["mode_collapse"]["loss"].update(r1_weight=0.2))
    diff = json.loads(dvc("params", "diff", "--json", cwd=repo).stdout)
    changed = {key: (v["old"], v["new"]) for key, v in diff["params.yaml"].items()}
    assert changed == {"experiments.mode_collapse.loss.r1_weight": (0.1, 0.2)}
    out = dvc("repro", cwd=repo).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"check_params", "train@mode_collapse", "evaluate@mode_collapse", "report"}, out
