"""Build a throwaway copy of the project as its own git + DVC repo, at a tiny scale.

The tiny scale keeps every stage to seconds: 64 training digits, batches of 16, one or
two epochs, a 20-step generation, 12 digits completed (tiny_params). The end-to-end tests
share one run of it with 128 digits and three epochs of final_training (small_params,
built_repo). Either is applied to the copy's params.yaml only.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# the journey's order
EXPERIMENTS = list(yaml.safe_load((ROOT / "params.yaml").read_text())["experiments"])


def stage_script(name):
    """stages/<name>.py imported as the module `name`: the stage scripts are scripts, not a
    package (the package is ebm), so tests load them by path."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "stages" / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "OMP_NUM_THREADS": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def tiny_params(params):
    params["train"].update(
        train_subset=64,
        batch_size=16,
        sample_epochs=[1],
        log_every=1,
        generated_chains=12,
        generated_steps=5,
    )
    for name in EXPERIMENTS:
        params["experiments"][name]["epochs"] = 1
    params["experiments"]["final_training"]["epochs"] = 2
    params["judge"].update(epochs=1, non_digits=0.1)
    params["evaluate"].update(num_samples=48, fresh_steps=5, batch_size=48)
    params["generate"].update(
        steps=20, chains={"final_training": 16}, snapshots=[0, 10, 20], show_chains=4
    )
    params["long_run"].update(epochs=1, sample_epochs=[1])
    params["long_run"]["pool"].update(chains=16, steps=5)
    params["abilities"].update(models=["final_training"])  # one model: the stage's cost, once
    params["abilities"]["completion"].update(digits=12, steps=3)
    params["abilities"]["denoise"].update(digits=12, steps=2)
    params["abilities"]["ood"].update(digits=40, per_set=20)
    return params


# final_training's epochs in the shared tiny run: room for a kill between two checkpoints
FINAL_EPOCHS = 3


def small_params(params):
    """tiny_params, but final_training runs FINAL_EPOCHS epochs of 8 iterations (about a second
    each)."""
    tiny_params(params)
    params["train"]["train_subset"] = 128
    params["experiments"]["final_training"]["epochs"] = FINAL_EPOCHS
    return params


def built_repo(where):
    """A tiny repo (small_params) after a full `dvc repro`, committed. Built once per test session
    (tests/conftest.py) because the run takes most of a minute; tests copy it before changing
    anything."""
    make_repo(where, small_params)
    dvc("repro", cwd=where)
    run(["git", "add", "-A"], where)
    run(["git", "commit", "-qm", "tiny run"], where)
    return where


def copy_of(built, where):
    shutil.copytree(built, where, symlinks=True)
    return where


def run(args, cwd, check=True, env=ENV, **kwargs):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


def dvc(*args, cwd, check=True, env=ENV):
    return run([sys.executable, "-m", "dvc", *args], cwd, check, env)


def make_repo(where, edit=tiny_params):
    """Copy the project (code and config, no outputs) into `where` and commit it."""
    for name in [
        "stages",
        "labels",
        "seeds",
        "dvc.yaml",
        "params.yaml",
        ".dvcignore",
        ".gitignore",
        "matplotlibrc",
    ]:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, where / name)
    params = yaml.safe_load((where / "params.yaml").read_text())
    (where / "params.yaml").write_text(yaml.safe_dump(edit(params), sort_keys=False))
    run(["git", "init", "-q"], where)
    dvc("init", "-q", cwd=where)
    dvc("config", "core.analytics", "false", cwd=where)
    run(["git", "add", "-A"], where)
    run(["git", "commit", "-qm", "tiny pipeline"], where)
    return where


def edit_params(where, change):
    params = yaml.safe_load((where / "params.yaml").read_text())
    change(params)
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def overlaid_files(shown, quantity):
    """The data files `dvc plots show --json` overlays in one curve."""
    return {row["filename"] for row in shown[quantity][0]["content"]["data"]["values"]}
