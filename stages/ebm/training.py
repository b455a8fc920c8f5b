"""One training run of the journey as an object: model, optimiser, schedule, replay buffer (and
the long run's pool of long-lived chains), one iteration of contrastive divergence, the judge's
figures at each epoch's end, and the checkpoint a killed run resumes from.

`stages/train.py` drives it epoch by epoch and writes its outputs. Generated samples are what
the original journey's pictures show ("generated samples were fuzzy blobs"): at every sample
epoch, `generated_chains` chains from U(-1, 1) run `generated_steps` steps of the experiment's
own sampler under the current model, from a seed of their own, so the training's random numbers
are the same with or without them.
"""

import math
import sys
import time
from dataclasses import asdict

import torch

from ebm import distributed, paths
from ebm.buffer import ChainPool, ReplayBuffer
from ebm.checkpoint import load_checkpoint, retrain
from ebm.config import LongRun
from ebm.graphs import chain_runner
from ebm.images import to_uint8
from ebm.io import rounded
from ebm.model import EnergyNet, average_weights
from ebm.objective import contrastive_loss, improved_cd_terms
from ebm.quality import score
from ebm.runtime import place, rng_state, seed_everything, set_rng_state
from ebm.sampler import Chain, fast_input_grad, langevin

# the most recent negatives scored at each epoch's end (those of the last ~16 iterations at
# batch 32): as many as the CPU-scale evaluation scores, so figures compare
TRACKED = 500
# past negatives the repel term measures distances to (Improved CD: its replay buffer)
REPEL_REFERENCE = 256
TRACKED_FIGURES = "class_entropy modes_covered coverage density recognisable ink saturated".split()
GENERATED_FIGURES = (
    "energy recognisable typical class_entropy recognised_entropy recognised_classes top2_share "
    "noise_share blob_share coverage density ink white"
).split()
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
        seed_everything(cfg.seed + rank)  # each rank its own noise; DDP copies rank 0's weights
        self.net = place(EnergyNet(cfg.model.width), device)
        self.model = distributed.wrap(self.net, world, device)  # the loss goes through DDP
        self.chain = Chain.of(cfg.sampler)
        self.sampler_grad = fast_input_grad(self.net, cfg.sampler.precision, cfg.sampler.compile)
        # langevin, or it as a CUDA graph
        self.run_chain = chain_runner(cfg.sampler.cuda_graph, device)
        opt = cfg.optim
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2)
        )
        self.schedule = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=1, gamma=opt.lr_decay
        )
        buf = cfg.buffer
        capacity = max(1, buf.capacity // world)  # each rank holds one shard
        self.buffer = ReplayBuffer(
            capacity, buf.restart_prob, min(buf.initial_fill, capacity), device=device
        )
        long_run = isinstance(cfg, LongRun)  # trained against a pool of long-lived chains too
        self.pool = (
            ChainPool(cfg.pool.chains, cfg.pool.restart_prob, cfg.pool.lifetime, device=device)
            if long_run
            else None
        )
        self.pool_chain = Chain.of(cfg.pool) if long_run else None
        self.epoch, self.history, self.grids, self.wall_time_s, self.sampling_s = (
            0,
            [],
            {},
            0.0,
            0.0,
        )
        # long_run: the weights it samples with
        self.ema_decay, self.average = (cfg.ema_decay if long_run else 0.0, None)
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
            "config": asdict(self.cfg),
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
            ckpt.get("config") == asdict(self.cfg)
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
        folder = paths.checkpoints(name)
        source = load_checkpoint(folder / "checkpoint.pt", self.device, retrain(folder))
        self.net.load_state_dict(source["model"])
        self.buffer.load_state_dict(source["buffer"])
        print(f"train: continuing {name} from its epoch {source['epoch']}", file=sys.stderr)

    def train_step(self, x_pos):
        cfg, s = self.cfg, self.cfg.sampler
        x_pos = (x_pos + cfg.loss.data_noise_std * torch.randn_like(x_pos)).clamp(-1, 1)
        from_pool = round(cfg.pool.share * len(x_pos)) if self.pool else 0
        started = time.perf_counter()
        x_neg = x_pos[:0]
        # (long_run with share 1: the pool alone; the buffer stays as it was)
        if from_pool < len(x_pos):
            x_neg = self.run_chain(
                self.net,
                self.buffer.sample(len(x_pos) - from_pool),
                self.chain,
                no_grad_bug=s.no_grad_bug,
                grad_fn=self.sampler_grad,
            )
            self.buffer.push(x_neg, steps=self.chain.steps)
        if self.pool:
            self.pool.advance(
                self.net, self.pool_chain, grad_fn=self.sampler_grad, run=self.run_chain
            )
            x_neg = torch.cat([x_neg, self.pool.sample(from_pool)])
        self.sampling_s += time.perf_counter() - started
        loss, terms = contrastive_loss(self.model, x_pos, x_neg, cfg.loss.alpha, cfg.loss.r1_weight)
        kl_weight, repel_weight = cfg.loss.kl_weight, cfg.loss.repel_weight
        if kl_weight or repel_weight:  # off in every committed experiment: no extra random draws
            kl, repel = improved_cd_terms(
                self.net, x_neg, self.chain, self.buffer.draw(REPEL_REFERENCE)
            )
            loss = loss + kl_weight * kl - repel_weight * repel
            terms.update(loss=loss.item(), kl=kl.item(), repel=repel.item())
        terms = distributed.average_terms(terms, self.world, self.device)
        if not all(math.isfinite(v) for v in terms.values()):
            raise Diverged(f"non-finite loss or energy: {terms}")
        if terms["e_max_abs"] > cfg.max_abs_energy:
            raise Diverged(
                f"|energy| {terms['e_max_abs']:.3g} beyond max_abs_energy {cfg.max_abs_energy}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip)
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
        return self.epoch in self.cfg.sample_epochs or self.epoch == self.cfg.epochs

    def generate(self, judge, ref):
        """The model's generated samples now: `generated_chains` chains from U(-1, 1),
        `generated_steps` steps of this experiment's sampler, scored by the judge. The global RNG
        is forked and seeded here, so training draws the same numbers with or without this."""
        cfg = self.cfg
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.seed + GENERATED_SEED)
            x0 = torch.rand((cfg.generated_chains, 1, 28, 28), device=self.device) * 2 - 1
            samples = langevin(
                self.net,
                x0,
                Chain.of(cfg.sampler, steps=cfg.generated_steps),
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
        self.generated_grids[self.epoch] = to_uint8(samples[: cfg.grid_size])

    def run_epoch(self, images, progress):
        cfg, batch = self.cfg, self.cfg.batch_size
        # The same order on every rank (its own generator, seeded per epoch: a resume needs no
        # loader state).
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)
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
            self.grids[self.epoch] = to_uint8(shown[: cfg.grid_size])


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
