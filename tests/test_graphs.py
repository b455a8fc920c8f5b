"""The Langevin chain as a CUDA graph (ebm.graphs): its switch, and that the CPU never takes it.

On the CPU: `train.sampler.cuda_graph` validates and resolves (auto: CUDA only), the stages'
chain stays `ebm.sampler.langevin` itself, the captured body computes what the eager chain
computes, and the graph cache builds one graph per (model, shape, chain). On a CUDA GPU
(benchmarks/gpu_check.sh): the replayed graph draws the same samples as the eager chain from
the same seed, also across training iterations whose optimiser moves the weights.
"""

import copy
from dataclasses import replace

import pytest
import torch
import yaml

from ebm.buffer import ChainPool
from ebm.graphs import GraphedLangevin, chain_runner, langevin_steps, use_graph
from ebm.model import EnergyNet
from ebm.params import ParamsError, experiment_config, load_params
from ebm.sampler import Chain, langevin
from pipeline_repo import ROOT, stage_script

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
CHAIN = Chain(6, 10.0, 0.005, 0.03)
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: a CUDA graph captures CUDA kernels (benchmarks/gpu_check.sh)",
)


def params_with(tmp_path, **sampler):
    params = copy.deepcopy(PARAMS)
    params["train"]["sampler"].update(sampler)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return load_params(path, sections=["train", "experiments"])


# ---- the switch ------------------------------------------------------------------------


def test_the_committed_default_is_off_until_a_gpu_has_measured_it():
    assert PARAMS["train"]["sampler"]["cuda_graph"] is False
    assert not any(
        "cuda_graph" in (e or {}).get("sampler", {}) for e in PARAMS["experiments"].values()
    )


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_true_false_and_auto_are_valid(tmp_path, value):
    cfg = experiment_config(params_with(tmp_path, cuda_graph=value), "final_training")
    assert cfg.sampler.cuda_graph == value


@pytest.mark.parametrize("value", ["on", "yes", 1, None])
def test_anything_else_is_named_in_one_line(tmp_path, value):
    with pytest.raises(
        ParamsError, match=r"train\.sampler\.cuda_graph = .*: must be true, false or auto$"
    ):
        params_with(tmp_path, cuda_graph=value)


@pytest.mark.parametrize("value", [True, "auto"])
@pytest.mark.parametrize("other", [{"compile": True}, {"precision": "bf16"}])
def test_the_graph_refuses_the_compiled_and_bf16_gradients(tmp_path, value, other):
    with pytest.raises(ParamsError, match="runs the plain fp32 gradient"):
        params_with(tmp_path, cuda_graph=value, **other)


def test_auto_is_on_for_cuda_only_and_true_without_cuda_is_an_error():
    assert use_graph("auto", CUDA) and not use_graph("auto", CPU)
    assert use_graph(True, CUDA) and not use_graph(False, CUDA) and not use_graph(False, CPU)
    with pytest.raises(RuntimeError, match="cuda_graph: true needs a CUDA device"):
        use_graph(True, CPU)


@pytest.mark.parametrize("value", [False, "auto"])
def test_the_cpu_runs_the_eager_chain_itself(value):
    assert chain_runner(value, CPU) is langevin


def test_the_training_stage_keeps_the_eager_chain_on_the_cpu(tmp_path):
    """With auto, as with false, a CPU run's Experiment holds `langevin` itself: no CPU draw or op
    changes."""
    Experiment = stage_script("train").Experiment

    cfg = experiment_config(params_with(tmp_path, cuda_graph="auto"), "final_training")
    assert Experiment("final_training", cfg, CPU, "hash").run_chain is langevin
    cfg = replace(cfg, sampler=replace(cfg.sampler, cuda_graph=True))
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        Experiment("final_training", cfg, CPU, "hash")


# ---- the captured body and the graph cache, on the CPU --------------------------------


def test_the_captured_steps_are_the_eager_chain_bit_for_bit():
    torch.manual_seed(0)
    model, x0 = EnergyNet(8), torch.rand(5, 1, 28, 28) * 2 - 1
    torch.manual_seed(3)
    eager = langevin(model, x0, CHAIN, threads=1)
    next_after_eager = torch.rand(3)
    torch.manual_seed(3)
    x, noise = x0.clone(), torch.empty_like(x0)
    langevin_steps(model, x, noise, CHAIN)
    assert torch.equal(eager, x)
    assert torch.equal(next_after_eager, torch.rand(3))  # and it drew as many random numbers


class FakeGraph:
    """Records what a graph would be built from; runs the eager chain in its place."""

    built = []

    def __init__(self, energy, like, chain):
        self.energy, self.chain = energy, chain
        FakeGraph.built.append((tuple(like.shape), chain))

    def __call__(self, x):
        return langevin(self.energy, x, self.chain, threads=1)


def test_one_graph_per_model_shape_and_chain():
    FakeGraph.built = []
    run, model = GraphedLangevin(build=FakeGraph), EnergyNet(8)
    other = Chain(3, 10.0, 0.01, 0.03)
    for _ in range(3):
        run(model, torch.zeros(4, 1, 28, 28), CHAIN)
        run(model, torch.zeros(2, 1, 28, 28), other)
    run(EnergyNet(8), torch.zeros(4, 1, 28, 28), CHAIN)
    assert FakeGraph.built == [
        ((4, 1, 28, 28), CHAIN),
        ((2, 1, 28, 28), other),
        ((4, 1, 28, 28), CHAIN),
    ]


def test_experiment_1_still_raises_its_error_and_builds_no_graph():
    FakeGraph.built = []
    with pytest.raises(RuntimeError, match="does not require grad"):
        GraphedLangevin(build=FakeGraph)(
            EnergyNet(8), torch.zeros(4, 1, 28, 28), CHAIN, no_grad_bug=True
        )
    assert FakeGraph.built == []


def test_the_pool_advances_through_the_runner_it_is_given():
    torch.manual_seed(0)
    pool, calls = ChainPool(4, 0.0), []
    pool.advance(
        EnergyNet(8), CHAIN, run=lambda energy, x, chain, grad_fn=None: calls.append(chain) or x + 0
    )
    assert calls == [CHAIN] and pool.ages.tolist() == [CHAIN.steps] * 4


# ---- on a CUDA GPU ----------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize(
    "batch, chain",
    [
        (128, Chain(60, 10.0, 0.005, 0.03)),
        (64, Chain(40, 10.0, 0.01, 0.03)),
        (16, Chain(10, 10.0, 0.0, 0.03)),
    ],
)
def test_the_graph_draws_the_eager_chains_samples_from_the_same_seed(batch, chain):
    torch.manual_seed(0)
    model = EnergyNet(32).to(CUDA)
    x0 = torch.rand(batch, 1, 28, 28, device=CUDA) * 2 - 1
    run = GraphedLangevin()
    for seed in (1, 2):  # the first call captures, the second replays
        torch.manual_seed(seed)
        eager, after_eager = langevin(model, x0, chain), torch.cuda.get_rng_state()
        torch.manual_seed(seed)
        graphed, after_graph = run(model, x0, chain), torch.cuda.get_rng_state()
        assert (eager - graphed).abs().max().item() < 1e-5, (
            seed,
            (eager - graphed).abs().max().item(),
        )
        # as many numbers drawn: what follows is the same too
        assert torch.equal(after_eager, after_graph)
    assert len(run.graphs) == 1 and not graphed.requires_grad


@needs_cuda
def test_graph_and_eager_training_iterations_stay_together():
    """Ten iterations of buffer draw, chain, loss with R1 and Adam: the replays see the updated
    weights."""
    from ebm.buffer import ReplayBuffer
    from ebm.objective import contrastive_loss

    chain, runs = Chain(20, 10.0, 0.01, 0.03), {}
    for name, run in (("eager", langevin), ("graph", GraphedLangevin())):
        torch.manual_seed(0)
        model = EnergyNet(32).to(CUDA)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.999))
        buffer = ReplayBuffer(512, 0.2, 128, device=CUDA)
        real = torch.rand(64, 1, 28, 28, device=CUDA) * 2 - 1
        for _ in range(10):
            x_neg = run(model, buffer.sample(64), chain)
            buffer.push(x_neg)
            loss, _ = contrastive_loss(model, real, x_neg, 0.1, 0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        runs[name] = x_neg
    assert (runs["eager"] - runs["graph"]).abs().max().item() < 1e-4


# ---- the device benchmark's bookkeeping (benchmarks/graphs.py), on the CPU ---------------


def test_the_benchmark_groups_the_experiments_by_what_sets_an_iterations_time():
    import importlib.util

    spec = importlib.util.spec_from_file_location("graph_bench", ROOT / "benchmarks" / "graphs.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    groups = sorted(bench.kinds(bench.tutorial.seed_scale_params()).values())
    assert groups == [
        ["long_run"],
        ["loss_collapse", "blob_collapse"],
        ["mode_collapse", "final_training"],
    ]
    chains = {
        "max_abs_diff_graph_vs_eager": 0.0,
        "rng_state_equal_after_graph_and_eager": True,
        "vs_tutorial": {"graph": 5.2},
    }
    journey = {
        "iteration": {"mode_collapse+final_training": {"graph_s": 0.016}},
        "journey_minutes": {"graph": 19.0},
    }
    assert [c["pass"] for c in bench.verdicts(chains, journey)] == [True, True, False, True]
