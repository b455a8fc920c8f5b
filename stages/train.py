"""Train one experiment of the journey: an EBM with Langevin CD and a replay buffer.

    python stages/train.py final_training        # what `dvc repro train@final_training` runs
    torchrun --nproc_per_node 4 stages/train.py final_training   # data-parallel, 4 GPUs

Reads `train` and `experiments.<name>` from params.yaml; writes metrics/train/<name>.json,
plots/train/<name>.csv (curves), plots/negatives/<name>.csv (what the judge makes of the
training negatives at each epoch's end: class histogram, class entropy, coverage, the replay
buffer's chain ages, ...), plots/generated/<name>.csv (the same of the model's generated
samples at every sample epoch), the grids plots/samples/<name>/generated_epoch_NNN.png and
samples_epoch_NNN.png (the latest negatives), and the checkpoint
checkpoints/<name>/checkpoint.pt, from which a rerun after a crash resumes. The judge
(`dvc repro judge`) must exist first.
The run itself (model, buffer, one iteration, the checkpoint) is `ebm.training.Experiment`.
"""

import sys
import time

import pandas as pd
import torch
from tqdm import tqdm

from ebm import distributed, paths
from ebm.checkpoint import save_checkpoint
from ebm.config import LongRun
from ebm.data import content_hash, load_digits, to_unit_range
from ebm.images import save_grid
from ebm.io import write_csv, write_json
from ebm.judge import load_judge
from ebm.params import ParamsError, experiment_config, load_params
from ebm.quality import reference
from ebm.runtime import pick_device
from ebm.stage import run_stage
from ebm.training import (
    AGE_COLUMNS,
    GENERATED_FIGURES,
    TRACKED,
    TRACKED_FIGURES,
    Diverged,
    Experiment,
)

CURVE_COLUMNS = ["step", "epoch", "loss", "e_pos", "e_neg", "cd", "reg", "r1", "grad_norm", "lr"]
SUMMARY_TERMS = ["loss", "e_pos", "e_neg", "cd", "reg", "r1"]


def age_distribution(buffer):
    """The buffer's chain ages at the end: mean, quantiles and maximum, in draws and in steps."""
    out = {}
    for unit, ages in zip(("draws", "steps"), buffer.ages()):
        ages = ages.double().cpu()
        quantiles = torch.quantile(
            ages, torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64)
        ).tolist()
        out[unit] = {
            "mean": round(ages.mean().item(), 2),
            **{k: round(q, 1) for k, q in zip(("median", "q90", "q99"), quantiles)},
            "max": int(ages.max()),
        }
    return out


def curves(history, every):
    """Per-iteration history -> window means every `every` iterations (the plotted curve)."""
    frame = pd.DataFrame(history, columns=CURVE_COLUMNS + ["e_max_abs"])
    if frame.empty:
        return frame[CURVE_COLUMNS]
    window = (frame["step"] - 1) // every
    out = frame.groupby(window).mean(numeric_only=True)
    out["step"] = frame.groupby(window)["step"].max()
    out["epoch"] = frame.groupby(window)["epoch"].max()
    return out[CURVE_COLUMNS]


def summary(history):
    frame = pd.DataFrame(history)
    if frame.empty:
        return {}
    tail = frame.tail(max(1, len(frame) // 10))
    out = {f"final_{k}": float(frame[k].iloc[-1]) for k in SUMMARY_TERMS}
    out.update({f"last10pct_{k}": float(tail[k].mean()) for k in SUMMARY_TERMS})
    return out


def write_outputs(exp, where, status, error=None):
    cfg = exp.cfg
    write_csv(where["curve"], curves(exp.history, cfg.log_every))
    classes = [f"class_{d}" for d in range(10)]
    write_csv(
        where["negatives"],
        pd.DataFrame(
            exp.tracked, columns=["step", "epoch", *TRACKED_FIGURES, *classes, *AGE_COLUMNS]
        ),
    )
    write_csv(
        where["generated"],
        pd.DataFrame(exp.generated, columns=["step", "epoch", *GENERATED_FIGURES, *classes]),
    )
    for epoch, grid in exp.grids.items():
        save_grid(where["samples"] / f"samples_epoch_{epoch:03d}.png", grid)
    for epoch, grid in exp.generated_grids.items():
        save_grid(where["samples"] / f"generated_epoch_{epoch:03d}.png", grid)
    # Git keeps no empty folder: without a file here, a clone (or a queued experiment's workspace)
    # would see this output as deleted and rerun the stage. A grey grid stands in for no samples.
    if exp.grids:
        (where["samples"] / "no_samples.png").unlink(missing_ok=True)
    else:
        save_grid(
            where["samples"] / "no_samples.png", torch.full((1, 1, 28, 28), 128, dtype=torch.uint8)
        )
    pool = cfg.pool if isinstance(cfg, LongRun) else None
    from_pool = round(pool.share * cfg.batch_size) if pool else 0
    per_iteration = (cfg.batch_size - from_pool) * cfg.sampler.steps + (
        pool.chains * pool.steps if pool else 0
    )
    steps = len(exp.history) * per_iteration
    metrics = {
        "experiment": exp.name,
        "status": status,
        "error": error,
        "epochs_done": exp.epoch,
        "iterations": len(exp.history),
        **summary(exp.history),
        "wall_time_s": round(exp.wall_time_s, 2),
        "langevin_img_steps_per_s": round(steps / exp.sampling_s, 1) if exp.sampling_s else None,
        "device": str(exp.device),
        "world_size": exp.world,
        "buffer_capacity": exp.buffer.capacity,
        "buffer_age": age_distribution(exp.buffer),
    }
    if exp.pool:
        ages = exp.pool.ages.float()
        metrics.update(
            continues=cfg.continues,
            pool_oldest_chain_steps=int(ages.max()),
            pool_median_chain_steps=int(ages.median()),
        )
    write_json(where["metrics"], metrics)
    return metrics


def train(name, params):
    cfg = experiment_config(params, name)
    rank, world, device = distributed.init(params.device, pick_device)
    if cfg.batch_size % world:
        raise ParamsError(
            f"params.yaml: {name}'s batch_size {cfg.batch_size} does not split over {world} "
            f"processes; pick a multiple of {world}"
        )
    digits = load_digits()
    images = to_unit_range(digits["x_train"])
    if cfg.train_subset:
        images = images[: cfg.train_subset]
    where = {
        "checkpoints": paths.checkpoints(name),
        "samples": paths.samples(name),
        "curve": paths.curve(name),
        "negatives": paths.negatives(name),
        "generated": paths.generated(name),
        "metrics": paths.train_record(name),
    }
    for folder in (where["samples"], where["checkpoints"]):
        # DVC wants every declared output, even after an error
        folder.mkdir(parents=True, exist_ok=True)

    exp = Experiment(name, cfg, device, content_hash(digits), rank, world)
    # before resume: building the judge draws from the global RNG, which resume then restores
    if rank == 0:
        judge = load_judge(device=device)
        ref = reference(judge, digits, TRACKED, seed=0)
    if not exp.resume(where["checkpoints"]) and isinstance(cfg, LongRun):
        exp.continue_from(cfg.continues)
    own_checkpoint = where["checkpoints"] / (
        "checkpoint.pt" if rank == 0 else f"checkpoint_rank{rank}.pt"
    )
    total = (len(images) // cfg.batch_size) * cfg.epochs
    status, error = "ok", None
    with tqdm(
        total=total,
        initial=len(exp.history),
        desc=name,
        mininterval=2.0,
        file=sys.stderr,
        disable=rank != 0,
    ) as progress:
        try:
            while exp.epoch < cfg.epochs:
                started = time.perf_counter()
                exp.run_epoch(images, progress)
                exp.wall_time_s += time.perf_counter() - started
                if rank == 0:
                    exp.track(judge, ref)
                    if exp.sample_epoch():
                        exp.generate(judge, ref)
                save_checkpoint(own_checkpoint, exp.checkpoint())
                if rank == 0:
                    write_outputs(exp, where, "running")
        except Diverged as err:
            status, error = "diverged", f"epoch {exp.epoch + 1}: {err}"
            print(
                f"train: {name} diverged ({error}); the last good checkpoint is kept",
                file=sys.stderr,
            )
        except RuntimeError as err:
            if not cfg.expected_error or cfg.expected_error not in str(err):
                raise
            status, error = "expected_error", f"{type(err).__name__}: {err}"
            print(f"train: {name} raised its expected error: {error}", file=sys.stderr)
    # this run saved no epoch: a checkpoint still there is another config's
    if exp.epoch == 0 and rank == 0:
        for stale in sorted(where["checkpoints"].glob("checkpoint*.pt")):
            stale.unlink()  # (evaluate would score it as this run's model)
            print(f"train: removed {stale}, made with other params", file=sys.stderr)
    if cfg.expected_error and status != "expected_error":
        raise RuntimeError(
            f"experiment {name} declares expected_error {cfg.expected_error!r}, but training "
            f"ended with status {status!r}"
        )
    metrics = write_outputs(exp, where, status, error) if rank == 0 else None
    distributed.barrier(world)
    distributed.finish(world)
    return metrics


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python stages/train.py <experiment>")
    params = load_params(
        sections=["train", "experiments"] + (["long_run"] if argv[0] == "long_run" else [])
    )
    metrics = train(argv[0], params)
    if metrics:
        print({k: metrics[k] for k in ("experiment", "status", "epochs_done", "wall_time_s")})


if __name__ == "__main__":
    run_stage(main)
