"""End to end at the original journey's scale (`scale: seed`), on the CPU, with only sizes shrunk.

A user runs that scale with `dvc exp run -S scale=seed`; this module does the same in a throwaway
copy of the project, adding `-S` only for sizes (SHRINKS: epochs, digits, samples, chains, steps),
so every other value is that scale's own: batches of 128, the 8,192-slot replay buffer, its
sample_epochs list, `data.source: auto` and the Fashion-MNIST download. Every download goes to a
proxy that refuses it, so the run is offline on any machine, as it is here and in CI: `auto` must
fall back to the bundled digits and Fashion-MNIST must be skipped, each with its reason.
Checks what test_pipeline.py checks at the CPU scale, through DVC itself.
"""

import json

import pytest

from pipeline_repo import ENV, EXPERIMENTS, dvc, make_repo, overlaid_files

# The sizes, shrunk to seconds. A size given per scale is set at `.seed` only: the CPU scale's
# values stay as they are. 256 digits: two batches of 128 per epoch.
SHRINKS = {
    "data.download_timeout_s": 1,
    "abilities.ood.fashion_mnist.download_timeout_s": 1,  # fail over fast
    "train.train_subset": 256,
    "train.generated_chains": 12,
    "train.generated_steps": 5,
    "train.log_every": 1,
    "experiments.loss_collapse.epochs.seed": 1,
    "experiments.blob_collapse.epochs.seed": 1,
    "experiments.mode_collapse.epochs.seed": 1,
    "experiments.final_training.epochs.seed": 2,
    "long_run.epochs.seed": 1,
    "long_run.pool.chains": 16,
    "long_run.pool.steps": 5,
    "judge.epochs": 1,
    "evaluate.num_samples.seed": 48,
    "evaluate.fresh_steps": 5,
    "evaluate.batch_size": 48,
    "generate.steps": 20,
    "generate.snapshots": [0, 10, 20],
    "generate.chains.final_training.seed": 16,
    "generate.chains.long_run.seed": 16,
    "abilities.models": [
        "long_run"
    ],  # one stage: the final model's (the CPU-scale run tests final_training's)
    "abilities.completion.digits": 12,
    "abilities.completion.steps": 3,
    "abilities.denoise.digits": 12,
    "abilities.denoise.steps": 2,
    "abilities.ood.digits": 40,
    "abilities.ood.per_set": 20,
}
# A proxy on a closed local port refuses every connection at once: no 60,000 digits downloaded
# on a machine that happens to reach MNIST's hosts, no wait on one whose DNS hangs.
PROXY = "http://127.0.0.1:9"
OFFLINE = {
    **ENV,
    "HTTP_PROXY": PROXY,
    "HTTPS_PROXY": PROXY,
    "http_proxy": PROXY,
    "https_proxy": PROXY,
    "NO_PROXY": "",
    "no_proxy": "",
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The project as committed (`scale: cpu`), then `dvc exp run -S scale=seed` with the
    shrinks."""
    where = make_repo(tmp_path_factory.mktemp("seed") / "repo", edit=lambda params: params)
    sets = [
        arg
        for key, value in {"scale": "seed", **SHRINKS}.items()
        for arg in ("-S", f"{key}={json.dumps(value)}")
    ]
    dvc("exp", "run", *sets, cwd=where, env=OFFLINE)
    return where


def metrics_of(repo, *targets):
    shown = json.loads(dvc("metrics", "show", "--json", *targets, cwd=repo).stdout)
    return next(iter(shown.values()))["data"]


def test_params_diff_is_the_scale_and_the_shrinks(repo):
    """`dvc params diff` against the committed params: the scale and the sizes, nothing else."""
    diff = json.loads(dvc("params", "diff", "--json", cwd=repo).stdout)["params.yaml"]
    assert diff.pop("scale") == {"old": "cpu", "new": "seed"}
    shown = {
        key: str(value) if isinstance(value, list) else value for key, value in SHRINKS.items()
    }
    assert {
        key: change["new"] for key, change in diff.items()
    } == shown  # DVC prints a list as its text


def test_metrics_show_the_seed_scale_run(repo):
    """Every step ran, with the seed scale's buffer and batches, on the bundled digits after
    auto's fallback; Fashion-MNIST is skipped with the reason; exp 4's verdict found exp 5's
    generated samples at its own last iteration (in the seed scale's sample_epochs)."""
    headline = metrics_of(repo)["metrics/headline.json"]["data"]
    steps = [*EXPERIMENTS, "long_run", "generation", "abilities"]
    assert list(headline) == [f"{number}_{name}" for number, name in enumerate(steps, 1)]
    assert headline["1_initial_attempt"] == {"verdict": "agrees", "status": "expected_error"}
    assert "entropy_exp5" in headline["4_mode_collapse"]
    assert headline["7_generation"]["model"] == headline["8_abilities"]["model"] == "long_run"
    data = metrics_of(
        repo,
        "metrics/data.json",
        "metrics/train",
        "metrics/eval",
        "metrics/generate",
        "metrics/abilities",
    )
    record = data["metrics/data.json"]["data"]
    assert (record["requested_source"], record["source"]) == ("auto", "bundled") and record[
        "fallback_reason"
    ]
    for name in [*EXPERIMENTS[1:], "long_run"]:
        train = data[f"metrics/train/{name}.json"]["data"]
        assert train["status"] == "ok" and train["buffer_capacity"] == 8192, (name, train)
    # 256 / 128, 2 epochs
    assert data["metrics/train/final_training.json"]["data"]["iterations"] == 2 * 2
    assert data["metrics/eval/final_training.json"]["data"]["num_samples"] == 48
    assert {"metrics/generate/final_training.json", "metrics/generate/long_run.json"} <= set(data)
    fashion = data["metrics/abilities/long_run.json"]["data"]["ood"]["fashion_mnist"]
    assert fashion["skipped"].startswith("torchvision could not download it"), fashion


def test_sample_epochs_beyond_the_run_are_skipped(repo):
    """The seed scale's sample_epochs (1, 5, 10, ...) on a 2-epoch run: epoch 1, and the last."""

    def grids(name):
        return sorted(
            path.name for path in (repo / "plots/samples" / name).glob("generated_epoch_*.png")
        )

    assert grids("final_training") == ["generated_epoch_001.png", "generated_epoch_002.png"]
    assert grids("long_run") == ["generated_epoch_001.png"]  # its list is 1-4, its run 1 epoch


def test_plots_show_overlays_the_experiments(repo):
    shown = json.loads(dvc("plots", "show", "--json", cwd=repo).stdout)["data"]
    for quantity in ["loss", "e_neg", "negatives_class_entropy", "generated_recognisable"]:
        assert overlaid_files(shown, quantity) == {
            f"{name}.csv" for name in [*EXPERIMENTS[1:], "long_run"]
        }
    images = [key for key in shown if key.endswith(".png")]
    assert any("plots/generate/final_training/hq_samples_k20.png" in key for key in images)
    assert any("plots/abilities/long_run/energy_hist.png" in key for key in images)


def test_report_names_the_scale(repo):
    report = (repo / "report/index.md").read_text()
    assert "reproduces it at scale seed" in report and "| scale (params.yaml) | seed |" in report
    assert "fell back" in report  # the provenance table says where the digits came from
