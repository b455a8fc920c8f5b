"""Langevin dynamics on the energy: x <- clamp(x + noise - step * clamp(dE/dx)), K times.

Gradients are taken with respect to the inputs only (`torch.autograd.grad`), so the
model's parameters and their `.grad` are never touched by sampling. The chain is
updated in place out of the autograd graph and the noise buffer is allocated once.
"""
import torch


def langevin(energy, x, steps, step_size, noise_std, grad_clamp, no_grad_bug=False):
    """Run `steps` Langevin steps from `x` (left unchanged); return the detached samples.

    no_grad_bug: reproduce experiment 1 of the seed, which sampled inside
    `torch.no_grad()`. The energy then carries no graph and the gradient call raises
    the real `RuntimeError: element 0 of tensors does not require grad and does not
    have a grad_fn`.
    """
    x = x.detach().clone()
    noise = torch.empty_like(x)
    mode = torch.no_grad() if no_grad_bug else torch.enable_grad()
    with mode:
        for _ in range(steps):
            if noise_std > 0:
                x.add_(noise.normal_(0.0, noise_std)).clamp_(-1.0, 1.0)
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
            x = x.detach()
            x.sub_(grad.clamp_(-grad_clamp, grad_clamp), alpha=step_size).clamp_(-1.0, 1.0)
    return x
