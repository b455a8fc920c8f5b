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

Generated samples are what the original journey's pictures show ("generated samples were
fuzzy blobs"): at every sample epoch, `generated_chains` chains from U(-1, 1) run
`generated_steps` steps of the experiment's own sampler under the current model, from a seed
of their own, so the training's random numbers are the same with or without them.
"""

import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from ebm import distributed
from ebm.buffer import ChainPool, ReplayBuffer
from ebm.data import content_hash, load_digits, to_unit_range
from ebm.graphs import chain_runner
from ebm.images import save_grid, to_uint8
from ebm.checkpoint import load_checkpoint, retrain, save_checkpoint
from ebm.io import write_csv, write_json
from ebm.judge import load_judge
from ebm.model import EnergyNet, average_weights
from ebm.objective import contrastive_loss, improved_cd_terms
from ebm.params import ParamsError, experiment_config, load_params
from ebm.quality import reference, rounded, score
from ebm.runtime import pick_device, place, rng_state, seed_everything, set_rng_state
from ebm.sampler import Chain, fast_input_grad, langevin
from ebm.stage import run_stage

CURVE_COLUMNS = ["step", "epoch", "loss", "e_pos", "e_neg", "cd", "reg", "r1", "grad_norm", "lr"]
SUMMARY_TERMS = ["loss", "e_pos", "e_neg", "cd", "reg", "r1"]
# the most recent negatives scored at each epoch's end (those of the last ~16 iterations at
# batch 32): as many as the CPU-scale evaluation scores, so figures compare
TRACKED = 500
# past negatives the repel term measures distances to (Improved CD: its replay buffer)
REPEL_REFERENCE = 256
TRACKED_FIGURES = [
    "class_entropy",
    "modes_covered",
    "coverage",
    "density",
    "recognisable",
    "ink",
    "saturated",
]
GENERATED_FIGURES = [
    "energy",
    "recognisable",
    "typical",
    "class_entropy",
    "recognised_entropy",
    "recognised_classes",
    "top2_share",
    "noise_share",
    "blob_share",
    "coverage",
    "density",
    "ink",
    "white",
]
GENERATED_SEED = 20_000  # added to the experiment's seed: the generated chains' own noise
AGE_COLUMNS = ["age_draws_mean", "age_draws_median", "age_steps_mean", "age_steps_median"]


class Diverged(Exception):
    pass


class Experiment:
    """Model, optimiser, schedule, buffer and history of one run; all of it goes in the
    checkpoint."""

    def __init__(self, name, cfg, device, data_hash, rank=0, world=1):
        self.name, self.cfg, self.device, self.data_hash = name, cfg, device, data_hash
        self.rank, self.world = rank, world
        seed_everything(cfg["seed"] + rank)  # each rank its own noise; DDP copies rank 0's weights
        self.net = place(EnergyNet(cfg["model"]["width"]), device)
        self.model = distributed.wrap(self.net, world, device)  # the loss goes through DDP
        self.chain = Chain.of(cfg["sampler"])
        self.sampler_grad = fast_input_grad(
            self.net, cfg["sampler"]["precision"], cfg["sampler"]["compile"]
        )
        # langevin, or it as a CUDA graph
        self.run_chain = chain_runner(cfg["sampler"]["cuda_graph"], device)
        opt = cfg["optim"]
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=opt["lr"], betas=(opt["beta1"], opt["beta2"])
        )
        self.schedule = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=1, gamma=opt["lr_decay"]
        )
        buf = cfg["buffer"]
        capacity = max(1, buf["capacity"] // world)  # each rank holds one shard
        self.buffer = ReplayBuffer(
            capacity, buf["restart_prob"], min(buf["initial_fill"], capacity), device=device
        )
        self.pool = (
            ChainPool(
                cfg["pool"]["chains"],
                cfg["pool"]["restart_prob"],
                cfg["pool"]["lifetime"],
                device=device,
            )
            if cfg.get("pool")
            else None
        )
        self.pool_chain = Chain.of(cfg["pool"]) if self.pool else None
        self.epoch, self.history, self.grids, self.wall_time_s, self.sampling_s = (
            0,
            [],
            {},
            0.0,
            0.0,
        )
        # long_run: the weights it samples with
        self.ema_decay, self.average = (cfg.get("ema_decay", 0.0), None)
        self.tracked = []  # one row per epoch: the judge's figures of that epoch's latest negatives
        # per sample epoch: the generated samples' figures, grid
        self.generated, self.generated_grids = ([], {})

    # ---- checkpoint: rank 0 holds everything; other ranks add their buffer and RNG ----
    def checkpoint(self):
        shard = {
            "epoch": self.epoch,
            "buffer": self.buffer.state_dict(),
            "rng": rng_state(),
            "pool": self.pool.state_dict() if self.pool else None,
        }
        if self.rank:
            return shard
        return {
            **shard,
            "config": self.cfg,
            "data_hash": self.data_hash,
            "world": self.world,
            "model": self.net.state_dict(),
            "ema": self.average,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "history": self.history,
            "grids": self.grids,
            "tracked": self.tracked,
            "generated": self.generated,
            "generated_grids": self.generated_grids,
            "wall_time_s": self.wall_time_s,
            "sampling_s": self.sampling_s,
        }

    def resume(self, folder):
        """Continue from a checkpoint of this same config, data and world size; else start afresh.
        One that cannot be read stops the run (a DataError): retraining silently would discard
        it."""
        main, shard = folder / "checkpoint.pt", folder / f"checkpoint_rank{self.rank}.pt"
        if not main.exists():
            return False
        ckpt = load_checkpoint(main, self.device, retrain(folder))
        own = (
            ckpt
            if self.rank == 0
            else (load_checkpoint(shard, self.device, retrain(folder)) if shard.exists() else {})
        )
        same = (
            ckpt.get("config") == self.cfg
            and ckpt.get("data_hash") == self.data_hash
            and ckpt.get("world", 1) == self.world
            and own.get("epoch") == ckpt.get("epoch")
        )
        if not same:
            print(
                f"train: {main} was made with other params, data or world size; starting afresh",
                file=sys.stderr,
            )
            return False
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.buffer.load_state_dict(own["buffer"])
        if self.pool:
            self.pool.load_state_dict(own["pool"])
        set_rng_state(own["rng"])
        self.epoch, self.history, self.grids = ckpt["epoch"], ckpt["history"], ckpt["grids"]
        self.tracked = ckpt.get("tracked", [])
        self.generated, self.generated_grids = (
            ckpt.get("generated", []),
            ckpt.get("generated_grids", {}),
        )
        self.average = ckpt.get("ema")
        self.wall_time_s, self.sampling_s = ckpt["wall_time_s"], ckpt["sampling_s"]
        print(f"train: resuming {self.name} from {main} at epoch {self.epoch}", file=sys.stderr)
        return True

    # ---- one iteration and one epoch -------------------------------------------------
    def continue_from(self, name):
        """Start from another experiment's trained model and replay buffer (long_run)."""
        folder = Path("checkpoints") / name
        source = load_checkpoint(folder / "checkpoint.pt", self.device, retrain(folder))
        self.net.load_state_dict(source["model"])
        self.buffer.load_state_dict(source["buffer"])
        print(f"train: continuing {name} from its epoch {source['epoch']}", file=sys.stderr)

    def train_step(self, x_pos):
        cfg, s = self.cfg, self.cfg["sampler"]
        x_pos = (x_pos + cfg["loss"]["data_noise_std"] * torch.randn_like(x_pos)).clamp(-1, 1)
        from_pool = round(cfg["pool"]["share"] * len(x_pos)) if self.pool else 0
        started = time.perf_counter()
        x_neg = x_pos[:0]
        # (long_run with share 1: the pool alone; the buffer stays as it was)
        if from_pool < len(x_pos):
            x_neg = self.run_chain(
                self.net,
                self.buffer.sample(len(x_pos) - from_pool),
                self.chain,
                no_grad_bug=s["no_grad_bug"],
                grad_fn=self.sampler_grad,
            )
            self.buffer.push(x_neg, steps=self.chain.steps)
        if self.pool:
            self.pool.advance(
                self.net, self.pool_chain, grad_fn=self.sampler_grad, run=self.run_chain
            )
            x_neg = torch.cat([x_neg, self.pool.sample(from_pool)])
        self.sampling_s += time.perf_counter() - started
        loss, terms = contrastive_loss(
            self.model, x_pos, x_neg, cfg["loss"]["alpha"], cfg["loss"]["r1_weight"]
        )
        kl_weight, repel_weight = cfg["loss"]["kl_weight"], cfg["loss"]["repel_weight"]
        if kl_weight or repel_weight:  # off in every committed experiment: no extra random draws
            kl, repel = improved_cd_terms(
                self.net, x_neg, self.chain, self.buffer.draw(REPEL_REFERENCE)
            )
            loss = loss + kl_weight * kl - repel_weight * repel
            terms.update(loss=loss.item(), kl=kl.item(), repel=repel.item())
        terms = distributed.average_terms(terms, self.world, self.device)
        if not all(math.isfinite(v) for v in terms.values()):
            raise Diverged(f"non-finite loss or energy: {terms}")
        if terms["e_max_abs"] > cfg["max_abs_energy"]:
            raise Diverged(
                f"|energy| {terms['e_max_abs']:.3g} beyond max_abs_energy {cfg['max_abs_energy']}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg["optim"]["grad_clip"])
        if self.ema_decay and self.average is None:
            # from the weights it continues
            self.average = average_weights(None, self.net, self.ema_decay)
        self.optimizer.step()
        if self.ema_decay:
            self.average = average_weights(self.average, self.net, self.ema_decay)
        terms.update(grad_norm=grad_norm.item(), lr=self.optimizer.param_groups[0]["lr"])
        return x_neg, terms

    def track(self, judge, ref):
        """Score the buffer's TRACKED latest negatives, or the pool's chains when there is a pool,
        with the judge (draws no random numbers)."""
        figures = score(judge, self.pool.images if self.pool else self.buffer.latest(TRACKED), ref)
        shares = [c / figures["n"] for c in figures["class_counts"]]
        self.tracked.append(
            {
                "step": len(self.history),
                "epoch": self.epoch,
                **rounded({k: figures[k] for k in TRACKED_FIGURES}),
                **{f"class_{d}": round(v, 4) for d, v in enumerate(shares)},
                **buffer_ages(self.buffer),
            }
        )

    def sample_epoch(self):
        return self.epoch in self.cfg["sample_epochs"] or self.epoch == self.cfg["epochs"]

    def generate(self, judge, ref):
        """The model's generated samples now: `generated_chains` chains from U(-1, 1),
        `generated_steps` steps of this experiment's sampler, scored by the judge. The global RNG
        is forked and seeded here, so training draws the same numbers with or without this."""
        cfg = self.cfg
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg["seed"] + GENERATED_SEED)
            x0 = torch.rand((cfg["generated_chains"], 1, 28, 28), device=self.device) * 2 - 1
            samples = langevin(
                self.net,
                x0,
                Chain.of(cfg["sampler"], steps=cfg["generated_steps"]),
                grad_fn=self.sampler_grad,
            )
        with torch.no_grad():
            energy = self.net(samples).mean().item()
        figures = score(judge, samples, ref)
        read = figures["recognised_counts"]  # the classes of the samples the judge reads
        shares = [c / max(sum(read), 1) for c in read]
        self.generated.append(
            {
                "step": len(self.history),
                "epoch": self.epoch,
                **rounded({"energy": energy, **{k: figures[k] for k in GENERATED_FIGURES[1:]}}),
                **{f"class_{d}": round(v, 4) for d, v in enumerate(shares)},
            }
        )
        self.generated_grids[self.epoch] = to_uint8(samples[: cfg["grid_size"]])

    def run_epoch(self, images, progress):
        cfg, batch = self.cfg, self.cfg["batch_size"]
        # The same order on every rank (its own generator, seeded per epoch: a resume needs no
        # loader state).
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(cfg["seed"] * 100_003 + self.epoch)
        )
        for b in range(len(images) // batch):
            idx = order[b * batch : (b + 1) * batch][self.rank :: self.world]
            x_neg, terms = self.train_step(images[idx].to(self.device))
            self.history.append({"step": len(self.history) + 1, "epoch": self.epoch + 1, **terms})
            progress.update(1)
            progress.set_postfix(
                loss=f"{terms['loss']:.3f}",
                e_pos=f"{terms['e_pos']:.2f}",
                e_neg=f"{terms['e_neg']:.2f}",
            )
        self.epoch += 1
        self.schedule.step()
        if self.sample_epoch():
            shown = self.pool.images if self.pool else x_neg  # long_run: its long-lived chains
            self.grids[self.epoch] = to_uint8(shown[: cfg["grid_size"]])


# ---- outputs ---------------------------------------------------------------------------


def buffer_ages(buffer):
    """Mean and median age of the replay buffer's chains: draws (times continued) and Langevin
    steps."""
    draws, steps = (a.float() for a in buffer.ages())
    return {
        "age_draws_mean": round(draws.mean().item(), 2),
        "age_draws_median": round(draws.median().item(), 1),
        "age_steps_mean": round(steps.mean().item(), 1),
        "age_steps_median": round(steps.median().item(), 1),
    }


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


def write_outputs(exp, paths, status, error=None):
    cfg = exp.cfg
    write_csv(paths["curve"], curves(exp.history, cfg["log_every"]))
    classes = [f"class_{d}" for d in range(10)]
    write_csv(
        paths["negatives"],
        pd.DataFrame(
            exp.tracked, columns=["step", "epoch", *TRACKED_FIGURES, *classes, *AGE_COLUMNS]
        ),
    )
    write_csv(
        paths["generated"],
        pd.DataFrame(exp.generated, columns=["step", "epoch", *GENERATED_FIGURES, *classes]),
    )
    for epoch, grid in exp.grids.items():
        save_grid(paths["samples"] / f"samples_epoch_{epoch:03d}.png", grid)
    for epoch, grid in exp.generated_grids.items():
        save_grid(paths["samples"] / f"generated_epoch_{epoch:03d}.png", grid)
    # Git keeps no empty folder: without a file here, a clone (or a queued experiment's workspace)
    # would see this output as deleted and rerun the stage. A grey grid stands in for no samples.
    if exp.grids:
        (paths["samples"] / "no_samples.png").unlink(missing_ok=True)
    else:
        save_grid(
            paths["samples"] / "no_samples.png", torch.full((1, 1, 28, 28), 128, dtype=torch.uint8)
        )
    pool = cfg.get("pool")
    from_pool = round(pool["share"] * cfg["batch_size"]) if pool else 0
    per_iteration = (cfg["batch_size"] - from_pool) * cfg["sampler"]["steps"] + (
        pool["chains"] * pool["steps"] if pool else 0
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
            continues=cfg["continues"],
            pool_oldest_chain_steps=int(ages.max()),
            pool_median_chain_steps=int(ages.median()),
        )
    write_json(paths["metrics"], metrics)
    return metrics


def train(name, params):
    cfg = experiment_config(params, name)
    rank, world, device = distributed.init(params["device"], pick_device)
    if cfg["batch_size"] % world:
        raise ParamsError(
            f"params.yaml: {name}'s batch_size {cfg['batch_size']} does not split over {world} "
            f"processes; pick a multiple of {world}"
        )
    digits = load_digits()
    images = to_unit_range(digits["x_train"])
    if cfg["train_subset"]:
        images = images[: cfg["train_subset"]]
    paths = {
        "checkpoints": Path("checkpoints") / name,
        "samples": Path("plots/samples") / name,
        "curve": Path("plots/train") / f"{name}.csv",
        "negatives": Path("plots/negatives") / f"{name}.csv",
        "generated": Path("plots/generated") / f"{name}.csv",
        "metrics": Path("metrics/train") / f"{name}.json",
    }
    for folder in (paths["samples"], paths["checkpoints"]):
        # DVC wants every declared output, even after an error
        folder.mkdir(parents=True, exist_ok=True)

    exp = Experiment(name, cfg, device, content_hash(digits), rank, world)
    # before resume: building the judge draws from the global RNG, which resume then restores
    if rank == 0:
        judge = load_judge(device=device)
        ref = reference(judge, digits, TRACKED, seed=0)
    if not exp.resume(paths["checkpoints"]) and cfg.get("continues"):
        exp.continue_from(cfg["continues"])
    own_checkpoint = paths["checkpoints"] / (
        "checkpoint.pt" if rank == 0 else f"checkpoint_rank{rank}.pt"
    )
    total = (len(images) // cfg["batch_size"]) * cfg["epochs"]
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
            while exp.epoch < cfg["epochs"]:
                started = time.perf_counter()
                exp.run_epoch(images, progress)
                exp.wall_time_s += time.perf_counter() - started
                if rank == 0:
                    exp.track(judge, ref)
                    if exp.sample_epoch():
                        exp.generate(judge, ref)
                save_checkpoint(own_checkpoint, exp.checkpoint())
                if rank == 0:
                    write_outputs(exp, paths, "running")
        except Diverged as err:
            status, error = "diverged", f"epoch {exp.epoch + 1}: {err}"
            print(
                f"train: {name} diverged ({error}); the last good checkpoint is kept",
                file=sys.stderr,
            )
        except RuntimeError as err:
            if not cfg["expected_error"] or cfg["expected_error"] not in str(err):
                raise
            status, error = "expected_error", f"{type(err).__name__}: {err}"
            print(f"train: {name} raised its expected error: {error}", file=sys.stderr)
    # this run saved no epoch: a checkpoint still there is another config's
    if exp.epoch == 0 and rank == 0:
        for stale in sorted(paths["checkpoints"].glob("checkpoint*.pt")):
            stale.unlink()  # (evaluate would score it as this run's model)
            print(f"train: removed {stale}, made with other params", file=sys.stderr)
    if cfg["expected_error"] and status != "expected_error":
        raise RuntimeError(
            f"experiment {name} declares expected_error {cfg['expected_error']!r}, but training "
            f"ended with status {status!r}"
        )
    metrics = write_outputs(exp, paths, status, error) if rank == 0 else None
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
