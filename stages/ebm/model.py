"""The energy network: a small CNN, E(x) -> one energy per image, low on real digits.

The architecture of the UvA deep-learning tutorial 8 (Lippe): four strided convolutions
and two linear layers with Swish, ~77k parameters at width 32. The tutorial's network
outputs a score (high on data); here it outputs the energy E = -score, the sign the
original journey's loss uses.
"""

import json
from pathlib import Path

import torch
from torch import nn

from ebm.checkpoint import load_checkpoint, retrain
from ebm.errors import NoTrainedModel
from ebm.runtime import place


class EnergyNet(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        c = width
        self.body = nn.Sequential(
            nn.Conv2d(1, c // 2, kernel_size=5, stride=2, padding=4),  # 28 -> 16
            nn.SiLU(),  # SiLU is Swish
            nn.Conv2d(c // 2, c, kernel_size=3, stride=2, padding=1),  # 16 -> 8
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1),  # 8 -> 4
            nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, kernel_size=3, stride=2, padding=1),  # 4 -> 2
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * c * 4, 2 * c),
            nn.SiLU(),
            nn.Linear(2 * c, 1),
        )

    def forward(self, x):
        """x: (N, 1, 28, 28) in [-1, 1] -> energies (N,)."""
        return self.body(x).squeeze(-1)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def average_weights(average, model, decay):
    """The exponential moving average of the weights, one step on: average <- decay * average
    + (1 - decay) * weights (in place; None starts it at the weights). Improved CD (Du et al. 2021)
    trains with the last weights and samples with this average (decay 0.99), which smooths the
    iteration-to-iteration jitter of the energy that long chains otherwise follow."""
    weights = model.state_dict()
    if average is None:
        return {k: v.detach().clone() for k, v in weights.items()}
    with torch.no_grad():
        for k, v in weights.items():
            average[k].mul_(decay).add_(v, alpha=1 - decay)
    return average


def load_trained(path, device):
    """(checkpoint, its EnergyNet on `device`) from a training checkpoint: the moving average of
    the weights when training kept one (`ema` in the checkpoint), else the last weights. They are
    frozen, since evaluation and generation take gradients with respect to the inputs only. A file
    that cannot be read is a DataError naming it and the command that retrains it."""
    ckpt = load_checkpoint(path, device, retrain(Path(path).parent))
    model = place(EnergyNet(ckpt["config"]["model"]["width"]), device)
    model.load_state_dict(ckpt.get("ema") or ckpt["model"])
    return ckpt, model.eval().requires_grad_(False)


def load_finished(name, device, finished=True, checkpoints="checkpoints", records="metrics/train"):
    """(checkpoint, EnergyNet) of experiment `name`, as load_trained gives them: NoTrainedModel,
    naming the command that trains it, when its checkpoint or record is missing or, with
    `finished`, when its status is not ok. Generation and the abilities need a finished model;
    the evaluation also scores the last epoch a diverged run kept (finished=False)."""
    record, checkpoint = Path(records) / f"{name}.json", Path(checkpoints) / name / "checkpoint.pt"
    if not checkpoint.is_file() or (finished and not record.is_file()):
        raise NoTrainedModel(
            f"no trained model ({record} or {checkpoint} is missing); "
            f"run `dvc repro train@{name}` first"
        )
    if finished:
        status = json.loads(record.read_text())
        if status.get("status") != "ok":
            raise NoTrainedModel(
                f"{name} has training status {status.get('status')!r} ({status.get('error')}), "
                f"not 'ok'; rerun `dvc repro train@{name}`"
            )
    return load_trained(checkpoint, device)


@torch.no_grad()
def energies(model, x, device="cpu", batch=1000):
    """The energies of images x (N, 1, 28, 28) under `model` (any callable), `batch` at a time
    on `device`: a float32 tensor (N,) on the CPU."""
    return torch.cat([model(part.to(device)).float().cpu() for part in x.split(batch)])
