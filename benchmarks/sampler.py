"""Benchmark: the project's Langevin sampler against a plain tutorial loop.

    python benchmarks/sampler.py                      # batch 128, K = 60, 5 repeats
    python benchmarks/sampler.py --repeats 9 --out benchmarks/results/cpu.json
    python benchmarks/sampler.py --keep-freed-memory  # glibc keeps freed memory: see below
    python benchmarks/sampler.py --devices cuda       # the GPU alone (the CPU's figures
                                                        take minutes)

Same weights, same start batch, same K, in one process. Prints images x Langevin steps
per second for (a) the reference loop written the way tutorials do (parameters frozen,
`x.requires_grad = True`, `energy.sum().backward()`, in-place noise and clamps) and
(b) `ebm.sampler.langevin`, their ratio (medians), and the time of one full training
iteration (sampling + the update, R1 on). On CUDA too when a GPU is present, where the
opt-in bf16 and torch.compile paths are measured as well. From timed iterations and
chains at scale `seed`'s batch sizes it projects the seed-scale journey (one epoch of
exp 5 = 468 iterations at batch 128, K = 60; the data's content does not change the time).

--keep-freed-memory sets glibc's trim and mmap thresholds before anything runs, so freed
memory stays mapped instead of going back to the OS and being faulted in again (zeroed by
the kernel) at the next step. The tutorial loop, as a default process runs it, loses much
of its time to those page faults: with them gone it runs 1.2-1.4x faster on the 2-core
host and the project's lead shrinks (docs/performance.md). The page faults per Langevin step of
each loop, over its timed runs, are recorded either way. The stages do not set the
thresholds: they do not speed the stages up.
"""

import argparse
import ctypes
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "stages"))
from ebm.buffer import ReplayBuffer  # noqa: E402
from ebm.model import EnergyNet  # noqa: E402
from ebm.objective import contrastive_loss  # noqa: E402
from ebm.params import experiment_config, load_params  # noqa: E402
from ebm.runtime import place  # noqa: E402
from ebm.sampler import Chain, fast_input_grad, langevin  # noqa: E402

STEP, NOISE, CLAMP = 10.0, 0.005, 0.03
# glibc's mallopt() parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = (-1, -2, -3)
KEEP_FREED = {M_TRIM_THRESHOLD: 256 << 20, M_TOP_PAD: 16 << 20, M_MMAP_THRESHOLD: 32 << 20}
LIBC = platform.libc_ver()[0] or "unknown libc"


def keep_freed_memory():
    """Make glibc keep freed memory mapped (no per-step page faults); returns what was set.

    The mmap threshold is set too (to glibc's 64-bit maximum): setting the trim threshold
    stops glibc from adapting it, and blocks above it would still be unmapped on every free.
    """
    libc = ctypes.CDLL("libc.so.6")
    if not all(libc.mallopt(option, value) for option, value in KEEP_FREED.items()):
        raise RuntimeError("glibc's mallopt refused the trim threshold, top pad or mmap threshold")
    return (
        "glibc, freed memory kept (M_TRIM_THRESHOLD 256 MiB, M_TOP_PAD 16 MiB, M_MMAP_THRESHOLD 32 "
        "MiB)"
    )


def minor_page_faults():
    """Minor page faults of the whole process so far (all threads)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def reference_loop(model, x, steps):
    """The tutorial's loop (UvA tutorial 8 style), kept deliberately plain."""
    for p in model.parameters():
        p.requires_grad = False
    x = x.clone()
    x.requires_grad = True
    # the tutorial fills it with randn; normal_ redraws it anyway
    noise = torch.empty(x.shape, device=x.device)
    for _ in range(steps):
        noise.normal_(0, NOISE)
        x.data.add_(noise.data)
        x.data.clamp_(min=-1.0, max=1.0)
        energy = model(x)
        energy.sum().backward()
        x.grad.data.clamp_(-CLAMP, CLAMP)
        x.data.add_(-STEP * x.grad.data)
        x.grad.detach_()
        x.grad.zero_()
        x.data.clamp_(min=-1.0, max=1.0)
    for p in model.parameters():
        p.requires_grad = True
    return x.detach()


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def bench_device(device, batch, steps, repeats):
    torch.manual_seed(0)
    plain = EnergyNet(32).to(device)  # as a tutorial builds it
    model = place(EnergyNet(32), device)  # as the stages build it (layout per device)
    model.load_state_dict(plain.state_dict())
    x0 = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
    work = batch * steps
    runs = {
        "reference": lambda: reference_loop(plain, x0, steps),
        "project": lambda: langevin(model, x0, Chain(steps, STEP, NOISE, CLAMP)),
    }
    if device.type == "cuda":  # the opt-in speed paths (train.sampler.precision / compile)
        for precision, compiled in (("bf16", False), ("fp32", True), ("bf16", True)):
            fast = fast_input_grad(model, precision, compiled)
            runs[f"project_{precision}{'_compiled' if compiled else ''}"] = lambda fast=fast: (
                langevin(model, x0, Chain(steps, STEP, NOISE, CLAMP), grad_fn=fast)
            )
    for fn in runs.values():  # warm-up (allocator, kernels, thread pools)
        fn()
    rates, faults = {name: [] for name in runs}, {name: 0 for name in runs}
    for _ in range(repeats):  # interleaved, so a busy moment hits both alike
        for name, fn in runs.items():
            before = minor_page_faults()
            rates[name].append(work / timed(fn, device))
            faults[name] += minor_page_faults() - before
    torch.manual_seed(1)
    a = reference_loop(plain, x0, steps)
    torch.manual_seed(1)
    b = langevin(model, x0, Chain(steps, STEP, NOISE, CLAMP))

    iteration_s = time_training_iteration(model, device, batch, steps, 0.1, repeats)
    median = {name: statistics.median(r) for name, r in rates.items()}
    journey = project_seed_journey(model, device, repeats)
    return {
        "device": str(device),
        "batch": batch,
        "steps": steps,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "reference_img_steps_per_s": round(median["reference"], 1),
        "project_img_steps_per_s": round(median["project"], 1),
        "speedup": round(median["project"] / median["reference"], 3),
        "all_runs": {name: [round(v, 1) for v in r] for name, r in rates.items()},
        "speedup_by_variant": {
            name: round(median[name] / median["reference"], 2) for name in median
        },
        "max_abs_difference_same_seed": (a - b).abs().max().item(),
        "page_faults_per_step": {
            name: round(f / (repeats * steps), 1) for name, f in faults.items()
        },
        "training_iteration_s": round(iteration_s, 3),
        "seed_scale_projection": journey,
    }


def time_training_iteration(model, device, batch, steps, r1_weight, repeats, total=False):
    """Median seconds of one training iteration: buffer draw, K Langevin steps, the update
    (total=True: the seconds of `repeats` iterations in a row instead, e.g. one whole epoch)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.0, 0.999))
    buffer = ReplayBuffer(8192, 0.05, batch, device=device)
    real = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1

    def iteration():
        x_neg = langevin(model, buffer.sample(batch), Chain(steps, STEP, NOISE, CLAMP))
        buffer.push(x_neg)
        loss, _ = contrastive_loss(model, real, x_neg, 0.1, r1_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    iteration()  # warm-up
    if total:
        return timed(lambda: [iteration() for _ in range(repeats)], device)
    return statistics.median(timed(iteration, device) for _ in range(max(1, repeats // 2)))


SEED_TRAIN_DIGITS = 60_000  # full MNIST's train split


def seed_scale_params():
    """params.yaml resolved and validated at scale `seed`, whichever scale it selects now."""
    return load_params(
        ROOT / "params.yaml",
        sections=["train", "experiments", "evaluate", "generate", "long_run"],
        scale="seed",
    )


def project_seed_journey(model, device, repeats):
    """Time one training iteration per kind of experiment and short chains at the batch
    sizes of scale `seed`, and project the whole seed-scale journey of params.yaml from
    them, the long run included (an estimate, not a run). Experiment 1 stops at its error
    in its first iteration: left out."""
    params = seed_scale_params()
    trained = {
        name: experiment_config(params, name)
        for name in params.experiments
        if not experiment_config(params, name).expected_error
    }
    kinds = {name: (c.batch_size, c.sampler.steps, c.loss.r1_weight) for name, c in trained.items()}
    per_iteration = {
        kind: time_training_iteration(model, device, *kind, repeats) for kind in set(kinds.values())
    }
    # train.py drops a partial batch
    per_epoch = {name: SEED_TRAIN_DIGITS // kinds[name][0] for name in trained}

    def chain_rate(batch, steps=20):  # image-steps per second of one batch's chain
        x = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
        langevin(model, x, Chain(2, STEP, NOISE, CLAMP))
        return (
            batch
            * steps
            / timed(lambda: langevin(model, x, Chain(steps, STEP, NOISE, CLAMP)), device)
        )

    # One epoch of the final experiment, run in full on a GPU (seconds there); projected
    # from the median iteration on a CPU (about ten minutes there).
    final = "final_training"
    epoch_timed = device.type == "cuda"
    epoch_s = (
        time_training_iteration(model, device, *kinds[final], per_epoch[final], total=True)
        if epoch_timed
        else per_epoch[final] * per_iteration[kinds[final]]
    )
    train_s = {
        name: c.epochs * per_epoch[name] * per_iteration[kinds[name]] for name, c in trained.items()
    }
    # The long run: an iteration of the experiment it continues (an upper bound: only the buffer's
    # share of the batch runs its K steps) plus the long-lived pool's own steps.
    run, pool = params.long_run, params.long_run.pool
    pool_s = pool.chains * pool.steps / chain_rate(pool.chains)
    train_s["long_run"] = (
        run.epochs
        * (SEED_TRAIN_DIGITS // run.batch_size)
        * (per_iteration[kinds[run.continues]] + pool_s)
    )
    ev, gen = params.evaluate, params.generate
    evaluate_s = len(trained) * ev.num_samples * ev.fresh_steps / chain_rate(ev.batch_size)
    generate_s = sum(chains * gen.steps / chain_rate(chains) for chains in gen.chains.values())
    total_s = sum(train_s.values()) + evaluate_s + generate_s
    return {
        "iteration_s": {
            f"batch{b}_K{k}_r1_{r}": round(v, 4) for (b, k, r), v in per_iteration.items()
        },
        "one_epoch_final_training_s": round(epoch_s, 1),
        "one_epoch_timed": epoch_timed,
        "train_s": {k: round(v, 1) for k, v in train_s.items()},
        "evaluate_s": round(evaluate_s, 1),
        "generate_s": round(generate_s, 1),
        "journey_minutes": round(total_s / 60, 1),
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/sampler.json")
    parser.add_argument(
        "--devices",
        nargs="+",
        choices=["cpu", "cuda"],
        help="which to measure (default: the CPU, and CUDA when present)",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="set glibc's trim and mmap thresholds first (both loops, the whole process)",
    )
    args = parser.parse_args()
    if args.keep_freed_memory and LIBC != "glibc":
        parser.error(f"--keep-freed-memory needs Linux with glibc (this host: {LIBC})")
    allocator = keep_freed_memory() if args.keep_freed_memory else f"{LIBC} default"
    names = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in names and not torch.cuda.is_available():
        parser.error("--devices cuda: torch sees no CUDA GPU")
    devices = [torch.device(name) for name in names]
    results = [
        {**bench_device(d, args.batch, args.steps, args.repeats), "allocator": allocator}
        for d in devices
    ]
    for r in results:
        print(
            f"{r['device']}: reference {r['reference_img_steps_per_s']:.0f}, project "
            f"{r['project_img_steps_per_s']:.0f} img-steps/s -> {r['speedup']:.3f}x (median of "
            f"{r['repeats']}, batch {r['batch']}, K {r['steps']}, {r['threads']} threads, "
            f"{allocator}); one training iteration {r['training_iteration_s']:.2f} s; same-seed "
            f"max |diff| {r['max_abs_difference_same_seed']:.2e}; page faults per step "
            f"{r['page_faults_per_step']}"
        )
        j = r["seed_scale_projection"]
        print(
            f"  seed scale: one epoch of final_training {j['one_epoch_final_training_s']:.0f} s "
            f"({'timed' if j['one_epoch_timed'] else 'projected'}); projected whole journey "
            f"{j['journey_minutes']:.0f} min (train {sum(j['train_s'].values()):.0f} s, evaluate "
            f"{j['evaluate_s']:.0f} s, generate {j['generate_s']:.0f} s)"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"torch": torch.__version__, "results": results}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
