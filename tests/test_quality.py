"""The judge, the sample metrics and the evaluation stage, on the bundled digits.

One small judge (a LeNet-5 trained for a few seconds on 2,000 bundled digits) serves every
test; it is weaker than the stage's, so thresholds are loose but still far apart.
"""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ebm.buffer import ReplayBuffer
from ebm.data import save_digits, to_unit_range
from ebm.judge import LeNet5, accuracy, load_judge, save_judge, train_judge
from ebm.model import EnergyNet
from ebm.quality import class_metrics, embed, frechet_distance, references, sample_quality

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_stage", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits():
    """The data stage's own split of the bundled digits (4,000 train / 1,000 test)."""
    return _load("data").fetch_bundled(test_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def judge(digits):
    x, y = to_unit_range(digits["x_train"][:2000]), digits["y_train"][:2000]
    return train_judge(x, y, seed=0, epochs=3, batch_size=64, lr=2e-3)


@pytest.fixture(scope="module")
def held_out(digits, judge):
    """References on half the test split; the other half plays 'samples' from a perfect model."""
    half = {**digits, "x_test": digits["x_test"][:500], "y_test": digits["y_test"][:500]}
    return references(judge, half, n=500, seed=0), to_unit_range(digits["x_test"][500:])


# ---- the judge -----------------------------------------------------------------------

def test_lenet_shapes_and_judge_accuracy(digits, judge):
    x = torch.zeros(3, 1, 28, 28)
    assert LeNet5()(x).shape == (3, 10) and LeNet5().features(x).shape == (3, 84)
    assert accuracy(judge, to_unit_range(digits["x_test"]), digits["y_test"]) > 0.85


def test_judge_save_load_round_trip(tmp_path, judge):
    save_judge(tmp_path / "judge.pt", judge)
    loaded = load_judge(tmp_path / "judge.pt")
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(loaded(x), judge(x))
    with pytest.raises(FileNotFoundError, match="dvc repro judge"):
        load_judge(tmp_path / "missing.pt")


def test_train_judge_is_seeded_and_leaves_the_global_rng_alone(digits):
    x, y = to_unit_range(digits["x_train"][:256]), digits["y_train"][:256]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = (train_judge(x, y, seed=5, epochs=1, batch_size=64, lr=1e-3) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# ---- the metrics ---------------------------------------------------------------------

def test_embed_shapes_and_probabilities(judge):
    features, probs = embed(judge, torch.rand(7, 1, 28, 28) * 2 - 1, batch_size=3)
    assert features.shape == (7, 84) and features.dtype == np.float64
    assert probs.shape == (7, 10) and np.allclose(probs.sum(1), 1)


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    a -= a.mean(0)                                          # centred: 2a has the same mean
    assert abs(frechet_distance(a, a)) < 1e-6
    shift = np.arange(6.0)
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)
    # scaling by 2: Tr(S + 4S - 2 * 2S) = Tr(S)
    assert frechet_distance(a, 2 * a) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-6)


def test_class_metrics_single_class_and_uniform():
    one = class_metrics(np.eye(10)[[3] * 200])
    assert one["class_entropy"] == 0 and one["modes_covered"] == 1
    assert one["confidence"] == 1 and one["recognisable"] == 1
    assert one["class_counts"] == [0, 0, 0, 200, 0, 0, 0, 0, 0, 0]
    uniform = class_metrics(np.eye(10)[np.arange(1000) % 10])
    assert uniform["class_entropy"] == pytest.approx(1) and uniform["modes_covered"] == 10
    rare = class_metrics(np.eye(10)[[0] * 99 + [1]])      # 1% of the samples: not a covered mode
    assert rare["modes_covered"] == 1
    unsure = class_metrics(np.full((5, 10), 0.1))
    assert unsure["confidence"] == pytest.approx(0.1) and unsure["recognisable"] == 0


def test_real_digits_score_near_the_floor(held_out, judge):
    refs, real = held_out
    quality = sample_quality(judge, real, refs)
    assert refs["n"] == 500 and 0 < refs["floor"] < 0.05 * refs["ceiling"]
    assert quality["fld"] < 3 * refs["floor"]
    assert quality["recognisable"] > 0.6 and quality["modes_covered"] == 10 and quality["class_entropy"] > 0.95
    assert (quality["fld_floor"], quality["fld_ceiling"]) == (refs["floor"], refs["ceiling"])


def test_uniform_noise_scores_near_the_ceiling(held_out, judge):
    refs, _ = held_out
    noise = torch.rand((500, 1, 28, 28), generator=torch.Generator().manual_seed(99)) * 2 - 1
    quality = sample_quality(judge, noise, refs)
    assert abs(quality["fld"] - refs["ceiling"]) < 0.1 * refs["ceiling"]


def test_references_repeat_and_cap_the_floor_at_the_train_size(digits, judge):
    small = {**digits, "x_train": digits["x_train"][:300], "x_test": digits["x_test"][:200]}
    a, b = references(judge, small, n=400, seed=3), references(judge, small, n=400, seed=3)
    assert a["test_features"].shape == (200, 84)
    assert (a["floor"], a["ceiling"]) == (b["floor"], b["ceiling"])
    assert np.isfinite(a["floor"]) and a["floor"] < a["ceiling"]


# ---- the stages ------------------------------------------------------------------------

PARAMS = """scale: cpu
device: cpu
judge: {seed: 0, epochs: 3, batch_size: 64, lr: 3.0e-3}
evaluate: {seed: 1, num_samples: 64, fresh_steps: 3, batch_size: 40}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)
    small = {"x_train": digits["x_train"][:1000], "y_train": digits["y_train"][:1000],
             "x_test": digits["x_test"][:300], "y_test": digits["y_test"][:300]}
    save_digits(tmp_path / "data" / "mnist.npz", **small)     # a quick stage: 1,000 train / 300 test
    return tmp_path


def test_judge_stage_writes_its_checkpoint_and_metrics(workdir):
    _load("judge").main()
    metrics = json.loads((workdir / "metrics" / "judge.json").read_text())
    assert metrics["train_size"] == 1000 and metrics["test_size"] == 300 and metrics["epochs"] == 3
    assert 0.5 < metrics["test_accuracy"] <= 1 and metrics["fld_floor"] < metrics["fld_ceiling"]
    assert isinstance(load_judge(), LeNet5)


def test_evaluate_without_a_checkpoint_writes_no_model(workdir):
    (workdir / "metrics" / "train").mkdir(parents=True)
    (workdir / "metrics" / "train" / "initial_attempt.json").write_text('{"status": "expected_error"}')
    _load("evaluate").main(["initial_attempt"])
    metrics = json.loads((workdir / "metrics" / "eval" / "initial_attempt.json").read_text())
    assert metrics["status"] == "no_model" and metrics["train_status"] == "expected_error"
    assert metrics["fresh"]["fld"] is None and metrics["buffer"]["class_entropy"] is None
    assert len(pd.read_csv(workdir / "plots" / "eval" / "initial_attempt_classes.csv")) == 10
    assert sorted(os.listdir(workdir / "plots" / "eval" / "initial_attempt")) == ["buffer.png", "fresh.png"]


def test_evaluate_scores_a_checkpoint_and_repeats(workdir, judge):
    save_judge(workdir / "checkpoints" / "judge" / "judge.pt", judge)
    buffer = ReplayBuffer(capacity=100, restart_prob=0.05, initial_fill=50)   # 50 < 64: drawn with replacement
    config = {"model": {"width": 8}, "sampler": {"steps": 5, "step_size": 10.0, "noise_std": 0.005,
                                                  "grad_clamp": 0.03, "no_grad_bug": False}}
    (workdir / "checkpoints" / "mode_collapse").mkdir(parents=True)
    torch.save({"config": config, "model": EnergyNet(8).state_dict(), "buffer": buffer.state_dict(), "epoch": 2},
               workdir / "checkpoints" / "mode_collapse" / "checkpoint.pt")
    (workdir / "metrics" / "train").mkdir(parents=True)
    (workdir / "metrics" / "train" / "mode_collapse.json").write_text('{"status": "diverged"}')
    stage = _load("evaluate")
    runs = []
    for _ in range(2):
        stage.main(["mode_collapse"])
        runs.append(json.loads((workdir / "metrics" / "eval" / "mode_collapse.json").read_text()))
    first, second = ({k: v for k, v in run.items() if not k.endswith("_s")} for run in runs)
    assert first == second                                  # seeded: the numbers repeat
    assert first["status"] == "diverged" and first["checkpoint_epoch"] == 2 and first["buffer_with_replacement"]
    assert first["sampler"] == {"step_size": 10.0, "noise_std": 0.005, "grad_clamp": 0.03}
    for kind in ("fresh", "buffer"):
        assert first[kind]["fld"] > first[kind]["fld_floor"] and 1 <= first[kind]["modes_covered"] <= 10
        assert "class_counts" not in first[kind]
    shares = pd.read_csv(workdir / "plots" / "eval" / "mode_collapse_classes.csv")
    assert list(shares.columns) == ["class", "fresh", "buffer"]
    assert shares["fresh"].sum() == pytest.approx(1) and shares["buffer"].sum() == pytest.approx(1)
    assert sorted(os.listdir(workdir / "plots" / "eval" / "mode_collapse")) == ["buffer.png", "fresh.png"]
