"""Trustworthy runs, checked on tiny temporary git + DVC copies of the project (CPU only).

  * a training stage killed with SIGKILL resumes under `dvc repro` and ends with exactly
    the numbers of an uninterrupted run;
  * the same params and seed give the same metrics, curves and grids (training and evaluation);
  * a diverging run stops with status "diverged", keeps its last good checkpoint, and the
    evaluation and the report carry on;
  * a digits file that does not match its recorded hash stops a stage in one line;
  * a bad params.yaml stops `dvc repro` at check_params, before DVC deletes any output;
    a stage killed mid-run has lost only what `git checkout -- metrics plots report` restores;
  * a sweep on DVC's queue runs in parallel workers and reruns only what changed;
  * `torchrun --nproc_per_node 2` trains data-parallel (gloo) and resumes;
  * long_run's checkpoint keeps the moving average of its weights, and a resume restores it.

Params validation itself is in test_params.py.
"""

import hashlib
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
import torch

from ebm.config import LongRun
from ebm.params import typed
from pipeline_repo import ENV, FINAL_EPOCHS, copy_of, dvc, edit_params, run, stage_script

TRAIN_TIMINGS = {"wall_time_s", "langevin_img_steps_per_s"}
EVAL_TIMINGS = {"wall_time_s", "fresh_sampling_s"}
CHECKPOINT = "checkpoints/final_training/checkpoint.pt"


@pytest.fixture(scope="module")
def reference(built):
    """final_training's outputs from the uninterrupted run (`dvc repro`): what every rerun must
    match."""
    return train_outputs(built), eval_outputs(built)


@pytest.fixture
def repo(built, tmp_path):
    """A private copy of `built`, free to break."""
    return copy_of(built, tmp_path / "repo")


def fresh(where):
    """Forget final_training's checkpoint (a persistent output): the next run starts from
    scratch."""
    shutil.rmtree(where / "checkpoints/final_training")
    return where


def tree(where):
    """Every file outside .git and .dvc, with a hash of its bytes."""
    return {
        str(p.relative_to(where)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(where.rglob("*"))
        if p.is_file() and not {".git", ".dvc", "__pycache__"} & set(p.relative_to(where).parts)
    }


def python(*args, cwd, check=True):
    return run([sys.executable, *args], cwd, check)


def read_json(path):
    return json.loads(path.read_text())


def train_outputs(where):
    """What a training run produced, less its timings: metrics, curve, sample grids."""
    metrics = read_json(where / "metrics/train/final_training.json")
    grids = {
        p.name: p.read_bytes()
        for p in sorted((where / "plots/samples/final_training").glob("*.png"))
    }
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in TRAIN_TIMINGS},
        "curve": (where / "plots/train/final_training.csv").read_text(),
        "grids": grids,
    }


def eval_outputs(where):
    metrics = read_json(where / "metrics/eval/final_training.json")
    grids = {
        p.name: p.read_bytes() for p in sorted((where / "plots/eval/final_training").glob("*.png"))
    }
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in EVAL_TIMINGS},
        "classes": (where / "plots/eval/final_training_classes.csv").read_text(),
        "grids": grids,
    }


def checkpoint_epoch(where):
    return torch.load(where / CHECKPOINT, map_location="cpu", weights_only=True)["epoch"]


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


# ---- exact resume after SIGKILL ---------------------------------------------------------


def test_sigkill_then_dvc_repro_resumes_to_the_same_numbers(repo, reference, tmp_path):
    fresh(repo)
    log = tmp_path / "killed.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", "train@final_training"],
            cwd=repo,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while not (repo / CHECKPOINT).exists():  # written (atomically) at the end of epoch 1
                assert proc.poll() is None, (
                    f"dvc ended before the first checkpoint:\n{log.read_text()}"
                )
                assert time.monotonic() < deadline, "no checkpoint after 300 s"
                time.sleep(0.02)
            time.sleep(0.3)  # into epoch 2
            trainers = [
                p
                for p in psutil.Process(proc.pid).children(recursive=True)  # python, not a shell
                if p.cmdline()[1:2] == ["stages/train.py"]
            ]
            assert len(trainers) == 1, trainers
            trainers[0].send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    killed = log.read_text()
    # DVC reports the kill as -9 when it runs python directly, as 137 (128 + 9) when a shell sits
    # between.
    assert proc.returncode != 0 and ("exited with -9" in killed or "exited with 137" in killed), (
        killed
    )
    epoch = checkpoint_epoch(repo)
    assert 1 <= epoch < FINAL_EPOCHS, (
        f"the kill landed after the run ended (checkpoint epoch {epoch})"
    )
    interrupted = read_json(repo / "metrics/train/final_training.json")
    assert (interrupted["status"], interrupted["epochs_done"]) == ("running", epoch)

    # no stale lock: dvc itself exited normally
    resumed = dvc("repro", "train@final_training", cwd=repo)
    assert (
        f"train: resuming final_training from checkpoints/final_training/checkpoint.pt at epoch "
        f"{epoch}" in resumed.stderr
    ), resumed.stderr
    after_resume = train_outputs(repo)
    assert (
        after_resume["metrics"]["status"] == "ok"
        and after_resume["metrics"]["epochs_done"] == FINAL_EPOCHS
    )
    assert checkpoint_epoch(repo) == FINAL_EPOCHS
    assert after_resume == reference[0]  # the uninterrupted run of the same params
    assert dvc("status", "train@final_training", cwd=repo).stdout.startswith(
        "Data and pipelines are up to date"
    )


# ---- determinism -------------------------------------------------------------------------


def test_same_params_and_seed_give_the_same_numbers(repo, reference):
    fresh(repo)  # else the rerun just resumes the finished checkpoint
    python("stages/train.py", "final_training", cwd=repo)
    python("stages/evaluate.py", "final_training", cwd=repo)
    (train_a, eval_a), (train_b, eval_b) = reference, (train_outputs(repo), eval_outputs(repo))
    assert (
        train_a["metrics"]["status"] == "ok"
        and train_a["metrics"]["iterations"] == FINAL_EPOCHS * 8
    )
    # log_every 1: one row per iteration
    assert len(train_a["curve"].splitlines()) == 1 + FINAL_EPOCHS * 8
    assert train_a == train_b
    assert eval_a["metrics"]["status"] == "ok" and eval_a["metrics"]["fresh"]["fld"] is not None
    assert eval_a == eval_b


# ---- divergence guard --------------------------------------------------------------------


def test_energy_beyond_max_abs_energy_stops_the_run(repo):
    # a config-only trigger, in a copy that holds the committed run's checkpoint (other params)
    edit_params(repo, lambda p: p["experiments"]["final_training"].update(max_abs_energy=1e-6))
    done = python("stages/train.py", "final_training", cwd=repo)  # check: exit status 0
    metrics = read_json(repo / "metrics/train/final_training.json")
    assert (
        metrics["status"] == "diverged"
        and metrics["epochs_done"] == 0
        and metrics["iterations"] == 0
    )
    assert (
        metrics["error"].startswith("epoch 1: ") and "max_abs_energy 1e-06" in metrics["error"]
    ), metrics
    assert "final_training diverged" in done.stderr and "starting afresh" in done.stderr
    # no good epoch of its own: the other params' checkpoint must not pass for this run's model
    assert not (repo / CHECKPOINT).exists(), done.stderr

    python("stages/evaluate.py", "final_training", cwd=repo)
    record = read_json(repo / "metrics/eval/final_training.json")
    assert (record["status"], record["train_status"]) == ("no_model", "diverged")


BLOW_UP_IN_EPOCH_2 = textwrap.dedent("""
    import sys
    import torch
    sys.path.insert(0, "stages")
    sys.argv = ["stages/train.py", "final_training"]
    import train

    run_epoch = train.Experiment.run_epoch

    def blow_up_in_epoch_2(self, images, progress):
        if self.epoch == 1:          # epoch 1 is done and checkpointed: push every energy to ~1e4
            with torch.no_grad():
                self.net.body[-1].bias.add_(1e4)
        return run_epoch(self, images, progress)

    train.Experiment.run_epoch = blow_up_in_epoch_2
    train.run_stage(train.main)
""")


def test_divergence_in_epoch_2_keeps_epoch_1_and_is_reported(repo, reference):
    fresh(repo)
    done = python("-c", BLOW_UP_IN_EPOCH_2, cwd=repo)  # check: exit status 0
    metrics = read_json(repo / "metrics/train/final_training.json")
    assert metrics["status"] == "diverged" and metrics["epochs_done"] == 1, metrics
    assert (
        metrics["error"].startswith("epoch 2: ")
        and "beyond max_abs_energy 1000.0" in metrics["error"]
    ), metrics
    assert "the last good checkpoint is kept" in done.stderr
    assert checkpoint_epoch(repo) == 1
    curve = (repo / "plots/train/final_training.csv").read_text().splitlines()
    assert len(curve) == 1 + 8  # epoch 1's iterations only

    evaluated = python("stages/evaluate.py", "final_training", cwd=repo)
    record = read_json(repo / "metrics/eval/final_training.json")
    assert (record["status"], record["train_status"], record["checkpoint_epoch"]) == (
        "diverged",
        "diverged",
        1,
    )
    assert "'status': 'diverged'" in evaluated.stdout

    python("stages/report.py", cwd=repo)
    report = (repo / "report/index.md").read_text()
    assert "diverged" in report and "beyond max_abs_energy 1000.0" in report
    assert (repo / "report/index.html").is_file()

    # the kept checkpoint is a good one: the unpatched rerun resumes from it and finishes
    rerun = python("stages/train.py", "final_training", cwd=repo)
    assert (
        "resuming final_training from checkpoints/final_training/checkpoint.pt at epoch 1"
        in rerun.stderr
    )
    assert train_outputs(repo) == reference[0]


# ---- data integrity ----------------------------------------------------------------------


def change_one_pixel(path):
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["x_train"][0, 14, 14] ^= 1
    path.unlink()  # never write through a link into DVC's cache
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    "args", [["stages/train.py", "final_training"], ["stages/judge.py"]], ids=["train", "judge"]
)
def test_stage_refuses_digits_that_do_not_match_their_record(repo, args):
    # still valid digits, but not the ones the data stage wrote
    change_one_pixel(repo / "data/mnist.npz")
    before = tree(repo)
    done = python(*args, cwd=repo, check=False)
    assert done.returncode == 1, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: data/mnist.npz: contents do not match the hash recorded in metrics/data.json ("
    ), lines[0]
    assert lines[0].endswith("rerun `dvc repro data`"), lines[0]
    assert tree(repo) == before  # no output written or changed


# ---- a rejected or killed run keeps the outputs -------------------------------------------


def outputs(where):
    """Every file under metrics/, plots/ and report/, with a hash of its bytes."""
    return {
        k: v for k, v in tree(where).items() if k.split("/")[0] in ("metrics", "plots", "report")
    }


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p["train"]["sampler"].update(stepz=60), "unknown key train.sampler.stepz"),
        (
            lambda p: p["experiments"]["final_training"]["buffer"].update(restart_prob=1.5),
            "experiments.final_training.buffer.restart_prob = 1.5",
        ),
        (lambda p: p["evaluate"].update(num_samples=0), "evaluate.num_samples = 0"),
    ],
    ids=["unknown key", "experiment value", "evaluate value"],
)
def test_bad_params_stop_dvc_repro_before_any_output_is_deleted(repo, change, key):
    with open(repo / "report/index.md", "a") as report:  # an uncommitted output survives too
        report.write("an edit that is in no commit\n")
    edit_params(repo, change)
    before = outputs(repo)
    done = dvc("repro", cwd=repo, check=False)
    assert done.returncode != 0
    assert re.findall(r"Running stage '([^']+)'", done.stdout) == ["check_params"], done.stdout
    ours = [line for line in error_lines(done.stdout + done.stderr) if line.startswith("error: ")]
    assert len(ours) == 1 and ours[0].startswith("error: params.yaml: ") and key in ours[0], (
        done.stderr
    )
    assert outputs(repo) == before


def running(process, script):
    try:
        return process.cmdline()[1:2] == [script]
    except psutil.NoSuchProcess:  # a short-lived child (git, a shell) that ended meanwhile
        return False


def test_a_killed_stage_s_outputs_come_back_with_git_checkout(repo, tmp_path):
    # valid: every evaluate stage reruns
    edit_params(repo, lambda p: p["evaluate"].update(fresh_steps=6))
    before = outputs(repo)
    with open(tmp_path / "killed.log", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=repo,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline, evaluators = time.monotonic() + 120, []
            while not evaluators:
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "no evaluation after 120 s"
                evaluators = [
                    p
                    for p in psutil.Process(proc.pid).children(recursive=True)
                    if running(p, "stages/evaluate.py")
                ]
                time.sleep(0.02)
            evaluators[0].send_signal(signal.SIGKILL)
            assert proc.wait(timeout=120) != 0
        finally:
            if proc.poll() is None:
                proc.kill()
    lost = set(before) - set(outputs(repo))
    # DVC deleted them before the run
    assert lost and all(name.split("/")[1] == "eval" for name in lost), lost
    run(["git", "checkout", "--", "metrics", "plots", "report"], repo)
    assert outputs(repo) == before


# ---- sweeps on DVC's queue ---------------------------------------------------------------


def test_queued_sweep_runs_in_parallel_workers(repo, tmp_path):
    where = repo  # the whole journey reproduced and committed
    assert (
        dvc("status", cwd=where).stdout.strip().startswith("Data and pipelines are up to date")
    ), "the committed run is not up to date"

    names = {}
    for noise in (0.005, 0.02):
        queued = dvc(
            "exp",
            "run",
            "--queue",
            "-S",
            f"experiments.final_training.sampler.noise_std={noise}",
            cwd=where,
        )
        names[re.search(r"Queued experiment '([^']+)'", queued.stdout).group(1)] = noise
    try:
        with open(
            tmp_path / "queue-start.log", "w"
        ) as log:  # not a pipe: the workers inherit it and live on
            started = subprocess.run(
                [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
                cwd=where,
                env=ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
        start_log = (tmp_path / "queue-start.log").read_text()
        assert (
            started.returncode == 0
            and "Started '2' new experiments task queue workers" in start_log
        ), start_log
        deadline = time.monotonic() + 420
        while True:
            status = dvc("queue", "status", cwd=where).stdout
            states = {
                name: re.search(rf"\b{name}\b\s+.*?\b(Queued|Running|Success|Failed)\b", status)
                for name in names
            }
            states = {name: match and match.group(1) for name, match in states.items()}
            if all(state in ("Success", "Failed") for state in states.values()):
                break
            assert time.monotonic() < deadline, f"the queue did not finish in 420 s:\n{status}"
            time.sleep(5)  # each `dvc queue status` costs the workers CPU
        logs = {name: dvc("queue", "logs", name, cwd=where, check=False).stdout for name in names}
        assert set(states.values()) == {"Success"}, f"{status}\n" + "\n".join(logs.values())
    finally:
        dvc("queue", "stop", "--kill", cwd=where, check=False)

    for name, log in logs.items():
        ran = set(re.findall(r"Running stage '([^']+)'", log))
        assert ran == {
            "check_params",
            "train@final_training",
            "long_run",
            "evaluate@final_training",
            "generate@final_training",
            "abilities@final_training",
            "report",
        }, log
        # the committed checkpoint
        assert "made with other params, data or world size; starting afresh" in log

    shown = json.loads(dvc("exp", "show", "--json", cwd=where).stdout)
    baseline = next(rev for rev in shown if rev["rev"] != "workspace")
    experiments = {e["name"]: e["revs"][0]["data"] for e in baseline["experiments"] or []}
    assert set(experiments) == set(names), experiments.keys()
    revs = {e["name"]: e["revs"][0]["rev"] for e in baseline["experiments"]}

    def committed(rev, path):  # a detailed metrics file as the experiment's commit holds it
        return json.loads(run(["git", "show", f"{rev}:{path}"], where).stdout)

    base = baseline["rev"]
    for name, data in experiments.items():
        params = data["params"]["params.yaml"]["data"]
        assert params["experiments"]["final_training"]["sampler"]["noise_std"] == names[name]
        headline = data["metrics"]["metrics/headline.json"]["data"]  # the one declared metrics file
        assert headline["5_final_training"]["verdict"] and list(data["metrics"]) == [
            "metrics/headline.json"
        ]
        train = committed(revs[name], "metrics/train/final_training.json")
        assert train["status"] == "ok" and train["epochs_done"] == FINAL_EPOCHS
        assert committed(revs[name], "metrics/eval/final_training.json")["status"] == "ok"
        assert (
            train["final_loss"]
            != committed(base, "metrics/train/final_training.json")["final_loss"]
        )
        assert committed(revs[name], "metrics/train/mode_collapse.json") == committed(
            base, "metrics/train/mode_collapse.json"
        )


# ---- data-parallel training under torchrun -----------------------------------------------


def test_torchrun_two_processes_train_and_resume(repo):
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "stages/train.py",
        "final_training",
    ]
    first_run = run(torchrun, repo)
    # the committed checkpoint comes from one process: not resumed by two
    assert "made with other params, data or world size; starting afresh" in first_run.stderr, (
        first_run.stderr
    )
    metrics = read_json(repo / "metrics/train/final_training.json")
    assert (metrics["status"], metrics["world_size"], metrics["epochs_done"]) == (
        "ok",
        2,
        FINAL_EPOCHS,
    )
    assert metrics["iterations"] == FINAL_EPOCHS * 8  # the global batch stays batch_size
    assert all(
        math.isfinite(v) for k, v in metrics.items() if k.startswith(("final_", "last10pct_"))
    )
    assert (repo / CHECKPOINT).is_file() and (
        repo / "checkpoints/final_training/checkpoint_rank1.pt"
    ).is_file()
    assert checkpoint_epoch(repo) == FINAL_EPOCHS
    first = train_outputs(repo)

    rerun = run(torchrun, repo)
    assert (
        rerun.stderr.count(f"resuming final_training from {CHECKPOINT} at epoch {FINAL_EPOCHS}")
        == 2
    ), rerun.stderr
    assert train_outputs(repo) == first


# ---- long_run's moving average -----------------------------------------------------------


def test_long_run_checkpoint_keeps_its_average_and_resumes_it(built):
    train = stage_script("train")

    ckpt = torch.load(
        built / "checkpoints/long_run/checkpoint.pt", map_location="cpu", weights_only=True
    )
    assert ckpt["config"]["ema_decay"] > 0 and ckpt["ema"].keys() == ckpt["model"].keys()
    # it lags the weights
    assert any(not torch.equal(ckpt["ema"][k], ckpt["model"][k]) for k in ckpt["model"])
    cfg = typed(LongRun, ckpt["config"])  # the config it was trained with, typed again
    exp = train.Experiment("long_run", cfg, torch.device("cpu"), ckpt["data_hash"])
    assert exp.resume(built / "checkpoints/long_run")
    assert all(torch.equal(exp.average[k], ckpt["ema"][k]) for k in ckpt["ema"])
