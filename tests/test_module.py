"""Unit tests of the shared module: model, sampler, replay buffer, objective."""

import math
from dataclasses import replace

import pytest
import torch

from ebm.buffer import ChainPool, ReplayBuffer
from ebm.images import tile
from ebm.model import EnergyNet, average_weights, count_parameters, load_trained
from ebm.objective import contrastive_loss, improved_cd_terms
from ebm.sampler import Chain, langevin
from pipeline_repo import stage_script


class QuadraticEnergy(torch.nn.Module):
    """E(x) = |x - 0.3|^2 per image: a fixed toy energy with its minimum inside [-1, 1]."""

    def forward(self, x):
        return (x - 0.3).pow(2).flatten(1).sum(1)


def test_energy_net_shape_and_size():
    model = EnergyNet(width=32)
    assert 70_000 < count_parameters(model) < 80_000  # the tutorial's ~77k
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5,)
    assert count_parameters(EnergyNet(width=16)) < count_parameters(model)


def test_langevin_lowers_energy_and_stays_in_range():
    torch.manual_seed(0)
    energy = QuadraticEnergy()
    x0 = torch.rand(16, 1, 28, 28) * 2 - 1
    x = langevin(energy, x0, Chain(30, 0.1, 0.01, 0.5))
    assert energy(x).mean() < 0.1 * energy(x0).mean()
    assert x.min() >= -1 and x.max() <= 1
    assert not x.requires_grad


def test_langevin_leaves_model_parameters_untouched():
    torch.manual_seed(0)
    model = EnergyNet(width=8)
    before = [p.detach().clone() for p in model.parameters()]
    langevin(
        model,
        torch.rand(4, 1, 28, 28) * 2 - 1,
        Chain(steps=3, step_size=10, noise_std=0.005, grad_clamp=0.03),
    )
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_no_grad_bug_raises_the_seeds_runtime_error():
    with pytest.raises(
        RuntimeError, match="element 0 of tensors does not require grad and does not have a grad_fn"
    ):
        langevin(
            EnergyNet(width=8),
            torch.zeros(2, 1, 28, 28),
            Chain(steps=2, step_size=10, noise_std=0.005, grad_clamp=0.03),
            no_grad_bug=True,
        )


def test_buffer_restart_fraction_matches_probability():
    torch.manual_seed(0)
    buffer = ReplayBuffer(capacity=100, restart_prob=0.3, initial_fill=100)
    buffer.images.fill_(5.0)  # out of U(-1, 1)'s range: a restarted chain is easy to spot
    n, trials = 1000, 20
    restarted = sum(
        (buffer.sample(n).flatten(1).abs().max(1).values <= 1).sum().item() for _ in range(trials)
    )
    expected, sd = 0.3 * n * trials, math.sqrt(0.3 * 0.7 * n * trials)
    assert abs(restarted - expected) < 5 * sd


def test_buffer_capacity_holds_and_is_fifo():
    buffer = ReplayBuffer(capacity=10, restart_prob=0.0, initial_fill=4)
    for value in range(1, 5):
        buffer.push(torch.full((4, 1, 28, 28), float(value)))
    assert buffer.images.shape[0] == 10 and buffer.size == 10
    kept = sorted(buffer.images[:, 0, 0, 0].tolist())
    assert kept == [2.0] * 2 + [3.0] * 4 + [4.0] * 4  # the oldest were overwritten first
    assert buffer.sample(7).shape == (7, 1, 28, 28)


def test_buffer_state_round_trip():
    buffer = ReplayBuffer(capacity=10, restart_prob=0.1, initial_fill=3)
    buffer.push(torch.ones(2, 1, 28, 28))
    other = ReplayBuffer(capacity=10, restart_prob=0.1, initial_fill=1)
    other.load_state_dict(buffer.state_dict())
    assert (other.size, other.head) == (5, 5)
    assert torch.equal(other.images[:5], buffer.images[:5])


def test_buffer_ages_follow_each_chain_and_restart_at_noise():
    torch.manual_seed(0)
    buffer = ReplayBuffer(capacity=4, restart_prob=0.0, initial_fill=4)
    for _ in range(3):  # every chain drawn and continued 10 steps, three times
        buffer.push(buffer.sample(4) + 0.0, steps=10)
    draws, steps = buffer.ages()
    assert steps.tolist() == [10 * d for d in draws.tolist()] and draws.float().mean() > 1
    assert draws.max() <= 3  # a chain cannot be older than the draws so far
    buffer.restart_prob = 1.0
    buffer.push(buffer.sample(4), steps=10)  # all restarted from noise: one draw, 10 steps
    assert buffer.ages()[0].tolist() == [1] * 4 and buffer.ages()[1].tolist() == [10] * 4
    buffer.push(torch.zeros(2, 1, 28, 28))  # not chains of the last draw: age unknown, 0
    assert buffer.ages()[0].tolist() == [0, 0, 1, 1]
    copy = ReplayBuffer(capacity=4, restart_prob=0.0, initial_fill=1)
    copy.load_state_dict(buffer.state_dict())
    assert torch.equal(copy.ages()[0], buffer.ages()[0]) and torch.equal(
        copy.ages()[1], buffer.ages()[1]
    )


def test_buffer_latest_returns_the_newest_pushes_in_order():
    buf = ReplayBuffer(capacity=5, restart_prob=0.0, initial_fill=1)
    for value in range(7):  # wraps around the ring
        buf.push(torch.full((1, 1, 28, 28), float(value)))
    assert buf.latest(3)[:, 0, 0, 0].tolist() == [4.0, 5.0, 6.0] and len(buf.latest(99)) == 5


def test_chain_pool_ages_restarts_and_round_trip():
    torch.manual_seed(0)
    energy, chain = (
        EnergyNet(width=8),
        Chain(steps=3, step_size=10, noise_std=0.005, grad_clamp=0.03),
    )
    kept = ChainPool(6, restart_prob=0.0)
    start = kept.images.clone()
    kept.advance(energy, chain)
    kept.advance(energy, chain)
    assert kept.ages.tolist() == [6] * 6 and not torch.equal(kept.images, start)
    assert kept.images.abs().max() <= 1
    fresh = ChainPool(6, restart_prob=1.0)  # every chain restarts before each advance
    fresh.advance(energy, chain)
    fresh.advance(energy, chain)
    assert fresh.ages.tolist() == [3] * 6
    copy = ChainPool(6, restart_prob=0.0)
    copy.load_state_dict(kept.state_dict())
    assert torch.equal(copy.images, kept.images) and torch.equal(copy.ages, kept.ages)
    assert kept.sample(4).shape == (4, 1, 28, 28)


def test_average_weights_moves_a_fraction_toward_the_weights():
    net = EnergyNet(width=8)
    average = average_weights(None, net, decay=0.9)  # starts at the weights, as a copy
    start = {k: v.clone() for k, v in average.items()}
    with torch.no_grad():
        for w in net.parameters():
            w.add_(1.0)
    assert all(torch.equal(average[k], start[k]) for k in start)
    average_weights(average, net, decay=0.9)
    assert all(torch.allclose(average[k], start[k] + 0.1, atol=1e-6) for k in start)


def test_load_trained_samples_with_the_average_when_there_is_one(tmp_path):
    net = EnergyNet(width=8)
    average = {k: v + 0.5 for k, v in net.state_dict().items()}
    config = {"model": {"width": 8}}
    torch.save({"config": config, "model": net.state_dict(), "ema": average}, tmp_path / "with.pt")
    torch.save({"config": config, "model": net.state_dict(), "ema": None}, tmp_path / "without.pt")
    device = torch.device("cpu")
    loaded = {
        name: load_trained(tmp_path / f"{name}.pt", device)[1].state_dict()
        for name in ("with", "without")
    }
    assert all(torch.equal(loaded["with"][k], average[k]) for k in average)
    assert all(torch.equal(loaded["without"][k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("n", [1, 7, 8, 9, 20])
def test_grid_tiles_like_torchvision_make_grid(n):
    from torchvision.utils import make_grid

    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
    expected = (
        (make_grid(images.float() / 255.0, nrow=8, padding=2, pad_value=0.5)[0] * 255)
        .round()
        .to(torch.uint8)
    )
    assert torch.equal(tile(images, nrow=8), expected)


def test_chain_pool_lifetime_staggers_ages_uniformly():
    """After one lifetime every chain has restarted once and the ages are spread evenly over it."""
    torch.manual_seed(0)
    energy, chain = (
        EnergyNet(width=8),
        Chain(steps=10, step_size=10, noise_std=0.005, grad_clamp=0.03),
    )
    pool = ChainPool(4, restart_prob=0.0, lifetime=40)
    for _ in range(4):
        pool.advance(energy, chain)
    assert sorted(pool.ages.tolist()) == [10, 20, 30, 40]
    for _ in range(5):  # later cycles keep the spread
        pool.advance(energy, chain)
        assert sorted(pool.ages.tolist()) == [10, 20, 30, 40]
    resumed = ChainPool(4, restart_prob=0.0, lifetime=40)
    resumed.load_state_dict(pool.state_dict())
    resumed.advance(energy, chain)
    pool.advance(energy, chain)
    assert torch.equal(resumed.ages, pool.ages)


def test_loss_trivial_minimum_arithmetic():
    """At E_pos = -1/(2 alpha), E_neg = +1/(2 alpha) the loss is -1/(2 alpha): -1 at 0.5, -5 at
    0.1."""

    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.where(x.flatten(1).mean(1) > 0, -self.value, self.value) + 0 * x.sum()

    for alpha in (0.5, 0.1):
        c = 1 / (2 * alpha)
        loss, terms = contrastive_loss(
            Constant(c), torch.ones(4, 1, 28, 28), -torch.ones(4, 1, 28, 28), alpha, 0.0
        )
        assert terms["e_pos"] == pytest.approx(-c) and terms["e_neg"] == pytest.approx(c)
        assert loss.item() == pytest.approx(-c)


def test_r1_penalty_is_the_squared_input_gradient():
    energy = QuadraticEnergy()  # dE/dx = 2 (x - 0.3)
    x_pos = torch.full((3, 1, 28, 28), 0.5)
    _, terms = contrastive_loss(energy, x_pos, torch.zeros(3, 1, 28, 28), alpha=0.0, r1_weight=2.0)
    assert terms["r1"] == pytest.approx(2.0 * 784 * (2 * 0.2) ** 2, rel=1e-5)


class LinearEnergy(torch.nn.Module):
    """E(x) = sum(w * x): dE/dx = w everywhere, so one sampler step is x - step * clamp(w)."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((1, 28, 28), w))

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1)


def test_improved_cd_kl_flows_through_the_step_only():
    """kl = E_frozen(x - s w): its gradient in w is -s w per pixel. Were the energy's own
    parameters not held fixed, the stepped images themselves (0.3 - s w) would be added."""
    energy, step = LinearEnergy(0.01), 10.0
    x = torch.full((4, 1, 28, 28), 0.3)
    kl, _ = improved_cd_terms(
        energy, x, Chain(1, step, 0.0, 0.03), reference=torch.zeros(2, 1, 28, 28)
    )
    assert kl.item() == pytest.approx(784 * 0.01 * (0.3 - step * 0.01), rel=1e-5)
    kl.backward()
    assert torch.allclose(energy.w.grad, torch.full((1, 28, 28), -step * 0.01))


def test_improved_cd_repel_is_the_log_distance_to_the_nearest_reference():
    energy = LinearEnergy(0.0)  # no gradient: the stepped images are the negatives
    x = torch.zeros(3, 1, 28, 28)
    reference = torch.stack([torch.full((1, 28, 28), v) for v in (0.5, 0.1, -0.9)])
    _, repel = improved_cd_terms(energy, x, Chain(1, 10.0, 0.0, 0.03), reference)
    # |0.1 over 784 pixels| = 2.8
    assert repel.item() == pytest.approx(math.log(0.1 * 28), rel=1e-4)


def test_buffer_draw_returns_stored_images_without_restarts():
    buffer = ReplayBuffer(capacity=8, restart_prob=1.0, initial_fill=0)
    buffer.push(torch.full((3, 1, 28, 28), 0.25))
    # sample() would restart all
    assert torch.equal(buffer.draw(5), torch.full((5, 1, 28, 28), 0.25))


def test_generated_samples_leave_training_s_random_numbers_alone(tmp_path):
    """Experiment.generate (the generated samples at a sample epoch) forks and reseeds the RNG:
    the draws training makes next are the same with or without it, and two calls give the
    same samples, rows and grid."""
    from pathlib import Path

    import numpy as np

    train = stage_script("train")
    from ebm.checkpoint import load_checkpoint, save_checkpoint
    from ebm.judge import LeNet5
    from ebm.config import Model
    from ebm.params import experiment_config, load_params
    from ebm.quality import reference

    params = load_params(
        Path(__file__).resolve().parents[1] / "params.yaml", sections=["train", "experiments"]
    )
    cfg = replace(
        experiment_config(params, "final_training"),
        generated_chains=8,
        generated_steps=3,
        model=Model(width=8),
    )
    exp = train.Experiment("final_training", cfg, torch.device("cpu"), "hash")
    rng = np.random.default_rng(0)
    digits = {
        "x_train": (rng.random((40, 28, 28)) < 0.2).astype(np.uint8) * 255,
        "x_test": (rng.random((40, 28, 28)) < 0.2).astype(np.uint8) * 255,
    }
    judge = LeNet5().eval()
    ref = reference(judge, digits, n=16, seed=0)
    before = torch.get_rng_state()
    exp.generate(judge, ref)
    assert torch.equal(torch.get_rng_state(), before)
    exp.generate(judge, ref)
    first, second = exp.generated
    assert first == second and set(train.GENERATED_FIGURES) <= set(first)
    assert exp.generated_grids[0].shape == (8, 1, 28, 28)
    # the rows and grids resume with it
    save_checkpoint(tmp_path / "checkpoint.pt", exp.checkpoint())
    again = load_checkpoint(tmp_path / "checkpoint.pt", torch.device("cpu"), "rebuild it")
    assert again["generated"] == exp.generated and torch.equal(
        again["generated_grids"][0], exp.generated_grids[0]
    )
