"""Generate: long Langevin chains from noise under one trained model, judged as they run.

    python stages/generate.py long_run          # what `dvc repro generate@long_run` runs
    python stages/generate.py final_training    # exp 5's model, for comparison

Reads params.yaml `generate` and the model's checkpoint; runs `generate.chains[<model>]`
chains for `steps` Langevin steps from U(-1, 1) noise (or from the model's replay buffer),
with the noise std moving linearly from `noise_std` to `noise_std_final`. The chains are
recorded at each step of `snapshots` (0 = the starting state; the last step always is) and
scored there by the judge (ebm.quality: density, coverage, recognisable, class entropy,
ink, ...), beside what as many real digits score. Writes, atomically, in plots/generate/<model>/:
  hq_samples_k<steps>.png   the final grid, the first 64 chains (EBM-MNIST-Journey's
                            hq_samples_k20000.png)
  chain_snapshots.png       `show_chains` chains (rows) at every snapshot (columns)
  energy.csv                energy quantiles at every snapshot and every SEGMENT steps
  class_counts.csv          the judge's predicted classes at every snapshot (a row each)
  verdict.json              the verdict in full: every check with its rule, and a summary
and metrics/generate/<model>.json: the figures per snapshot, the real line, the real digits
binarised (`binarised_real`: every pixel at -1 or +1), the verdict's checks.
The real line includes the test digits' own energy (mean, 5% and 95% quantiles), and each snapshot
the share of chains below the test digits' 5% quantile (`below_real_energy`): a chain that sinks
under nearly every real digit has found a low-energy state the data does not have.
Nijkamp et al. (2020): a model whose long chains stay realistic is "convergent"; one whose
chains drift (oversaturate, collapse to few classes, dissolve into noise) learnt a sampler
that only works for its short training chains. The verdict says which, from the numbers.
"""

import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ebm import paths
from ebm.buffer import uniform_noise
from ebm.data import load_digits, to_unit_range
from ebm.generation import verdict
from ebm.images import save_grid, to_uint8
from ebm.io import atomic_path, rounded, write_csv, write_json
from ebm.judge import load_judge
from ebm.model import energies, load_finished
from ebm.params import ParamsError, load_params
from ebm.quality import real_line, reference, score
from ebm.runtime import pick_device, seed_everything
from ebm.sampler import Chain, langevin
from ebm.stage import run_stage

SEGMENT = 500  # most steps per sampler call: the noise schedule is constant within one
GRID = 64  # images in the final grid

# Beyond the claim, reported beside the verdict (`beyond_the_claim`) and never in it: how typical
# of MNIST's strokes the chains are, and their ink and white (saturated stroke) fractions against
# the test digits'.
# The binarised real line's figures: real digits with every pixel at +-1, the style of a cold chain.
BINARISED_FIGURES = (
    "fld",
    "density",
    "coverage",
    "recognisable",
    "typical",
    "typical_vs_real",
    "class_entropy",
    "ink",
    "white",
)


def chains_for(cfg, name):
    """How many chains to run for this model: `generate.chains` names every model generation
    runs."""
    if name not in cfg.chains:
        raise ParamsError(
            f"params.yaml: generate.chains has no entry {name!r} (models it names: "
            f"{', '.join(cfg.chains)})"
        )
    return cfg.chains[name]


def snapshot_steps(cfg):
    """The sorted snapshot steps; the last step is always one. (load_params has already checked
    that every snapshot is within `steps` and that `show_chains` fits every model's chains.)"""
    return sorted(set(cfg.snapshots) | {cfg.steps})


def initial_chains(cfg, n, ckpt, device):
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.init == "noise":
        return uniform_noise(n, (1, 28, 28), "cpu", generator).to(device)
    images, size = ckpt["buffer"]["images"], ckpt["buffer"]["size"]
    if size >= n:
        picks = torch.randperm(size, generator=generator)[:n]
    else:
        picks = torch.randint(0, size, (n,), generator=generator)
    return images[picks].to(device)


def run_chains(model, x, cfg, snapshots):
    """Langevin in segments (<= SEGMENT steps, noise at the segment's midpoint of the linear
    schedule).

    Returns ({step: samples on the CPU} at the snapshots, energy rows at every boundary,
    sampling seconds).
    """
    steps = cfg.steps
    bounds = sorted(set(snapshots) | set(range(0, steps, SEGMENT)) | {steps})
    kept, rows, sampling_s = {}, [], 0.0

    def record(step):
        with torch.no_grad():
            energy = model(x).float().cpu().numpy()
        q05, q25, median, q75, q95 = np.quantile(energy, [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append(
            {
                "step": step,
                "mean": float(energy.mean()),
                "q05": q05,
                "q25": q25,
                "median": median,
                "q75": q75,
                "q95": q95,
            }
        )
        if step in snapshots:
            kept[step] = x.detach().cpu().clone()

    record(0)
    with tqdm(total=steps, desc="generate", unit="step", mininterval=2.0, file=sys.stderr) as bar:
        for start, end in zip(bounds[:-1], bounds[1:]):
            frac = (start + end) / 2 / steps
            noise_std = cfg.noise_std + (cfg.noise_std_final - cfg.noise_std) * frac
            began = time.perf_counter()
            x = langevin(model, x, Chain.of(cfg, steps=end - start, noise_std=noise_std))
            if x.is_cuda:
                torch.cuda.synchronize()
            sampling_s += time.perf_counter() - began
            bar.update(end - start)
            record(end)
    return kept, pd.DataFrame(rows), sampling_s


def real_energy(model, digits, device):
    """The test digits' energy under the model: where chains that stay among the digits should
    sit."""
    energy = energies(model, to_unit_range(digits["x_test"]), device).numpy()
    q05, q95 = np.quantile(energy, [0.05, 0.95])
    return {"energy_mean": float(energy.mean()), "energy_q05": float(q05), "energy_q95": float(q95)}


def below_real_energy(model, kept, threshold, device):
    """{step: share of the chains whose energy is below `threshold`} at every snapshot."""
    return {
        step: float((energies(model, x, device) < threshold).float().mean())
        for step, x in kept.items()
    }


def binarised_line(judge, digits, ref, seed):
    """What N real train digits score with every pixel set to -1 or +1 (threshold 0): digit shapes
    as real as the data's, drawn in the style of a cold chain, whose gradient steps carry nearly
    every pixel to an end of [-1, 1], where it is clamped. It tells two failures apart: such digits
    stay legible but are as white as their ink, so a `white` failure alone says the strokes lack
    grey edges, not that their shapes are wrong."""
    picks = torch.randperm(len(digits["x_train"]), generator=torch.Generator().manual_seed(seed))[
        : ref.n
    ]
    real = to_unit_range(digits["x_train"][np.sort(picks.numpy())])
    figures = score(judge, torch.where(real > 0, 1.0, -1.0), ref)
    return rounded({k: figures[k] for k in BINARISED_FIGURES})


def judge_snapshots(kept, cfg, device):
    """({step: rounded figures}, class counts per snapshot, the real line at N = the chains,
    the binarised real line)."""
    judge, digits = load_judge(device=device), load_digits()
    ref = reference(judge, digits, n=len(next(iter(kept.values()))), seed=cfg.seed)
    out, class_counts = {}, []
    for step, samples in sorted(kept.items()):
        figures = score(judge, samples, ref)
        counts = figures.pop("class_counts")
        for unused in ("n", "class_coverage", "recognised_counts"):
            figures.pop(unused)
        out[str(step)] = rounded(figures)
        class_counts.append({"step": step, **{str(d): int(c) for d, c in enumerate(counts)}})
    return (
        out,
        pd.DataFrame(class_counts),
        rounded(real_line(ref)),
        binarised_line(judge, digits, ref, cfg.seed),
    )


def metric_view(judged):
    """The verdict as `dvc metrics show` columns: numbers, flags and the one-word verdict. The
    rules' text and the summary sentence stay in verdict.json, where they do not widen the
    table."""
    view = {k: v for k, v in judged.items() if k not in ("checks", "summary", "failed")}
    view["checks"] = {
        k: {"value": c["value"], "passed": c["passed"]} for k, c in judged["checks"].items()
    }
    return view


def save_snapshot_grid(path, kept, show):
    steps = sorted(kept)
    fig, axes = plt.subplots(
        show, len(steps), figsize=(1.1 * len(steps) + 0.6, 1.1 * show + 0.5), squeeze=False
    )
    for col, step in enumerate(steps):
        for row in range(show):
            ax = axes[row][col]
            ax.imshow(kept[step][row, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0][col].set_title(f"step {step:,}", fontsize=8)
    for row in range(show):
        axes[row][0].set_ylabel(f"chain {row}", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(
            "usage: python stages/generate.py <model>   (a name in params.yaml generate.chains)"
        )
    name = argv[0]
    params = load_params(sections=["generate"])
    device, cfg = pick_device(params.device), params.generate
    chains = chains_for(cfg, name)
    snapshots = snapshot_steps(cfg)
    seed_everything(cfg.seed)
    ckpt, model = load_finished(name, device)
    started = time.perf_counter()
    kept, energy, sampling_s = run_chains(
        model, initial_chains(cfg, chains, ckpt, device), cfg, snapshots
    )

    per_step, class_counts, real, binarised = judge_snapshots(kept, cfg, device)
    real.update(rounded(real_energy(model, load_digits(), device)))
    below = below_real_energy(model, kept, real["energy_q05"], device)
    for step, frame in energy.groupby("step"):
        if str(step) in per_step:
            per_step[str(step)]["energy_mean"] = round(float(frame["mean"].iloc[0]), 4)
            per_step[str(step)]["below_real_energy"] = round(below[step], 4)

    out = paths.generate_plots(name)
    for stale in out.glob("hq_samples_k*.png"):
        if stale.name != f"hq_samples_k{cfg.steps}.png":
            stale.unlink()
    save_grid(out / f"hq_samples_k{cfg.steps}.png", to_uint8(kept[cfg.steps][:GRID]))
    save_snapshot_grid(out / "chain_snapshots.png", kept, cfg.show_chains)
    # the test digits' energy band beside the chains', for `dvc plots show` to draw both
    band = {f"digits_{k}": real[f"energy_{k}"] for k in ("q05", "mean", "q95")}
    write_csv(out / "energy.csv", energy.assign(**band))
    write_csv(out / "class_counts.csv", class_counts)
    judged = verdict(per_step, real)
    write_json(out / "verdict.json", judged)
    result = {
        "experiment": name,
        "checkpoint_epoch": ckpt.get("epoch"),
        "weights": "moving average" if ckpt.get("ema") else "last",
        "steps": cfg.steps,
        "chains": chains,
        "init": cfg.init,
        "device": str(device),
        "wall_time_s": round(time.perf_counter() - started, 2),
        "sampling_s": round(sampling_s, 2),
        "langevin_img_steps_per_s": round(cfg.steps * chains / sampling_s, 1),
        "real": real,
        "binarised_real": binarised,
        "snapshots": per_step,
        "verdict": metric_view(judged),
    }
    write_json(paths.generate_record(name), result)
    print(
        f"generate {name}: {cfg.steps} steps x {chains} chains on {device} in "
        f"{result['wall_time_s']} s; {judged['summary']}"
    )


if __name__ == "__main__":
    run_stage(main)
