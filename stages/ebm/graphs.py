"""The Langevin chain as one CUDA graph: captured once per batch shape, replayed every iteration.

On a GPU a Langevin step of this small network is bound by kernel launches, not arithmetic
(about 1.3 ms a step at batch 128 on an H200, dozens of launches with Python between them).
A CUDA graph records the K steps (noise draw, input gradient, clamps, update) on static
tensors once and replays them with one launch. `train.sampler.cuda_graph` selects it:
true, false, or auto (true on CUDA, false on the CPU). The CPU, and CUDA with false, run
`ebm.sampler.langevin` itself; nothing here changes it.

The same numbers as the eager chain: the same ops in the same order, and torch's CUDA
generator is graph-safe: a replay draws from the generator's offset at that moment and
advances it by what the capture drew, as the eager calls would have. The warm-up before
the capture draws from it too, so its state is saved before the warm-up and restored
after. The weights are read from their own tensors at every replay, so the optimiser's
in-place updates are seen; a model whose parameters are replaced by new tensors needs a
new `GraphedLangevin`.
"""

import torch

from ebm.sampler import input_grad, langevin


def use_graph(choice, device):
    """`train.sampler.cuda_graph` (true | false | auto) -> whether the chain runs as a CUDA
    graph."""
    if choice == "auto":
        return device.type == "cuda"
    if choice is True and device.type != "cuda":
        raise RuntimeError(
            f"train.sampler.cuda_graph: true needs a CUDA device, and this run is on "
            f"{device.type}; set it to auto or false"
        )
    return choice is True


def chain_runner(choice, device):
    """The function that runs a chain: `langevin` itself, or its CUDA-graph stand-in."""
    return GraphedLangevin() if use_graph(choice, device) else langevin


def langevin_steps(energy, x, noise, chain):
    """`chain.steps` Langevin steps on x in place, noise drawn into `noise`: the eager chain's
    ops (ebm.sampler.langevin with one slice), in its order, on tensors that stay put."""
    for _ in range(chain.steps):
        if chain.noise_std > 0:
            x.add_(noise.normal_(0.0, chain.noise_std)).clamp_(-1.0, 1.0)
        grad = input_grad(energy, x)
        x.sub_(grad.clamp_(-chain.grad_clamp, chain.grad_clamp), alpha=chain.step_size).clamp_(
            -1.0, 1.0
        )


class GraphedChain:
    """K Langevin steps of `energy` at one batch shape, captured once as a CUDA graph."""

    WARMUP = 3  # eager runs on a side stream before the capture (cuDNN and autograd set up)

    def __init__(self, energy, like, chain):
        device = like.device
        self.x = torch.zeros_like(like)  # the chain's static state: copied in, replayed, cloned out
        self.noise = torch.empty_like(like)
        self.graph = torch.cuda.CUDAGraph()
        # the warm-up's draws must not shift the chain's noise
        rng = torch.cuda.get_rng_state(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                langevin_steps(energy, self.x, self.noise, chain)
        torch.cuda.current_stream(device).wait_stream(side)
        torch.cuda.set_rng_state(rng, device)
        with torch.cuda.graph(self.graph):
            langevin_steps(energy, self.x, self.noise, chain)

    def __call__(self, x):
        self.x.copy_(x)
        self.graph.replay()
        return self.x.clone()  # the caller keeps it; the next replay overwrites self.x


class GraphedLangevin:
    """A stand-in for `ebm.sampler.langevin` that runs each (model, batch shape, chain) as
    one CUDA graph, captured on first use. Training meets two at most: the buffer's chains and
    the long run's pool. `build` makes a graph (the tests pass a stand-in on the CPU).

    Experiment 1's `no_grad_bug` runs the eager chain, whose gradient call raises the real
    error; `grad_fn` (bf16 or compiled gradients) is not used here: params.py rejects those
    options beside the graph. `threads` is the CPU's and means nothing on CUDA.
    """

    def __init__(self, build=GraphedChain):
        self.build, self.graphs = build, {}

    def __call__(self, energy, x, chain, *, no_grad_bug=False, grad_fn=None, threads=None):
        if no_grad_bug:
            return langevin(energy, x, chain, no_grad_bug=True)
        key = (id(energy), tuple(x.shape), x.dtype, x.device, chain)
        if key not in self.graphs:
            # energy kept: its id stays its own
            self.graphs[key] = (energy, self.build(energy, x, chain))
        return self.graphs[key][1](x)
