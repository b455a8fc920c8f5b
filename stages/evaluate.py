"""Score one experiment's model with the judge: fresh chains and its replay buffer.

    python stages/evaluate.py final_training     # what `dvc repro evaluate@final_training` runs

The protocol, the same for all five experiments (params.yaml `evaluate`, N = num_samples):
  fresh   N chains start from U(-1, 1) and run `fresh_steps` Langevin steps with the
          experiment's own sampler (step_size, noise_std, grad_clamp from its checkpoint),
          `batch_size` chains at a time: what the energy function itself has learnt.
  buffer  N images of the checkpoint's replay buffer, drawn without replacement (with
          replacement only when it holds fewer): what training's persistent chains hold.
Both are scored by `ebm.quality.score` against the test split (density, coverage, precision,
recall, realism-gated recognisable, per-class coverage, class entropy, ink, the Frechet
distance), beside `real`: what N real train digits score the same way, and the noise
ceiling. Every random number comes from evaluate.seed (starts and picks from seeded
generators, the Langevin noise from the seeded global RNG), so a rerun on the same machine
repeats the numbers.

Writes metrics/eval/<name>.json, plots/eval/<name>_classes.csv (per predicted class: the share
of samples and the class's coverage) and 8x8 grids plots/eval/<name>/{fresh,buffer}.png. An
experiment without a checkpoint (initial_attempt's expected error, a run that diverged before
its first epoch) gets status "no_model", null metrics and placeholder plots.
"""

import json
import sys
import time

import pandas as pd
import torch
from PIL import Image, ImageDraw

from ebm import paths
from ebm.data import load_digits, to_unit_range
from ebm.images import save_grid, to_uint8
from ebm.io import atomic_path, rounded, write_csv, write_json
from ebm.judge import load_judge
from ebm.errors import NoTrainedModel
from ebm.model import energies, load_finished
from ebm.params import experiment_names, load_params
from ebm.quality import FIGURES, real_line, reference, score
from ebm.runtime import pick_device, seed_everything
from ebm.sampler import Chain, langevin
from ebm.stage import run_stage

GRID = 64


def fresh_samples(model, chain, n, batch_size, seed, device):
    """n chains from U(-1, 1) (seeded), `chain.steps` Langevin steps each, in batches; on the
    CPU."""
    starts = torch.Generator().manual_seed(seed)
    seed_everything(seed)  # the Langevin noise comes from the global RNG
    out = []
    for begin in range(0, n, batch_size):
        x0 = (torch.rand((min(batch_size, n - begin), 1, 28, 28), generator=starts) * 2 - 1).to(
            device
        )
        out.append(langevin(model, x0, chain).cpu())
    return torch.cat(out)


def buffer_samples(buffer_state, n, seed):
    """n images of the replay buffer (seeded), without replacement when it holds at least n."""
    images = buffer_state["images"][: buffer_state["size"]].cpu()
    generator = torch.Generator().manual_seed(seed)
    if len(images) >= n:
        return images[torch.randperm(len(images), generator=generator)[:n]], False
    return images[torch.randint(0, len(images), (n,), generator=generator)], True


def load_model(name, device):
    """The model (a diverged run's last kept epoch too), or None without a checkpoint: the
    metrics then say "no_model"."""
    try:
        return load_finished(name, device, finished=False)
    except NoTrainedModel:
        return None


def scored(judge, samples, ref):
    """(the figures for the metrics file, per-class columns for the classes CSV)."""
    figures = score(judge, samples, ref)
    counts, coverage = figures.pop("class_counts"), figures.pop("class_coverage")
    figures.pop("recognised_counts")
    figures.pop("n")
    return rounded(figures), {
        "share": [c / max(sum(counts), 1) for c in counts],
        "coverage": coverage,
    }


def placeholder(path, text):
    """A grey grid-sized PNG saying why there are no samples."""
    image = Image.new("L", (242, 242), 128)
    ImageDraw.Draw(image).text((10, 112), text, fill=255)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def evaluate(name, params):
    cfg, device = params.evaluate, pick_device(params.device)
    started = time.perf_counter()
    train_record = paths.train_record(name)
    train_status = (
        json.loads(train_record.read_text()).get("status") if train_record.is_file() else None
    )
    loaded = load_model(name, device)
    n, grids = cfg.num_samples, paths.eval_grids(name)
    metrics = {
        "experiment": name,
        "status": "no_model",
        "train_status": train_status,
        "num_samples": n,
        "fresh_steps": cfg.fresh_steps,
        "seed": cfg.seed,
    }
    columns = {
        f"{kind}{suffix}": [None] * 10
        for kind in ("fresh", "buffer")
        for suffix in ("", "_coverage")
    }
    if loaded is None:
        metrics.update(fresh={k: None for k in FIGURES}, buffer={k: None for k in FIGURES})
        for kind in ("fresh", "buffer"):
            placeholder(grids / f"{kind}.png", f"no model ({train_status})")
    else:
        ckpt, model = loaded
        judge, digits = load_judge(device=device), load_digits()
        ref = reference(judge, digits, n, cfg.seed)
        # the experiment's own sampler, for the fresh chains' steps
        own = ckpt["config"]["sampler"]
        sampler = {k: own[k] for k in ("step_size", "noise_std", "grad_clamp")}
        picked, replaced = buffer_samples(ckpt["buffer"], n, cfg.seed + 1)
        sampling = time.perf_counter()
        fresh = fresh_samples(
            model, Chain(steps=cfg.fresh_steps, **sampler), n, cfg.batch_size, cfg.seed + 2, device
        )
        sampling = time.perf_counter() - sampling
        metrics.update(
            status=train_status or "unknown",
            checkpoint_epoch=ckpt["epoch"],
            sampler=sampler,
            buffer_size=int(ckpt["buffer"]["size"]),
            buffer_with_replacement=replaced,
        )
        with torch.no_grad():
            energy = {
                kind: round(energies(model, x, device).mean().item(), 4)
                for kind, x in (
                    ("fresh", fresh),
                    ("buffer", picked),
                    ("test", to_unit_range(digits["x_test"])),
                )
            }
        for kind, samples in (("fresh", fresh), ("buffer", picked)):
            metrics[kind], per_class = scored(judge, samples, ref)
            metrics[kind]["energy"] = energy[kind]
            columns[kind], columns[f"{kind}_coverage"] = per_class["share"], per_class["coverage"]
            save_grid(grids / f"{kind}.png", to_uint8(samples[:GRID]))
        metrics.update(
            real=rounded(real_line(ref)),
            test_energy=energy["test"],
            fresh_sampling_s=round(sampling, 2),
        )
    metrics.update(wall_time_s=round(time.perf_counter() - started, 2), device=str(device))
    write_csv(paths.eval_classes(name), pd.DataFrame({"class": range(10), **columns}))
    write_json(paths.eval_record(name), metrics)
    return metrics


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in experiment_names():
        raise SystemExit(
            f"usage: python stages/evaluate.py <experiment>  ({' | '.join(experiment_names())})"
        )
    metrics = evaluate(argv[0], load_params(sections=["evaluate"]))
    scores = {
        kind: {
            k: metrics[kind][k] for k in ("density", "coverage", "recognisable", "class_entropy")
        }
        for kind in ("fresh", "buffer")
    }
    print({k: metrics[k] for k in ("experiment", "status", "wall_time_s")}, scores)


if __name__ == "__main__":
    run_stage(main)
