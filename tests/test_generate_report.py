"""The generate and report stages end to end, on a tiny fake pipeline in a temporary folder.

The fake holds what the earlier stages would have written: a few hundred synthetic digits,
a tiny final_training checkpoint in the train stage's format, an untrained judge, and a
handful of metrics files (one experiment with expected_error, one with no eval, one not run).
"""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ebm.buffer import ReplayBuffer
from ebm.data import save_digits
from ebm.images import save_grid
from ebm.judge import LeNet5, save_judge
from ebm.model import EnergyNet
from ebm.params import experiment_config, load_params

ROOT = Path(__file__).resolve().parents[1]

STEPS, SNAPSHOTS, BATCH = 20, [0, 5, 20], 16


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def quality(fld, entropy, recog, modes):
    return {"fld": fld, "fld_floor": 1.0, "fld_ceiling": 300.0, "class_entropy": entropy, "confidence": 0.8,
            "recognisable": recog, "modes_covered": modes}


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A copy of the repo's stages with tiny params and the outputs of data, train, judge and evaluate."""
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["device"] = "cpu"
    raw["generate"].update(steps=STEPS, snapshots=SNAPSHOTS, batch_size=BATCH, show_chains=4)
    raw["generate"].pop("at_scale", None)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))

    rng = np.random.default_rng(0)
    x = (rng.random((300, 28, 28)) < 0.15).astype(np.uint8) * 255
    y = np.arange(300) % 10
    digest = save_digits(root / "data/mnist.npz", x[:200], y[:200], x[200:], y[200:])
    write_json(root / "metrics/data.json", {"source": "bundled", "requested_source": "bundled", "fallback_reason": None,
                                            "train_size": 200, "test_size": 100, "content_hash": digest})

    params = load_params(root / "params.yaml", sections=["train", "experiments"])
    cfg = experiment_config(params, "final_training")
    cfg["model"]["width"] = 8
    torch.manual_seed(0)
    buffer = ReplayBuffer(32, 0.2, 32)
    (root / "checkpoints/final_training").mkdir(parents=True)
    torch.save({"config": cfg, "model": EnergyNet(8).state_dict(), "buffer": buffer.state_dict(), "epoch": 10},
               root / "checkpoints/final_training/checkpoint.pt")
    save_judge(root / "checkpoints/judge/judge.pt", LeNet5())
    write_json(root / "metrics/judge.json", {"test_accuracy": 0.1, "wall_time_s": 1.0})

    base = {"epochs_done": 1, "iterations": 10, "wall_time_s": 2.0, "device": "cpu", "error": None}
    trains = {
        "initial_attempt": {"status": "expected_error", "iterations": 0, "epochs_done": 0, "error": "RuntimeError: "
                            "element 0 of tensors does not require grad and does not have a grad_fn"},
        "loss_collapse": {"status": "ok", "final_loss": -0.99, "final_e_pos": -1.0, "final_e_neg": 1.0},
        "blob_collapse": {"status": "ok", "final_loss": -3.0, "final_e_pos": -3.0, "final_e_neg": 3.0},
        "final_training": {"status": "ok", "final_loss": 0.01, "final_e_pos": 0.1, "final_e_neg": 0.1},
    }   # mode_collapse: not run
    for name, record in trains.items():
        write_json(root / f"metrics/train/{name}.json", {**base, "experiment": name, **record})
        curve = pd.DataFrame({"step": [10, 20], "epoch": [1, 1], "loss": [0.1, record.get("final_loss", 0)],
                              "e_pos": [0, 0], "e_neg": [0, 0], "cd": [0, 0], "reg": [0, 0], "r1": [0, 0],
                              "grad_norm": [0, 0], "lr": [1e-4, 1e-4]})
        (root / "plots/train").mkdir(parents=True, exist_ok=True)
        (curve.iloc[:0] if name == "initial_attempt" else curve).to_csv(root / f"plots/train/{name}.csv", index=False)
    blank = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    save_grid(root / "plots/samples/final_training/samples_epoch_010.png", blank)
    for name in ("loss_collapse", "final_training"):   # the others have no eval yet
        write_json(root / f"metrics/eval/{name}.json",
                   {"experiment": name, "status": "ok", "fresh": quality(50.0, 0.95, 0.7, 10),
                    "buffer": quality(40.0, 0.97, 0.8, 10), "num_samples": 16, "fresh_steps": 5, "wall_time_s": 1.5})
        (root / "plots/eval").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"class": range(10), "fresh": [0.1] * 10, "buffer": [0.1] * 10}).to_csv(
            root / f"plots/eval/{name}_classes.csv", index=False)
    return root


def run(root, script, **env):
    return subprocess.run([sys.executable, f"stages/{script}"], cwd=root, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.fixture(scope="module")
def generated(fake):
    result = run(fake, "generate.py")
    assert result.returncode == 0, result.stderr
    return fake


def test_generate_outputs_follow_params(generated):
    out = generated / "plots/generate"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["chain_snapshots.png", "class_counts.csv", "energy.csv", f"hq_samples_k{STEPS}.png", "verdict.json"]
    energy = pd.read_csv(out / "energy.csv")
    assert list(energy.columns) == ["step", "mean", "q05", "q25", "median", "q75", "q95"]
    assert set(SNAPSHOTS) <= set(energy["step"])
    assert (energy["q05"] <= energy["median"]).all() and (energy["median"] <= energy["q95"]).all()
    metrics = json.loads((generated / "metrics/generate.json").read_text())
    assert sorted(metrics["snapshots"], key=int) == [str(s) for s in SNAPSHOTS]
    for m in metrics["snapshots"].values():
        assert {"fld", "fld_floor", "fld_ceiling", "class_entropy", "confidence", "recognisable",
                "modes_covered"} <= set(m)
    assert metrics["steps"] == STEPS and metrics["device"] == "cpu" and metrics["wall_time_s"] > 0
    assert metrics["verdict"]["reference_step"] == 5 and metrics["verdict"]["last_step"] == STEPS
    assert metrics["verdict"]["verdict"] in ("stays realistic", "drifts", "not realistic at the reference step")
    # The metrics file holds numbers and flags only (a narrow `dvc metrics show`); the words are in verdict.json.
    full = json.loads((out / "verdict.json").read_text())
    assert full["verdict"] == metrics["verdict"]["verdict"] and full["summary"].startswith(full["verdict"])
    assert full["checks"].keys() == metrics["verdict"]["checks"].keys()
    for name, check in metrics["verdict"]["checks"].items():
        assert set(check) == {"value", "fired"} and full["checks"][name]["rule"]
    assert not any("class_counts" in m for m in metrics["snapshots"].values())
    counts = pd.read_csv(out / "class_counts.csv")
    assert list(counts["step"]) == SNAPSHOTS and list(counts.columns[1:]) == [str(d) for d in range(10)]
    assert (counts.drop(columns="step").sum(axis=1) == BATCH).all()


@pytest.fixture
def one_thread():
    """As in the subprocess (OMP_NUM_THREADS=1): same float sums, and no thread contention on 2 busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_generate_is_seeded(generated, tmp_path, monkeypatch, one_thread):
    import generate

    again = tmp_path / "again"
    shutil.copytree(generated, again, ignore=shutil.ignore_patterns("report", "plots", "generate.json"))
    monkeypatch.chdir(again)
    generate.main()
    for name in ("plots/generate/energy.csv", f"plots/generate/hq_samples_k{STEPS}.png"):
        assert (again / name).read_bytes() == (generated / name).read_bytes()


def test_generate_errors_are_clear(generated, tmp_path, monkeypatch, capsys):
    import generate
    from ebm.stage import run_stage

    bad = tmp_path / "bad"
    shutil.copytree(generated, bad, ignore=shutil.ignore_patterns("report", "plots"))
    monkeypatch.chdir(bad)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["generate"]["snapshots"] = [0, 30]
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        run_stage(generate.main)
    assert exit_.value.code == 1 and "step 30 is beyond generate.steps = 20" in capsys.readouterr().err

    params["generate"]["snapshots"] = SNAPSHOTS
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_json(Path("metrics/train/final_training.json"), {"status": "diverged", "error": "epoch 3: |energy| 1e4"})
    with pytest.raises(SystemExit, match="training status 'diverged'"):
        generate.main()
    Path("metrics/train/final_training.json").unlink()
    with pytest.raises(SystemExit, match="no trained model"):
        generate.main()


def test_verdict_rules():
    from generate import verdict

    def snap(fld, entropy=0.95, recog=0.8, white=0.1):
        return {"fld": fld, "fld_floor": 1.0, "fld_ceiling": 101.0, "class_entropy": entropy, "recognisable": recog,
                "white": white}

    stays = verdict({"0": snap(100), "1000": snap(10), "20000": snap(12)}, data_white=0.1)
    assert stays["reference_step"] == 1000 and stays["verdict"] == "stays realistic"
    drifts = verdict({"0": snap(100), "1000": snap(10), "20000": snap(30, entropy=0.5, white=0.3)}, data_white=0.1)
    assert drifts["verdict"] == "drifts"
    fired = {k for k, c in drifts["checks"].items() if c["fired"]}
    assert fired == {"drift", "class_collapse", "oversaturated@20000"}
    noise = verdict({"0": snap(100), "100": snap(90), "5000": snap(95)}, data_white=0.1)
    assert noise["reference_step"] == 100 and noise["verdict"] == "not realistic at the reference step"


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.summary_rows, self.in_summary, self.in_body = [], 0, False, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "src" in attrs or "href" in attrs:
            self.srcs.append(attrs.get("src") or attrs.get("href"))
        if tag == "table" and attrs.get("id") == "summary":
            self.in_summary = True
        self.in_body = self.in_body or (self.in_summary and tag == "tbody")
        if tag == "tr" and self.in_summary and self.in_body:
            self.summary_rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_summary = self.in_body = False


def test_report_is_self_contained_and_complete(generated, monkeypatch, one_thread):
    import report

    monkeypatch.chdir(generated)
    report.main()
    page = (generated / "report/index.html").read_text()
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    assert parser.summary_rows == 5 + 1
    assert "agrees: status expected_error" in page                    # initial_attempt
    assert "agrees: final loss -0.99" in page                         # loss_collapse
    assert "disagrees: final loss -3" in page                         # blob_collapse
    assert "not run (metrics/train/mode_collapse.json is missing)" in page
    assert "sampler.no_grad_bug: true -&gt; false" in page            # computed config diff, exp1 -> exp2
    markdown = (generated / "report/index.md").read_text()
    assert f"](../plots/generate/hq_samples_k{STEPS}.png)" in markdown
    for target in (generated / "report" / m for m in re.findall(r"\]\(([^)]+\.png)\)", markdown)):
        assert target.resolve().is_file(), target
