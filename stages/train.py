"""Train one experiment of the journey: an EBM with Langevin CD and a replay buffer.

    python stages/train.py final_training        # what `dvc repro train@final_training` runs

Reads `train` and `experiments.<name>` from params.yaml; writes metrics/train/<name>.json,
plots/train/<name>.csv (curves), plots/samples/<name>/samples_epoch_NNN.png and the
checkpoint checkpoints/<name>/checkpoint.pt, which a rerun after a crash resumes from.
"""
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from ebm.buffer import ReplayBuffer
from ebm.data import content_hash, load_digits, to_unit_range
from ebm.images import save_grid, to_uint8
from ebm.io import save_torch, write_csv, write_json
from ebm.model import EnergyNet
from ebm.objective import contrastive_loss
from ebm.params import experiment_config, load_params
from ebm.runtime import pick_device, rng_state, seed_everything, set_rng_state
from ebm.sampler import langevin
from ebm.stage import run_stage

CURVE_COLUMNS = ["step", "epoch", "loss", "e_pos", "e_neg", "cd", "reg", "r1", "grad_norm", "lr"]
SUMMARY_TERMS = ["loss", "e_pos", "e_neg", "cd", "reg", "r1"]


class Diverged(Exception):
    pass


class Experiment:
    """Model, optimiser, schedule, buffer and history of one run; saved whole in the checkpoint."""

    def __init__(self, name, cfg, device, data_hash):
        self.name, self.cfg, self.device, self.data_hash = name, cfg, device, data_hash
        seed_everything(cfg["seed"])
        self.model = EnergyNet(cfg["model"]["width"]).to(device)
        opt = cfg["optim"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]))
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1, gamma=opt["lr_decay"])
        buf = cfg["buffer"]
        self.buffer = ReplayBuffer(buf["capacity"], buf["restart_prob"], min(buf["initial_fill"], buf["capacity"]),
                                   device=device)
        self.epoch, self.history, self.grids, self.wall_time_s, self.sampling_s = 0, [], {}, 0.0, 0.0

    def checkpoint(self):
        return {"config": self.cfg, "data_hash": self.data_hash, "epoch": self.epoch,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "buffer": self.buffer.state_dict(),
                "rng": rng_state(), "history": self.history, "grids": self.grids,
                "wall_time_s": self.wall_time_s, "sampling_s": self.sampling_s}

    def resume(self, path):
        """Continue from a checkpoint of this same config and data; else start afresh."""
        if not path.exists():
            return False
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        if ckpt.get("config") != self.cfg or ckpt.get("data_hash") != self.data_hash:
            print(f"train: {path} was made with other params or data; starting afresh", file=sys.stderr)
            return False
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.buffer.load_state_dict(ckpt["buffer"])
        set_rng_state(ckpt["rng"])
        self.epoch, self.history, self.grids = ckpt["epoch"], ckpt["history"], ckpt["grids"]
        self.wall_time_s, self.sampling_s = ckpt["wall_time_s"], ckpt["sampling_s"]
        print(f"train: resuming {self.name} from {path} at epoch {self.epoch}", file=sys.stderr)
        return True

    def train_step(self, x_pos):
        cfg, s = self.cfg, self.cfg["sampler"]
        x_pos = (x_pos + cfg["loss"]["data_noise_std"] * torch.randn_like(x_pos)).clamp(-1, 1)
        started = time.perf_counter()
        x_neg = langevin(self.model, self.buffer.sample(len(x_pos)), s["steps"], s["step_size"],
                         s["noise_std"], s["grad_clamp"], s["no_grad_bug"])
        self.sampling_s += time.perf_counter() - started
        self.buffer.push(x_neg)
        loss, terms = contrastive_loss(self.model, x_pos, x_neg, cfg["loss"]["alpha"], cfg["loss"]["r1_weight"])
        if not all(math.isfinite(v) for v in terms.values()):
            raise Diverged(f"non-finite loss or energy: {terms}")
        if terms["e_max_abs"] > cfg["max_abs_energy"]:
            raise Diverged(f"|energy| {terms['e_max_abs']:.3g} beyond max_abs_energy {cfg['max_abs_energy']}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["optim"]["grad_clip"])
        self.optimizer.step()
        terms.update(grad_norm=grad_norm.item(), lr=self.optimizer.param_groups[0]["lr"])
        return x_neg, terms

    def run_epoch(self, images, progress):
        cfg = self.cfg
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg["seed"] * 100_003 + self.epoch))
        batches = len(images) // cfg["batch_size"]
        for b in range(batches):
            idx = order[b * cfg["batch_size"]:(b + 1) * cfg["batch_size"]]
            x_neg, terms = self.train_step(images[idx].to(self.device))
            self.history.append({"step": len(self.history) + 1, "epoch": self.epoch + 1, **terms})
            progress.update(1)
            progress.set_postfix(loss=f"{terms['loss']:.3f}", e_pos=f"{terms['e_pos']:.2f}", e_neg=f"{terms['e_neg']:.2f}")
        self.epoch += 1
        self.schedule.step()
        if self.epoch in cfg["sample_epochs"] or self.epoch == cfg["epochs"]:
            self.grids[self.epoch] = to_uint8(x_neg[: cfg["grid_size"]])


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


def write_outputs(exp, paths, status, error=None):
    cfg = exp.cfg
    write_csv(paths["curve"], curves(exp.history, cfg["log_every"]))
    for epoch, grid in exp.grids.items():
        save_grid(paths["samples"] / f"samples_epoch_{epoch:03d}.png", grid)
    steps = len(exp.history) * cfg["batch_size"] * cfg["sampler"]["steps"]
    metrics = {"experiment": exp.name, "status": status, "error": error,
               "epochs_done": exp.epoch, "iterations": len(exp.history), **summary(exp.history),
               "wall_time_s": round(exp.wall_time_s, 2),
               "langevin_img_steps_per_s": round(steps / exp.sampling_s, 1) if exp.sampling_s else None,
               "device": str(exp.device)}
    write_json(paths["metrics"], metrics)
    return metrics


def train(name, params):
    cfg = experiment_config(params, name)
    device = pick_device(params["device"])
    digits = load_digits()
    images = to_unit_range(digits["x_train"])
    if cfg["train_subset"]:
        images = images[: cfg["train_subset"]]
    paths = {"checkpoint": Path("checkpoints") / name / "checkpoint.pt", "samples": Path("plots/samples") / name,
             "curve": Path("plots/train") / f"{name}.csv", "metrics": Path("metrics/train") / f"{name}.json"}
    paths["samples"].mkdir(parents=True, exist_ok=True)
    paths["checkpoint"].parent.mkdir(parents=True, exist_ok=True)

    exp = Experiment(name, cfg, device, content_hash(digits))
    exp.resume(paths["checkpoint"])
    total = (len(images) // cfg["batch_size"]) * cfg["epochs"]
    status, error = "ok", None
    with tqdm(total=total, initial=len(exp.history), desc=name, mininterval=2.0, file=sys.stderr) as progress:
        try:
            while exp.epoch < cfg["epochs"]:
                started = time.perf_counter()
                exp.run_epoch(images, progress)
                exp.wall_time_s += time.perf_counter() - started
                save_torch(paths["checkpoint"], exp.checkpoint())
                write_outputs(exp, paths, "running")
        except Diverged as err:
            status, error = "diverged", f"epoch {exp.epoch + 1}: {err}"
            print(f"train: {name} diverged ({error}); the last good checkpoint is kept", file=sys.stderr)
        except RuntimeError as err:
            if not cfg["expected_error"] or cfg["expected_error"] not in str(err):
                raise
            status, error = "expected_error", f"{type(err).__name__}: {err}"
            print(f"train: {name} raised its expected error: {error}", file=sys.stderr)
    if cfg["expected_error"] and status != "expected_error":
        raise RuntimeError(f"experiment {name} declares expected_error {cfg['expected_error']!r}, "
                           f"but training ended with status {status!r}")
    return write_outputs(exp, paths, status, error)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python stages/train.py <experiment>")
    params = load_params(sections=["train", "experiments"])
    metrics = train(argv[0], params)
    print({k: metrics[k] for k in ("experiment", "status", "epochs_done", "wall_time_s") if k in metrics})


if __name__ == "__main__":
    run_stage(main)
