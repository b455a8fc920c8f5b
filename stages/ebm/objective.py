"""The training objective: contrastive divergence plus the two regularisers.

loss = mean(E_pos) - mean(E_neg)                 contrastive divergence: data down, samples up
     + alpha * mean(E_pos^2 + E_neg^2)           keeps energies near 0 (its trivial minimum is
                                                 E_pos = -1/(2 alpha), E_neg = +1/(2 alpha))
     + r1_weight * mean(|dE/dx at data|^2)       R1: a smooth energy around real digits
and, opt-in (improved_cd_terms), Improved CD's two terms through one more sampler step.
"""

import torch


def contrastive_loss(model, x_pos, x_neg, alpha, r1_weight):
    """Return (loss, terms) where terms holds detached floats of each part, for logging."""
    if r1_weight > 0:
        x_pos = x_pos.detach().requires_grad_(True)
    energies = model(torch.cat([x_pos, x_neg]))  # one forward for both halves
    e_pos, e_neg = energies[: len(x_pos)], energies[len(x_pos) :]
    cd = e_pos.mean() - e_neg.mean()
    reg = alpha * (e_pos.pow(2) + e_neg.pow(2)).mean()
    r1 = energies.new_zeros(())
    if r1_weight > 0:
        # create_graph: the penalty is itself differentiated (a double backward).
        (grad,) = torch.autograd.grad(e_pos.sum(), x_pos, create_graph=True)
        r1 = r1_weight * grad.pow(2).flatten(1).sum(1).mean()
    loss = cd + reg + r1
    terms = {
        "loss": loss.item(),
        "e_pos": e_pos.mean().item(),
        "e_neg": e_neg.mean().item(),
        "cd": cd.item(),
        "reg": reg.item(),
        "r1": r1.item(),
        "e_max_abs": energies.detach().abs().max().item(),
    }
    return loss, terms


def improved_cd_terms(model, x_neg, chain, reference):
    """Improved CD's terms (Du et al. 2021), from the negatives moved one more noise-free step of
    `chain` downhill, differentiably in the model's parameters. Returns (kl, repel):

    kl     the energy of the stepped negatives, with the energy's own parameters held fixed: the
           gradient flows only through the step, and teaches the energy a gradient along which
           its sampler goes downhill (the part of the KL divergence that CD leaves out);
    repel  the mean log distance of the stepped negatives to their nearest `reference` image
           (past negatives): a nearest-neighbour entropy estimate, to be maximised.
    """
    x = x_neg.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    stepped = (x - chain.step_size * grad.clamp(-chain.grad_clamp, chain.grad_clamp)).clamp(-1, 1)
    frozen = {name: p.detach() for name, p in model.named_parameters()}
    kl = torch.func.functional_call(model, frozen, (stepped,)).mean()
    nearest = torch.cdist(stepped.flatten(1), reference.flatten(1)).min(1).values
    return kl, torch.log(nearest + 1e-6).mean()
