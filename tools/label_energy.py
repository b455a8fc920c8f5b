"""The energy each labelled kind of tile has under the model that drew it (docs/labelling.md).

    python tools/label_energy.py RUN=DIR ...    # e.g. seed43=/work/runs/s43 seed44=/work/runs/s44

For each run, the tiles of each experiment's last sample epoch and of the 20,000-step
generations (drawn by the final model; earlier epochs' models are not kept) are scored by
E(x) under that experiment's final checkpoint (DIR/checkpoints/<experiment>/checkpoint.pt),
beside the mean energy of 500 real test digits and of 500 U(-1, 1) noise images. Prints one
markdown table.
"""

import sys
from pathlib import Path

import pandas as pd
import torch

from ebm.data import load_digits, to_unit_range
from ebm.labels import load_labelled
from ebm.model import load_trained

KINDS = ("digit", "unclear", "noise", "blob", "speck", "other")


@torch.no_grad()
def energies(model, x):
    return model(torch.as_tensor(x, dtype=torch.float32)).flatten().numpy()


def main():
    runs = dict(arg.split("=", 1) for arg in sys.argv[1:])
    tiles, labels = load_labelled("labels")
    real = to_unit_range(
        load_digits(
            Path(next(iter(runs.values()))) / "data/mnist.npz",
            Path(next(iter(runs.values()))) / "metrics/data.json",
        )["x_test"][:500]
    )
    noise = torch.rand((500, 1, 28, 28), generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = []
    for run, directory in runs.items():
        mine = labels[labels["run"] == run]
        last = mine.groupby("stage")["epoch"].transform("max") == mine["epoch"]
        for stage, group in mine[last].groupby("stage", sort=False):
            experiment = stage.split("/")[-1]
            _, model = load_trained(
                Path(directory) / "checkpoints" / experiment / "checkpoint.pt", torch.device("cpu")
            )
            e = energies(model, to_unit_range(tiles[group["tile"].to_numpy()]))
            row = {
                "run": run,
                "tiles of": f"{stage}, epoch {group['epoch'].iloc[0]}",
                "real digits": float(energies(model, real).mean()),
                "U(-1, 1) noise": float(energies(model, noise).mean()),
            }
            for kind in KINDS:
                picked = (group["kind"] == kind).to_numpy()
                row[kind] = f"{e[picked].mean():.2f} ({picked.sum()})" if picked.any() else ""
            rows.append(row)
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
