"""The judge, the sample metrics and the evaluation stage, on the bundled digits.

One small judge (a LeNet-5 trained for a few seconds on 2,000 bundled digits) serves every
test; it is weaker than the stage's, so thresholds are loose but still far apart.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ebm.buffer import ReplayBuffer
from ebm.controls import EXPECTED
from ebm.data import DataError, save_digits, to_unit_range
from ebm.judge import (
    Judges,
    LeNet5,
    accuracy,
    load_judge,
    save_judge,
    JudgesTraining,
    train_judge,
    train_judges,
)
from ebm.model import EnergyNet
from ebm.quality import (
    RealSet,
    class_metrics,
    embed,
    frechet_distance,
    manifold_metrics,
    pixel_stats,
    reference,
    score,
)

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
    """The reference on half the test split; the other half plays 'samples' from a perfect model."""
    half = {**digits, "x_test": digits["x_test"][:500], "y_test": digits["y_test"][:500]}
    return reference(judge, half, n=500, seed=0), to_unit_range(digits["x_test"][500:])


# ---- the judge -----------------------------------------------------------------------


def test_lenet_shapes_and_judge_accuracy(digits, judge):
    x = torch.zeros(3, 1, 28, 28)
    # ten digits, "not a digit"
    assert LeNet5()(x).shape == (3, 11) and LeNet5().features(x).shape == (3, 84)
    assert accuracy(judge, to_unit_range(digits["x_test"]), digits["y_test"]) > 0.85


def test_judge_save_load_round_trip(tmp_path, judge):
    save_judge(tmp_path / "judge.pt", judge)
    loaded = load_judge(tmp_path / "judge.pt")
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(loaded(x), judge(x))
    with pytest.raises(DataError, match="dvc repro judge"):
        load_judge(tmp_path / "missing.pt")


def test_judges_read_by_their_mean_probabilities(tmp_path, judge):
    other = LeNet5()  # untrained: its probabilities differ from the judge's
    judges = Judges([judge, other]).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        mean = (torch.softmax(judge(x), 1) + torch.softmax(other(x), 1)) / 2
        assert torch.allclose(torch.softmax(judges(x), 1), mean, atol=1e-6)
        assert torch.equal(judges.features(x), judge.features(x))  # the first member embeds
        save_judge(tmp_path / "judges.pt", judges)
        assert torch.allclose(load_judge(tmp_path / "judges.pt")(x), judges(x))
    # one member reads as that judge alone: its own logits
    assert torch.equal(Judges([judge])(x), judge(x))


def test_loading_judges_draws_from_the_global_rng_as_loading_one(tmp_path, judge):
    """The training stages load the judge after seeding: its member count must not move them."""
    save_judge(tmp_path / "one.pt", judge)
    save_judge(tmp_path / "three.pt", Judges([judge, judge, judge]))
    after = []
    for name in ("one.pt", "three.pt"):
        torch.manual_seed(11)
        load_judge(tmp_path / name)
        after.append(torch.rand(3))
    assert torch.equal(after[0], after[1])


def test_train_judge_is_seeded_and_leaves_the_global_rng_alone(digits):
    x, y = to_unit_range(digits["x_train"][:256]), digits["y_train"][:256]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = (train_judge(x, y, seed=5, epochs=1, batch_size=64, lr=1e-3) for _ in range(2))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_judges_trained_side_by_side_equal_judges_trained_in_turn(digits):
    x, y = to_unit_range(digits["x_train"][:256]), digits["y_train"][:256]
    training = dict(epochs=1, batch_size=64, lr=1e-3, non_digit_ratio=0.05)
    torch.manual_seed(7)
    in_turn = train_judges(x, y, 3, 2, parallel=False, **training)
    state = torch.get_rng_state()
    torch.manual_seed(7)
    side_by_side = JudgesTraining(x, y, 3, 2, **training).result()
    assert torch.equal(torch.get_rng_state(), state)  # both leave the global RNG alike
    pairs = zip(in_turn.state_dict().values(), side_by_side.state_dict().values())
    assert all(torch.equal(p, q) for p, q in pairs)
    assert not side_by_side.training


# ---- the metrics ---------------------------------------------------------------------


def test_embed_shapes_and_probabilities(judge):
    x = torch.rand(7, 1, 28, 28) * 2 - 1
    features, probs = embed(judge, x, batch_size=3)
    assert features.shape == (7, 84) and features.dtype == np.float64 and probs.shape == (7, 10)
    with torch.no_grad():
        not_a_digit = torch.softmax(judge(x).double(), 1)[:, 10].numpy()
    # the ten digits share what "not a digit" leaves
    assert np.allclose(probs.sum(1) + not_a_digit, 1)


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    a -= a.mean(0)  # centred: 2a has the same mean
    assert abs(frechet_distance(a, a)) < 1e-6
    shift = np.arange(6.0)
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)
    # scaling by 2: Tr(S + 4S - 2 * 2S) = Tr(S)
    assert frechet_distance(a, 2 * a) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-6)


def test_class_metrics_single_class_and_uniform():
    one = class_metrics(np.eye(10)[[3] * 200])
    assert one["class_entropy"] == 0 and one["modes_covered"] == 1 and one["confidence"] == 1
    assert one["class_counts"] == [0, 0, 0, 200, 0, 0, 0, 0, 0, 0]
    uniform = class_metrics(np.eye(10)[np.arange(1000) % 10])
    assert uniform["class_entropy"] == pytest.approx(1) and uniform["modes_covered"] == 10
    rare = class_metrics(np.eye(10)[[0] * 99 + [1]])  # 1% of the samples: not a covered mode
    assert rare["modes_covered"] == 1
    unsure = class_metrics(np.full((5, 10), 0.1))
    assert unsure["confidence"] == pytest.approx(0.1)
    assert (
        unsure["recognised_classes"] == 0
        and unsure["top2_classes"] == []
        and np.isnan(unsure["top2_share"])
    )


def test_recognised_classes_count_only_the_samples_the_judge_reads():
    sure = np.eye(10)[[7] * 60 + [1] * 20 + list(range(10)) * 2]  # 100 read: 7s and 1s dominate
    vague = np.full((100, 10), 0.05)  # 100 more it cannot read
    figures = class_metrics(np.concatenate([sure, vague]))
    assert figures["recognised_counts"] == [2, 22, 2, 2, 2, 2, 2, 62, 2, 2]
    assert figures["top2_classes"] == [7, 1] and figures["top2_share"] == pytest.approx(0.84)
    assert figures["recognised_classes"] == 10 and 0 < figures["recognised_entropy"] < 0.8


def test_prdc_matches_the_papers_on_a_hand_computed_case():
    """Real points 0, 1, ..., 9 on a line; a k-NN ball's radius is the distance to the k-th nearest
    other real point. Samples (each four times) at 0.5, inside several balls, and at 100, inside
    none. The expected figures are counted here from the papers' definitions (with prdc's
    strict <)."""
    real_x = np.arange(10.0)
    real = np.stack([real_x, np.zeros(10)], 1)
    radii = {i: sorted(abs(real_x - i))[3] for i in range(10)}  # the 3rd nearest other point
    radii5 = [sorted(abs(real_x - i))[5] for i in range(10)]
    built = RealSet.of(real, np.eye(10)[np.zeros(10, int)])
    assert (
        built.radii_precision.tolist() == [radii[i] for i in range(10)]
        and built.radii_density.tolist() == radii5
    )
    fakes = np.array([[0.5, 0.0], [100.0, 0.0]])
    probs = np.eye(10)[[0, 0]]
    figures = manifold_metrics(
        RealSet(
            real, np.zeros(10, int), np.array([radii[i] for i in range(10)]), np.array(radii5), {}
        ),
        np.repeat(fakes, 4, 0),
        np.repeat(probs, 4, 0),
    )
    # precision: the sample at 0.5 lies in some ball, the one at 100 in none
    assert figures["precision"] == pytest.approx(0.5)
    # recall: the real points within a sample's own 3-NN ball; each sample's 3rd nearest other
    # sample is a copy of itself (distance 0), so no ball holds anything: 0
    assert figures["recall"] == 0
    # density (k = 5 here): mean over samples of (number of real 5-NN balls holding it) / 5
    held = sum(abs(0.5 - i) < radii5[i] for i in range(10))
    assert figures["density"] == pytest.approx(held / 5 / 2)
    # coverage: real points whose 5-NN ball holds a sample (the one at 0.5 sits in `held` of them)
    assert figures["coverage"] == pytest.approx(held / 10)
    # typical: sure of its class (one-hot, so recognisable) and inside a k = 3 ball: the sample
    # at 0.5 only
    assert figures["typical"] == pytest.approx(0.5) and figures["recognisable"] == 1


def test_real_digits_score_like_real_digits(held_out, judge):
    ref, real = held_out
    figures = score(judge, real, ref)
    line = ref.real_line
    assert (
        ref.n == 500
        and 0 < line["fld"] < 0.05 * ref.fld_ceiling
        and figures["fld"] < 3 * line["fld"]
    )
    assert 0.85 < figures["density"] < 1.2 and abs(figures["coverage"] - line["coverage"]) < 0.08
    assert figures["typical_vs_real"] > 0.85 and figures["modes_covered"] == 10
    assert figures["min_class_coverage"] > 0.5 and figures["class_entropy"] > 0.95
    assert abs(figures["ink"] - ref.test_pixels["ink"]) < 0.02


def test_uniform_noise_scores_nothing(held_out, judge):
    ref, _ = held_out
    noise = torch.rand((500, 1, 28, 28), generator=torch.Generator().manual_seed(99)) * 2 - 1
    figures = score(judge, noise, ref)
    assert abs(figures["fld"] - ref.fld_ceiling) < 0.1 * ref.fld_ceiling
    # This test's judge trains for seconds, with no "not a digit" class (the stage's judge on noise:
    # tests/test_controls.py); the stage's scores noise at density 0.003, coverage 0.002.
    assert figures["density"] < 0.15 and figures["coverage"] < 0.05 and figures["typical"] == 0
    assert figures["noise_share"] == 1 and figures["blob_share"] == 0


def test_one_class_batch_covers_one_class_only(digits, held_out, judge):
    ref, _ = held_out
    probs = embed(judge, to_unit_range(digits["x_train"][:2000]))[1]
    ones = to_unit_range(digits["x_train"][:2000][probs.argmax(1) == 1][:300])
    figures = score(judge, ones, ref)
    assert figures["class_entropy"] == 0 and figures["modes_covered"] == 1
    assert (
        sum(c == 0 for c in figures["class_coverage"]) == 9 and figures["class_coverage"][1] > 0.3
    )
    assert figures["min_class_coverage"] == 0


def test_confident_speckle_is_not_typical(held_out, judge):
    """Saturated +-1 speckle that a judge without a "not a digit" class (this test's) labels with
    >= 0.9 confidence falls outside every real ball: recognisable, yet not typical."""
    ref, real = held_out
    generator = torch.Generator().manual_seed(5)
    speckle = torch.where(torch.rand((4000, 1, 28, 28), generator=generator) < 0.3, 1.0, -1.0)
    _, probs = embed(judge, speckle)
    confident = speckle[probs.max(1) >= 0.9]
    assert len(confident) >= 20, (
        "the judge labels some speckle confidently (the weakness the gate closes)"
    )
    figures = score(judge, confident, ref)
    assert (
        figures["recognisable"] == 1 and figures["typical"] < 0.05 and figures["noise_share"] == 1
    )
    assert pixel_stats(confident)["saturated"] == 1


def test_reference_repeats_and_caps_the_real_line_at_the_train_size(digits, judge):
    small = {**digits, "x_train": digits["x_train"][:300], "x_test": digits["x_test"][:200]}
    a, b = reference(judge, small, n=400, seed=3), reference(judge, small, n=400, seed=3)
    assert a.real.features.shape == (200, 84) and a.n == 400
    assert a.real_line == b.real_line and a.fld_ceiling == b.fld_ceiling
    assert np.isfinite(a.real_line["fld"]) and a.real_line["fld"] < a.fld_ceiling


# ---- the stages ------------------------------------------------------------------------

PARAMS = """scale: cpu
device: cpu
judge: {seed: 0, epochs: 3, batch_size: 64, lr: 3.0e-3, non_digits: 0.25, max_shift: 0, \
read_by_eye: 4, members: 2}
evaluate: {seed: 1, num_samples: 64, fresh_steps: 3, batch_size: 40}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)
    # evaluate checks its argument against them
    journey = {
        k: v
        for k, v in yaml.safe_load((ROOT / "params.yaml").read_text()).items()
        if k in ("train", "experiments")
    }
    (tmp_path / "params.yaml").write_text(PARAMS + yaml.safe_dump(journey))
    small = {
        "x_train": digits["x_train"][:1000],
        "y_train": digits["y_train"][:1000],
        "x_test": digits["x_test"][:300],
        "y_test": digits["y_test"][:300],
    }
    save_digits(tmp_path / "data" / "mnist.npz", **small)  # a quick stage: 1,000 train / 300 test
    # the judge also trains on labelled samples
    shutil.copytree(ROOT / "labels", tmp_path / "labels")
    return tmp_path


def test_judge_stage_writes_its_checkpoint_and_metrics(workdir):
    _load("judge").main()
    metrics = json.loads((workdir / "metrics" / "judge.json").read_text())
    assert metrics["train_size"] == 1000 and metrics["test_size"] == 300 and metrics["epochs"] == 3
    assert (
        0.5 < metrics["test_accuracy"] <= 1
        and metrics["real"]["fld"] < metrics["real"]["fld_ceiling"]
    )
    assert 0.8 < metrics["real"]["density"] < 1.2 and metrics["real"]["n"] == 300
    # every figure on sets whose answer is known, each marked met or not
    controls = metrics["controls"]
    assert set(controls) == set(EXPECTED) and all(
        isinstance(row["meets"], bool) for row in controls.values()
    )
    # a blob is also one the judge does not read: this 3-epoch judge reads a few of the discs
    assert (
        controls["uniform noise"]["noise_share"] == 1
        and controls["blurred blobs"]["blob_share"] >= 0.95
    )
    judges = load_judge()
    assert isinstance(judges, Judges) and len(judges.members) == 2


def test_evaluate_without_a_checkpoint_writes_no_model(workdir):
    (workdir / "metrics" / "train").mkdir(parents=True)
    (workdir / "metrics" / "train" / "initial_attempt.json").write_text(
        '{"status": "expected_error"}'
    )
    _load("evaluate").main(["initial_attempt"])
    metrics = json.loads((workdir / "metrics" / "eval" / "initial_attempt.json").read_text())
    assert metrics["status"] == "no_model" and metrics["train_status"] == "expected_error"
    assert metrics["fresh"]["density"] is None and metrics["buffer"]["class_entropy"] is None
    assert len(pd.read_csv(workdir / "plots" / "eval" / "initial_attempt_classes.csv")) == 10
    assert sorted(os.listdir(workdir / "plots" / "eval" / "initial_attempt")) == [
        "buffer.png",
        "fresh.png",
    ]


def test_evaluate_scores_a_checkpoint_and_repeats(workdir, judge):
    save_judge(workdir / "checkpoints" / "judge" / "judge.pt", judge)
    # 50 < 64: drawn with replacement
    buffer = ReplayBuffer(capacity=100, restart_prob=0.05, initial_fill=50)
    config = {
        "model": {"width": 8},
        "sampler": {
            "steps": 5,
            "step_size": 10.0,
            "noise_std": 0.005,
            "grad_clamp": 0.03,
            "no_grad_bug": False,
        },
    }
    (workdir / "checkpoints" / "mode_collapse").mkdir(parents=True)
    torch.save(
        {
            "config": config,
            "model": EnergyNet(8).state_dict(),
            "buffer": buffer.state_dict(),
            "epoch": 2,
        },
        workdir / "checkpoints" / "mode_collapse" / "checkpoint.pt",
    )
    (workdir / "metrics" / "train").mkdir(parents=True)
    (workdir / "metrics" / "train" / "mode_collapse.json").write_text('{"status": "diverged"}')
    stage = _load("evaluate")
    runs = []
    for _ in range(2):
        stage.main(["mode_collapse"])
        runs.append(json.loads((workdir / "metrics" / "eval" / "mode_collapse.json").read_text()))
    first, second = ({k: v for k, v in run.items() if not k.endswith("_s")} for run in runs)
    assert first == second  # seeded: the numbers repeat
    assert (
        first["status"] == "diverged"
        and first["checkpoint_epoch"] == 2
        and first["buffer_with_replacement"]
    )
    assert first["sampler"] == {"step_size": 10.0, "noise_std": 0.005, "grad_clamp": 0.03}
    for kind in ("fresh", "buffer"):
        assert first[kind]["fld"] > first["real"]["fld"] and 1 <= first[kind]["modes_covered"] <= 10
        assert (
            first[kind]["density"] < first["real"]["density"] and "class_counts" not in first[kind]
        )
    shares = pd.read_csv(workdir / "plots" / "eval" / "mode_collapse_classes.csv")
    assert list(shares.columns) == ["class", "fresh", "fresh_coverage", "buffer", "buffer_coverage"]
    assert shares["fresh"].sum() == pytest.approx(1) and shares["buffer"].sum() == pytest.approx(1)
    assert sorted(os.listdir(workdir / "plots" / "eval" / "mode_collapse")) == [
        "buffer.png",
        "fresh.png",
    ]
