"""Langevin dynamics on the energy: x <- clamp(x + noise - step * clamp(dE/dx)), K times.

Gradients are taken with respect to the inputs only (`torch.autograd.grad`), so the
model's parameters and their `.grad` are never touched by sampling. The chain is
updated in place out of the autograd graph and the noise buffer is allocated once.

On a CPU with several cores, the batch is split into one slice per core and each
slice's gradient is computed on its own thread with single-threaded kernels: the small
convolutions of this network parallelise badly inside one op, and well across images.
The noise is still drawn for the whole batch from the one global generator, so the
samples are the same as with one thread (benchmarks/sampler.py measures both).
"""
from concurrent.futures import ThreadPoolExecutor

import torch

from ebm.runtime import cpu_cores


def langevin(energy, x, steps, step_size, noise_std, grad_clamp, no_grad_bug=False, threads=None):
    """Run `steps` Langevin steps from `x` (left unchanged); return the detached samples.

    no_grad_bug: reproduce experiment 1 of the seed, which sampled inside
    `torch.no_grad()`. The energy then carries no graph and the gradient call raises
    the real `RuntimeError: element 0 of tensors does not require grad and does not
    have a grad_fn`.
    threads: CPU slices computed in parallel (default: one per core; 1 = plain).
    """
    x = x.detach().clone()
    noise = torch.empty_like(x)
    grad_enabled = not no_grad_bug
    parts = _parts(x, threads)
    with _CpuSlices(parts) as pool:
        for _ in range(steps):
            if noise_std > 0:
                x.add_(noise.normal_(0.0, noise_std)).clamp_(-1.0, 1.0)
            if parts == 1:
                grad = input_grad(energy, x, grad_enabled)
            else:
                grad = torch.cat(list(pool.map(lambda s: input_grad(energy, s, grad_enabled), x.chunk(parts))))
            x.sub_(grad.clamp_(-grad_clamp, grad_clamp), alpha=step_size).clamp_(-1.0, 1.0)
    return x


def input_grad(energy, x, grad_enabled=True):
    """dE/dx for every image of x (grad mode is per thread: set it here, not by the caller)."""
    with torch.set_grad_enabled(grad_enabled):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return grad


def _parts(x, threads):
    if x.device.type != "cpu":
        return 1
    return max(1, min(threads or cpu_cores(), len(x)))


class _CpuSlices:
    """A thread pool for the slices, with torch's own kernels single-threaded meanwhile."""

    def __init__(self, parts):
        self.parts, self.pool, self.saved = parts, None, None

    def __enter__(self):
        if self.parts > 1:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)
            self.pool = ThreadPoolExecutor(self.parts)
        return self.pool

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown()
            torch.set_num_threads(self.saved)
