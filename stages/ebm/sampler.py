"""Langevin dynamics on the energy: x <- clamp(x + noise - step * clamp(dE/dx)), K times.

Gradients are taken with respect to the inputs only (`torch.autograd.grad`), so the
model's parameters and their `.grad` are never touched by sampling. The chain is
updated in place out of the autograd graph and the noise buffer is allocated once.

On a CPU with several cores, the batch is split into one slice per core and each
slice's gradient is computed on its own thread with single-threaded kernels: the small
convolutions of this network parallelise badly inside one op, and well across images.
Each thread writes its slice's gradient into one preallocated tensor (no per-step concatenation).
The noise is still drawn for the whole batch from the one global generator, so the
samples are the same as with one thread (benchmarks/sampler.py measures both).

On CUDA, `fast_input_grad` can autocast the network's forward to bf16 (the chain itself
stays fp32) and compile the input gradient with torch.compile; both are off by default
and only the sampler uses them: the loss and its R1 double backward stay uncompiled.
"""

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ebm.runtime import cpu_cores


@dataclass(frozen=True)
class Chain:
    """One Langevin chain's settings, passed as one object: two floats swapped by position
    would fail silently. `Chain.of(cfg)` takes them from a config section with these fields
    (ebm.config: Sampler, Pool, Generate, Denoise)."""

    steps: int
    step_size: float
    noise_std: float
    grad_clamp: float

    @classmethod
    def of(cls, cfg, **changes):
        return cls(
            **{
                **{k: getattr(cfg, k) for k in ("steps", "step_size", "noise_std", "grad_clamp")},
                **changes,
            }
        )


def langevin(energy, x, chain, *, no_grad_bug=False, threads=None, grad_fn=None, fixed=None):
    """Run `chain.steps` Langevin steps from `x` (left unchanged); return the detached samples.

    no_grad_bug: reproduce experiment 1 of the original journey, which sampled inside
    `torch.no_grad()`. The energy then carries no graph and the gradient call raises
    the real `RuntimeError: element 0 of tensors does not require grad and does not
    have a grad_fn`.
    threads: CPU slices computed in parallel (default: one per core; 1 = plain).
    grad_fn: x -> dE/dx to use instead of the plain autograd one (see fast_input_grad);
    ignored with no_grad_bug, whose error only the plain path raises.
    fixed: a bool mask like x, True where a pixel is held at its value in `x` (conditional
    sampling, e.g. completing a digit from its visible part, IGEBM's inpainting). Those pixels
    are put back after the noise and after the gradient step, so the gradient always sees them
    as they are and they leave the chain exactly as they entered it.
    """
    x = x.detach().clone()
    known = x.clone() if fixed is not None else None
    grad_enabled = not no_grad_bug
    if grad_fn is None or no_grad_bug:
        grad_fn = lambda part: input_grad(energy, part, grad_enabled)  # noqa: E731
    parts = _parts(x, threads)
    noise = torch.empty_like(x)
    # one thread: grad_fn's own tensor is used as is
    grad = torch.empty_like(x) if parts > 1 else None
    # Each thread writes its slice's gradient into `grad`; the chain itself changes only
    # between steps (a slice is a view of x, and autograd would see a neighbour's write).
    bounds = [(i * len(x) // parts, (i + 1) * len(x) // parts) for i in range(parts)]

    def slice_grad(bound):
        start, stop = bound
        result = grad_fn(x[start:stop])
        with torch.no_grad():
            grad[start:stop] = result

    step_size, noise_std, grad_clamp = chain.step_size, chain.noise_std, chain.grad_clamp
    with _CpuSlices(parts) as pool:
        for _ in range(chain.steps):
            if noise_std > 0:
                x.add_(noise.normal_(0.0, noise_std)).clamp_(-1.0, 1.0)
                if fixed is not None:
                    x.copy_(torch.where(fixed, known, x))
            if pool is None:
                grad = grad_fn(x)
            else:
                # list(): wait for every slice, re-raise its error
                list(pool.map(slice_grad, bounds))
            x.sub_(grad.clamp_(-grad_clamp, grad_clamp), alpha=step_size).clamp_(-1.0, 1.0)
            if fixed is not None:
                x.copy_(torch.where(fixed, known, x))
    return x


def input_grad(energy, x, grad_enabled=True):
    """dE/dx for every image of x (grad mode is per thread: set it here, not by the caller)."""
    with torch.set_grad_enabled(grad_enabled):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return grad


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def fast_input_grad(energy, precision="fp32", compile=False, backend="inductor"):
    """x -> dE/dx, built once per model: the forward optionally autocast, the whole
    gradient optionally compiled. Returns None when neither is asked for (the plain path).

    The gradient is taken with torch.func.grad, so a compiled graph computes dE/dx only,
    never the parameters' gradients, and holds no autograd state between steps.
    """
    dtype = PRECISIONS[precision]
    if dtype is None and not compile:
        return None

    def total_energy(x):
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            energies = energy(x)
        return energies.float().sum()

    grad_of_total = torch.func.grad(total_energy)

    def grad(x):
        # func.grad ignores an outer no_grad for its own derivative, while the parameters
        # (which require grad in training) record no graph: the chain stays detached.
        with torch.no_grad():
            return grad_of_total(x)

    return torch.compile(grad, backend=backend) if compile else grad


def _parts(x, threads):
    if x.device.type != "cpu":
        return 1
    return max(1, min(threads or cpu_cores(), len(x)))


class _CpuSlices:
    """A thread pool for the slices, with torch's own kernels single-threaded meanwhile.

    The slices hand Python's GIL back and forth between every op; at the default 5 ms
    switch interval a thread ready to launch its next kernel often waits for the other
    one's Python code, so the interval is shortened while the pool runs (about 1.2x in
    benchmarks/sampler.py) and restored after.
    """

    SWITCH_INTERVAL_S = 1e-4

    def __init__(self, parts):
        self.parts, self.pool, self.saved = parts, None, None

    def __enter__(self):
        if self.parts > 1:
            self.saved = torch.get_num_threads(), sys.getswitchinterval()
            torch.set_num_threads(1)
            sys.setswitchinterval(self.SWITCH_INTERVAL_S)
            self.pool = ThreadPoolExecutor(self.parts)
        return self.pool

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
            torch.set_num_threads(self.saved[0])
            sys.setswitchinterval(self.saved[1])
