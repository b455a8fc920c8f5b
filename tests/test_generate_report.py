"""The generate and report stages end to end, on a tiny fake pipeline in a temporary folder.

The fake holds what the earlier stages would have written: a few hundred synthetic digits,
a tiny final_training checkpoint in the train stage's format, an untrained judge, and
metrics files in the current formats, made so that every agreement word shows up:
initial_attempt, loss_collapse, mode_collapse and final_training agree, blob_collapse's loss
misses -5 (at scale cpu: "not reproduced at this scale", with no eval at all), and long_run
has a training record but no generated samples ("not run").
"""

import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ebm.buffer import ReplayBuffer
from ebm.data import save_digits
from ebm.errors import NoTrainedModel
from ebm.images import save_grid
from ebm.judge import LeNet5, save_judge
from ebm.model import EnergyNet
from ebm.config import Model
from ebm.params import load_params
from pipeline_repo import stage_script

ROOT = Path(__file__).resolve().parents[1]
MODEL = "final_training"

STEPS, SNAPSHOTS, CHAINS = 20, [0, 5, 20], 16

# The words the report must give each step of the fake (params.yaml scale: cpu).
EXPECTED = {
    "initial_attempt": "agrees",
    "loss_collapse": "agrees",
    "blob_collapse": "not reproduced at this scale",
    "mode_collapse": "agrees",
    "final_training": "agrees",
    "long_run": "not run",
    f"generation from {MODEL}": "disagrees",
}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


REAL = {
    "n": 16,
    "fld": 1.0,
    "density": 0.95,
    "coverage": 0.9,
    "precision": 0.9,
    "recall": 0.9,
    "recognisable": 0.97,
    "typical": 0.5,
    "class_entropy": 0.95,
    "modes_covered": 10,
    "min_class_coverage": 0.5,
    "confidence": 0.9,
    "recognised_entropy": 0.99,
    "recognised_classes": 10,
    "top2_share": 0.22,
    "ink": 0.13,
    "saturated": 0.83,
    "white": 0.024,
    "noise_share": 0.0,
    "blob_share": 0.0,
    "fld_ceiling": 300.0,
    "test_ink": 0.13,
    "test_saturated": 0.83,
    "test_white": 0.024,
}


def quality(
    entropy,
    recog,
    modes,
    density=0.5,
    coverage=0.5,
    min_cov=0.3,
    saturated=0.8,
    noise=0.0,
    blobs=0.0,
):
    """A `fresh` or `buffer` block of metrics/eval/<name>.json."""
    return {
        "fld": 40.0,
        "density": density,
        "coverage": coverage,
        "precision": 0.5,
        "recall": 0.5,
        "recognisable": recog,
        "typical": recog / 2,
        "min_class_coverage": min_cov,
        "class_entropy": entropy,
        "confidence": 0.8,
        "modes_covered": modes,
        "recognised_entropy": entropy,
        "recognised_classes": modes,
        "top2_share": 0.3,
        "ink": 0.13,
        "saturated": saturated,
        "white": 0.03,
        "noise_share": noise,
        "blob_share": blobs,
        "typical_vs_real": recog / 2 / REAL["typical"],
        "energy": -1.0,
    }


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """A copy of the repo's stages with tiny params and the outputs of data, train, judge and
    evaluate."""
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["scale"], raw["device"] = "cpu", "cpu"
    raw["generate"].update(steps=STEPS, snapshots=SNAPSHOTS, chains={MODEL: CHAINS}, show_chains=4)
    raw["generate"].pop("at_scale", None)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    rng = np.random.default_rng(0)
    x = (rng.random((300, 28, 28)) < 0.15).astype(np.uint8) * 255
    y = np.arange(300) % 10
    digest = save_digits(root / "data/mnist.npz", x[:200], y[:200], x[200:], y[200:])
    write_json(
        root / "metrics/data.json",
        {
            "source": "bundled",
            "requested_source": "bundled",
            "fallback_reason": None,
            "train_size": 200,
            "test_size": 100,
            "content_hash": digest,
        },
    )

    params = load_params(root / "params.yaml", sections=["train", "experiments"])
    cfg = replace(params.experiments[MODEL], model=Model(width=8))
    torch.manual_seed(0)
    buffer = ReplayBuffer(32, 0.2, 32)
    (root / f"checkpoints/{MODEL}").mkdir(parents=True)
    torch.save(
        {
            "config": asdict(cfg),
            "model": EnergyNet(8).state_dict(),
            "buffer": buffer.state_dict(),
            "epoch": 10,
        },
        root / f"checkpoints/{MODEL}/checkpoint.pt",
    )
    save_judge(root / "checkpoints/judge/judge.pt", LeNet5())
    write_json(
        root / "metrics/judge.json",
        {"test_accuracy": 0.1, "wall_time_s": 1.0, "device": "cpu", "real": {**REAL, "n": 1000}},
    )

    base = {"epochs_done": 1, "iterations": 10, "wall_time_s": 2.0, "device": "cpu", "error": None}
    trains = {
        "initial_attempt": {
            "status": "expected_error",
            "iterations": 0,
            "epochs_done": 0,
            "error": "RuntimeError: element 0 of tensors does not require grad and does not have a "
            "grad_fn",
        },
        "loss_collapse": {
            "status": "ok",
            "final_loss": -0.99,
            "final_e_pos": -1.0,
            "final_e_neg": 1.0,
        },
        "blob_collapse": {
            "status": "ok",
            "final_loss": -3.0,
            "final_e_pos": -3.0,
            "final_e_neg": 3.0,
        },
        "mode_collapse": {
            "status": "ok",
            "final_loss": 0.02,
            "final_e_pos": 0.1,
            "final_e_neg": 0.1,
        },
        "final_training": {
            "status": "ok",
            "final_loss": 0.01,
            "final_e_pos": 0.1,
            "final_e_neg": 0.1,
        },
        "long_run": {"status": "ok", "final_loss": 0.01, "final_e_pos": 0.1, "final_e_neg": 0.1},
    }
    blank = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    for name, record in trains.items():
        write_json(root / f"metrics/train/{name}.json", {**base, "experiment": name, **record})
        curve = pd.DataFrame(
            {
                "step": [10, 20],
                "epoch": [1, 1],
                "loss": [0.1, record.get("final_loss", 0)],
                "e_pos": [0, 0],
                "e_neg": [0, 0],
                "cd": [0, 0],
                "reg": [0, 0],
                "r1": [0, 0],
                "grad_norm": [0, 0],
                "lr": [1e-4, 1e-4],
            }
        )
        (root / "plots/train").mkdir(parents=True, exist_ok=True)
        (curve.iloc[:0] if name == "initial_attempt" else curve).to_csv(
            root / f"plots/train/{name}.csv", index=False
        )
        if name != "initial_attempt":
            save_grid(root / f"plots/samples/{name}/samples_epoch_001.png", blank)
    save_grid(root / "plots/samples/initial_attempt/no_samples.png", blank[:1] + 128)
    negatives = pd.DataFrame(
        {
            "step": [10, 20],
            "epoch": [1, 2],
            "class_entropy": [0.8, 0.95],
            "modes_covered": [9, 10],
            "coverage": [0.3, 0.5],
            "density": [0.4, 0.6],
            "recognisable": [0.5, 0.7],
            "ink": [0.13, 0.13],
            "saturated": [0.8, 0.8],
            **{f"class_{d}": [0.1, 0.1] for d in range(10)},
        }
    )
    (root / "plots/negatives").mkdir(parents=True)
    negatives.to_csv(root / f"plots/negatives/{MODEL}.csv", index=False)
    negatives.to_csv(root / "plots/negatives/mode_collapse.csv", index=False)
    generated = pd.DataFrame(
        {
            "step": [10, 20],
            "epoch": [1, 2],
            "energy": [-1.0, -1.0],
            "recognisable": [0.5, 0.7],
            "typical": [0.2, 0.3],
            "class_entropy": [0.8, 0.95],
            "recognised_entropy": [0.8, 0.95],
            "recognised_classes": [9, 10],
            "top2_share": [0.35, 0.3],
            "noise_share": [0.0, 0.0],
            "blob_share": [0.0, 0.0],
            "coverage": [0.3, 0.5],
            "density": [0.4, 0.6],
            "ink": [0.13, 0.13],
            "white": [0.03, 0.03],
            **{f"class_{d}": [0.1, 0.1] for d in range(10)},
        }
    )
    (root / "plots/generated").mkdir(parents=True)
    # long_run: none ("not run")
    generated.to_csv(root / f"plots/generated/{MODEL}.csv", index=False)
    # exp 4 at step 20: mostly 7s
    narrow = [0.02, 0.05, 0.03, 0.02, 0.02, 0.01, 0.05, 0.6, 0.15, 0.05]
    generated.assign(
        recognised_entropy=[0.9, 0.5],
        top2_share=[0.3, 0.75],
        **{f"class_{d}": [0.1, share] for d, share in enumerate(narrow)},
    ).to_csv(root / "plots/generated/mode_collapse.csv", index=False)
    for name in ("mode_collapse", MODEL):
        save_grid(root / f"plots/samples/{name}/generated_epoch_001.png", blank)

    evals = {  # blob_collapse: no eval (its loss decides); initial_attempt: no model
        "initial_attempt": {
            "status": "no_model",
            "train_status": "expected_error",
            "fresh": {k: None for k in quality(0, 0, 0)},
            "buffer": {k: None for k in quality(0, 0, 0)},
        },
        "loss_collapse": {
            "fresh": quality(0.3, 0.0, 3, density=0.01, noise=0.95),
            "buffer": quality(0.3, 0.0, 3, density=0.02, noise=1.0),
        },
        "mode_collapse": {"fresh": quality(0.5, 0.6, 3), "buffer": quality(0.5, 0.6, 3)},
        "final_training": {"fresh": quality(0.95, 0.7, 10), "buffer": quality(0.97, 0.8, 10)},
    }
    shares = {"mode_collapse": [0.02, 0.05, 0.03, 0.02, 0.02, 0.01, 0.05, 0.6, 0.15, 0.05]}
    for name, record in evals.items():
        ok = record["fresh"]["fld"] is not None
        write_json(
            root / f"metrics/eval/{name}.json",
            {
                "experiment": name,
                "status": record.get("status", "ok"),
                "num_samples": 16,
                "fresh_steps": 5,
                "wall_time_s": 1.5,
                "device": "cpu",
                **record,
                **({"real": REAL, "test_energy": -2.0} if ok else {}),
            },
        )
        share = shares.get(name, [0.1] * 10) if ok else [None] * 10
        (root / "plots/eval").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "class": range(10),
                "fresh": share,
                "fresh_coverage": [0.5 if ok else None] * 10,
                "buffer": share,
                "buffer_coverage": [0.5 if ok else None] * 10,
            }
        ).to_csv(root / f"plots/eval/{name}_classes.csv", index=False)
        save_grid(root / f"plots/eval/{name}/buffer.png", blank)
    return root


def run(root, *args, **env):
    return subprocess.run(
        [sys.executable, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


@pytest.fixture(scope="module")
def generated(fake):
    result = run(fake, "stages/generate.py", MODEL)
    assert result.returncode == 0, result.stderr
    return fake


def test_generate_outputs_follow_params(generated):
    out = generated / "plots/generate" / MODEL
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "chain_snapshots.png",
        "class_counts.csv",
        "energy.csv",
        f"hq_samples_k{STEPS}.png",
        "verdict.json",
    ]
    energy = pd.read_csv(out / "energy.csv")
    assert list(energy.columns) == [
        "step",
        "mean",
        "q05",
        "q25",
        "median",
        "q75",
        "q95",
        "digits_q05",
        "digits_mean",
        "digits_q95",
    ]
    # the test digits' band, one value over all steps, as the metrics file has it
    band = energy[["digits_q05", "digits_mean", "digits_q95"]].drop_duplicates()
    assert len(band) == 1 and band.iloc[0].is_monotonic_increasing
    assert set(SNAPSHOTS) <= set(energy["step"])
    assert (energy["q05"] <= energy["median"]).all() and (energy["median"] <= energy["q95"]).all()
    metrics = json.loads((generated / f"metrics/generate/{MODEL}.json").read_text())
    assert sorted(metrics["snapshots"], key=int) == [str(s) for s in SNAPSHOTS]
    for m in metrics["snapshots"].values():
        assert {
            "fld",
            "density",
            "coverage",
            "recognisable",
            "typical",
            "typical_vs_real",
            "class_entropy",
            "recognised_entropy",
            "recognised_classes",
            "top2_share",
            "modes_covered",
            "min_class_coverage",
            "ink",
            "saturated",
            "noise_share",
            "blob_share",
            "energy_mean",
        } <= set(m)
        assert 0 <= m["below_real_energy"] <= 1
    assert {
        "n",
        "fld",
        "density",
        "coverage",
        "recognisable",
        "fld_ceiling",
        "test_ink",
        "test_saturated",
    } <= set(metrics["real"]) and metrics["real"]["n"] == CHAINS
    assert metrics["real"]["energy_q05"] <= metrics["real"]["energy_q95"]
    binary = metrics["binarised_real"]  # real digits with every pixel at -1 or +1
    assert set(binary) == {
        "fld",
        "density",
        "coverage",
        "recognisable",
        "typical",
        "typical_vs_real",
        "class_entropy",
        "ink",
        "white",
    }
    assert binary["white"] == binary["ink"] > 0  # at +-1 every inked pixel is white
    assert metrics["steps"] == STEPS and metrics["chains"] == CHAINS and metrics["device"] == "cpu"
    assert metrics["weights"] == "last"  # the fake checkpoint keeps no moving average
    assert metrics["experiment"] == MODEL and metrics["wall_time_s"] > 0
    assert metrics["verdict"]["reference_step"] == 5 and metrics["verdict"]["last_step"] == STEPS
    assert metrics["verdict"]["verdict"] in ("stays realistic", "drifts or fails")
    # The metrics file holds numbers and flags only (a narrow `dvc metrics show`); the words are
    # in verdict.json.
    full = json.loads((out / "verdict.json").read_text())
    assert full["verdict"] == metrics["verdict"]["verdict"] and full["summary"].startswith(
        full["verdict"]
    )
    assert full["checks"].keys() == metrics["verdict"]["checks"].keys()
    for name, check in metrics["verdict"]["checks"].items():
        assert set(check) == {"value", "passed"} and full["checks"][name]["rule"]
    assert full["failed"] == [k for k, c in full["checks"].items() if not c["passed"]]
    assert not any("class_counts" in m for m in metrics["snapshots"].values())
    counts = pd.read_csv(out / "class_counts.csv")
    assert list(counts["step"]) == SNAPSHOTS and list(counts.columns[1:]) == [
        str(d) for d in range(10)
    ]
    assert (counts.drop(columns="step").sum(axis=1) == CHAINS).all()


def test_real_energy_and_the_chains_below_it():
    generate = stage_script("generate")
    below_real_energy, real_energy = generate.below_real_energy, generate.real_energy

    def mean_pixel(x):  # a stand-in energy: brighter images have higher energy
        return x.flatten(1).mean(1)

    # energies rise with the index
    digits = {"x_test": np.arange(20, dtype=np.uint8).repeat(784).reshape(20, 28, 28)}
    real = real_energy(mean_pixel, digits, "cpu")
    assert real["energy_q05"] < real["energy_mean"] < real["energy_q95"]
    dark, bright = torch.full((3, 1, 28, 28), -1.0), torch.full((1, 1, 28, 28), 1.0)
    shares = below_real_energy(
        mean_pixel, {0: torch.cat([dark, bright]), 5: bright}, real["energy_q05"], "cpu"
    )
    assert shares == {0: 0.75, 5: 0.0}


@pytest.fixture
def one_thread():
    """As in the subprocess (OMP_NUM_THREADS=1): same float sums, and no thread contention on 2
    busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_generate_is_seeded(generated, tmp_path, monkeypatch, one_thread):
    generate = stage_script("generate")

    again = tmp_path / "again"
    shutil.copytree(generated, again, ignore=shutil.ignore_patterns("report", "plots"))
    shutil.rmtree(again / "metrics/generate")
    monkeypatch.chdir(again)
    generate.main([MODEL])
    for name in (
        f"plots/generate/{MODEL}/energy.csv",
        f"plots/generate/{MODEL}/hq_samples_k{STEPS}.png",
    ):
        assert (again / name).read_bytes() == (generated / name).read_bytes()


def test_generate_errors_are_clear(generated, tmp_path, monkeypatch, capsys):
    generate = stage_script("generate")
    from ebm.stage import run_stage

    bad = tmp_path / "bad"
    shutil.copytree(generated, bad, ignore=shutil.ignore_patterns("report", "plots"))
    monkeypatch.chdir(bad)
    monkeypatch.setattr(sys, "argv", ["generate.py", MODEL])
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["generate"]["snapshots"] = [0, 30]
    Path("params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:
        run_stage(generate.main)
    assert (
        exit_.value.code == 1 and "step 30 is beyond generate.steps = 20" in capsys.readouterr().err
    )

    params["generate"]["snapshots"] = SNAPSHOTS
    Path("params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setattr(sys, "argv", ["generate.py", "nope"])
    with pytest.raises(SystemExit) as exit_:
        run_stage(generate.main)
    assert (
        exit_.value.code == 1 and "generate.chains has no entry 'nope'" in capsys.readouterr().err
    )
    with pytest.raises(SystemExit, match="usage"):
        generate.main([])
    write_json(
        Path(f"metrics/train/{MODEL}.json"),
        {"status": "diverged", "error": "epoch 3: |energy| 1e4"},
    )
    with pytest.raises(NoTrainedModel, match="training status 'diverged'"):
        generate.main([MODEL])
    Path(f"metrics/train/{MODEL}.json").unlink()
    with pytest.raises(NoTrainedModel, match="no trained model"):
        generate.main([MODEL])


def snap(
    entropy=0.95, modes=10, coverage=0.8, density=0.9, fld=10.0, recog=0.8, ink=0.13, white=0.024
):
    """One snapshot's figures, as metrics/generate/<model>.json holds them."""
    return {
        "fld": fld,
        "density": density,
        "coverage": coverage,
        "recognisable": recog,
        "class_entropy": entropy,
        "modes_covered": modes,
        "recognised_entropy": entropy,
        "recognised_classes": modes,
        "min_class_coverage": 0.3,
        "ink": ink,
        "saturated": 0.83,
        "white": white,
        "typical_vs_real": 0.6,
    }


def test_verdict_rules():
    from ebm.generation import verdict

    real = {"recognisable": 0.97, "test_ink": 0.13, "test_saturated": 0.83, "test_white": 0.024}
    noise = snap(
        entropy=0.3, modes=3, coverage=0.0, density=0.0, fld=100.0, recog=0.0, ink=0.5, white=0.005
    )

    stable = verdict(
        {"0": noise, "1000": snap(), "5000": snap(), "20000": snap(coverage=0.78, fld=11.0)}, real
    )
    assert stable["reference_step"] == 1000 and stable["last_step"] == 20000
    assert stable["verdict"] == "stays realistic" and stable["failed"] == []
    assert all(c["passed"] for c in stable["checks"].values()) and stable["summary"].startswith(
        "stays realistic"
    )

    drifting = verdict(
        {
            "0": noise,
            "1000": snap(),
            "5000": snap(entropy=0.85),
            "20000": snap(entropy=0.6, modes=5, coverage=0.4),
        },
        real,
    )
    assert drifting["verdict"] == "drifts or fails"
    assert {"diverse", "coverage_kept"} <= set(drifting["failed"])
    assert (
        drifting["checks"]["diverse"]["value"] == 0.6
        and drifting["checks"]["coverage_kept"]["value"] == 0.5
    )
    assert "recognisable" not in drifting["failed"]  # still legible digits, just fewer kinds
    fading = verdict({"0": noise, "1000": snap(), "20000": snap(recog=0.6)}, real)
    # read by the judge, but less than at step 1,000
    assert fading["failed"] == ["recognisable_kept"]
    # Whiter strokes than MNIST's are not in the claim: reported beside the verdict, never in it.
    oversaturated = verdict({"0": noise, "1000": snap(white=0.07), "20000": snap(white=0.08)}, real)
    assert oversaturated["failed"] == [] and oversaturated["beyond_the_claim"][
        "white_vs_test"
    ] == pytest.approx(3.3333)

    # A reference step with no coverage or density (noise at step 1,000): no ratio to take, no
    # crash.
    flat = verdict({"0": noise, "1000": noise, "20000": noise}, real)
    assert (
        flat["checks"]["coverage_kept"]["value"] is None
        and flat["checks"]["density_kept"]["value"] is None
    )
    assert flat["verdict"] == "drifts or fails" and {"diverse", "recognisable"} <= set(
        flat["failed"]
    )


class Page(html.parser.HTMLParser):
    """Images, links and ids of the page; the cells of the summary table; where cards and tables
    start."""

    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.ids, self.rows = [], [], set(), []
        self.first_card = self.first_table = None
        self.table, self.cell = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        where = self.getpos()
        if tag == "img":
            self.srcs.append(attrs.get("src"))
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "card" in (attrs.get("class") or "").split() and self.first_card is None:
            self.first_card = where
        if tag == "table":
            self.first_table = self.first_table or where
            self.table = attrs.get("id")
        if self.table == "summary" and tag == "tr":
            self.rows.append([])
        if self.table == "summary" and tag == "td":
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.rows[-1].append(self.cell)
            self.cell = None
        if tag == "table":
            self.table = None


@pytest.fixture(scope="module")
def reported(generated):
    result = run(generated, "stages/report.py")
    assert result.returncode == 0, result.stderr
    page = (generated / "report/index.html").read_text()
    parser = Page()
    parser.feed(page)
    parser.close()
    return generated, page, parser


def test_report_is_self_contained(reported):
    root, page, parser = reported
    assert parser.srcs and all(s.startswith("data:image/png;base64,") for s in parser.srcs)
    # in-page only
    assert parser.hrefs and all(h.startswith("#") and h[1:] in parser.ids for h in parser.hrefs)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)


def test_report_shows_the_pictures_first(reported):
    root, page, parser = reported
    assert parser.first_card is not None and parser.first_card < parser.first_table
    cards = re.findall(r'<div class="card"><h3><a href="#([^"]+)">', page)
    assert cards == [
        "initial_attempt",
        "loss_collapse",
        "blob_collapse",
        "mode_collapse",
        "final_training",
        "long_run",
        f"generation-{MODEL}",
    ]
    markdown = (root / "report/index.md").read_text()
    titles = [
        markdown.index(f"**{t}**")
        for t in (
            "1. initial_attempt",
            "5. final_training",
            "+ long_run",
            f"generation from {MODEL}",
        )
    ]
    assert titles == sorted(titles) and titles[-1] < markdown.index("## Summary")


def test_report_agreement_words(reported):
    root, page, parser = reported
    rows = {row[0]: row for row in parser.rows if row}
    assert list(rows) == list(EXPECTED)
    for step, word in EXPECTED.items():
        assert rows[step][-1].startswith(word), (step, rows[step][-1])
    assert "fails on loss" in rows["blob_collapse"][-1]
    assert "plots/generated/long_run.csv is missing" in rows["long_run"][-1]
    # the generated samples at step 20
    assert "top-2 classes (7 (60%), 8 (15%)) 0.75" in rows["mode_collapse"][2]
    assert "exp 5's top-2 at iteration 20 (" in rows["mode_collapse"][2]
    assert "read classes' entropy 0.5 (exp 5 0.95)" in rows["mode_collapse"][2]
    assert "generated noise 0.95" in rows["loss_collapse"][2]
    assert "recognisable 0 (real 0.97)" in rows["loss_collapse"][2]  # figures beside the real line
    for word in ("agrees", "not reproduced at this scale", "not run"):
        assert '<p class="word' in page and f">{word}</p>" in page
    rules = page[page.index('id="rules"') :]
    for step in (
        "initial_attempt",
        "loss_collapse",
        "blob_collapse",
        "mode_collapse",
        "final_training",
        "long_run",
        "generation",
    ):
        assert f"<td>{step}</td>" in rules
    assert "sampler.no_grad_bug: true -&gt; false" in page  # computed config diff, exp1 -> exp2
    assert "This step is not in the original journey" in page  # long_run's text, from CLAIMS


def test_report_disagrees_at_the_journeys_scale(reported, monkeypatch):
    from ebm.report.outputs import Run
    from ebm.verdicts import agreement

    root, _, _ = reported
    monkeypatch.chdir(root)
    run_ = Run()
    run_.scale = "seed"
    assert agreement(run_, "blob_collapse").word == "disagrees"
    assert agreement(run_, "loss_collapse").word == "agrees"
    run_.trains["initial_attempt"] = {"status": "ok"}
    run_.scale = "cpu"
    # a bug is the same at any scale
    assert agreement(run_, "initial_attempt").word == "disagrees"
    generated = root / "plots/generated/mode_collapse.csv"
    young = pd.read_csv(generated)
    try:  # exp 4 at step 10, no narrower than exp 5 was at the same iteration: not a collapse
        young.iloc[:1].to_csv(generated, index=False)
        assert agreement(run_, "mode_collapse").word == "not reproduced at this scale"
        generated.rename(root / "moved.csv")
        verdict = agreement(run_, "mode_collapse")
    finally:
        young.to_csv(generated, index=False)
        (root / "moved.csv").unlink(missing_ok=True)
    assert (
        verdict.word == "not run" and "plots/generated/mode_collapse.csv is missing" in verdict.why
    )


def test_report_markdown_and_wording(reported):
    root, page, _ = reported
    markdown = (root / "report/index.md").read_text()
    assert f"](../plots/generate/{MODEL}/hq_samples_k{STEPS}.png)" in markdown
    links = re.findall(r"\]\(([^)]+\.png)\)", markdown)
    assert links
    for target in (root / "report" / m for m in links):
        assert target.resolve().is_file(), target
    text = re.sub(r'src="data:[^"]+"', "", page) + markdown
    # the original journey is never "the seed"; a training seed and its files may be named
    for allowed in (
        "scale: seed",
        "train.seed",
        "training seed",
        "seeds/verdicts.csv",
        "seed_table",
    ):
        text = text.replace(allowed, "")
    assert not re.search(r"seed", text, re.IGNORECASE)
    assert "the journey, reproduced" in page
    assert "real at ±1 (" in markdown and "recognisable judges shapes" in markdown
    headline = json.loads((root / "metrics/headline.json").read_text())
    assert list(headline) == [
        "1_initial_attempt",
        "2_loss_collapse",
        "3_blob_collapse",
        "4_mode_collapse",
        "5_final_training",
        "6_long_run",
        "7_generation",
    ]
    assert headline["4_mode_collapse"] == {
        "verdict": "agrees",
        "recognisable": 0.7,
        "top2": 0.75,
        "top2_exp5": 0.3,
        "entropy": 0.5,
        "entropy_exp5": 0.95,
    }
    assert headline["7_generation"]["model"] == MODEL


def test_the_report_counts_the_seeds_each_claim_holds_on(tmp_path, monkeypatch):
    """The other seeds' verdicts (seeds/verdicts.csv) beside this run's, without the committed
    run's own row; a step a seed did not record counts as not run."""
    from ebm.report.seeds import seeds_section

    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds/verdicts.csv").write_text(
        "run,train_seed,initial_attempt,generation\n"
        "workspace,42,agrees,disagrees\nseed44,44,agrees,agrees\nseed46,46,disagrees,\n"
    )
    tables = []

    class Doc:
        def heading(self, *args, **kwargs):
            pass

        para = heading

        def table(self, header, rows):
            tables.append((header, rows))

    steps = ["initial_attempt", "loss_collapse", "generation"]
    line = {f"{i}_{s}": {"verdict": "agrees"} for i, s in enumerate(steps, 1)}
    seeds_section(Doc(), line, 42)
    header, rows = tables[0]
    assert header == [
        "step",
        "this run (train.seed 42)",
        "train.seed 44",
        "train.seed 46",
        "agrees on",
    ]
    assert rows == [
        ["initial_attempt", "agrees", "agrees", "disagrees", "2 of 3"],
        ["loss_collapse", "agrees", "not run", "not run", "1 of 3"],
        ["generation", "agrees", "agrees", "not run", "2 of 3"],
    ]
