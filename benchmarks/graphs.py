"""Benchmark, CUDA only: the Langevin chain as a CUDA graph against the eager chain and the
tutorial loop.

    python benchmarks/graphs.py --out benchmarks/results/gpu_graphs.json # what gpu_check.sh runs
    python benchmarks/graphs.py --epoch-iterations 50                    # quicker: epochs projected

1. The chain at batch 128, K = 60: the tutorial loop (benchmarks/sampler.py), `ebm.sampler.langevin`
   and `ebm.graphs.GraphedLangevin`, interleaved; image-steps/s and the same-seed difference.
2. One seed-scale epoch of each kind of training experiment (batch, K, R1, pool), timed through
   the training stage's own `Experiment.train_step` (random images: the content does not change
   the time) with the graph, and a few iterations without it; the seed-scale journey projected.
3. The four trained experiments' iterations in four processes at once against one after another.

Prints a PASS or FAIL line for each of issue 28's targets and writes everything to --out.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "stages"), str(ROOT / "benchmarks")]
import sampler as tutorial  # noqa: E402  (benchmarks/sampler.py: the tutorial loop and the seed-scale params)
from ebm.graphs import GraphedLangevin  # noqa: E402
from ebm.model import EnergyNet  # noqa: E402
from ebm.params import experiment_config  # noqa: E402
from ebm.sampler import Chain, langevin  # noqa: E402

CUDA = torch.device("cuda")
TARGETS = {
    "graph_vs_tutorial_min": 5.0,
    "exp5_iteration_s_max": 0.015,
    "journey_minutes_max": 20.0,
    "same_seed_max_abs_diff": 1e-5,
}


def sync_timed(fn):
    torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - started


# ---- 1. the chain ----------------------------------------------------------------------


def compare_chains(batch, steps, repeats):
    torch.manual_seed(0)
    plain, model = EnergyNet(32).to(CUDA), EnergyNet(32).to(CUDA)
    model.load_state_dict(plain.state_dict())
    x0 = torch.rand(batch, 1, 28, 28, device=CUDA) * 2 - 1
    chain, graphed = Chain(steps, tutorial.STEP, tutorial.NOISE, tutorial.CLAMP), GraphedLangevin()
    runs = {
        "tutorial": lambda: tutorial.reference_loop(plain, x0, steps),
        "eager": lambda: langevin(model, x0, chain),
        "graph": lambda: graphed(model, x0, chain),
    }
    capture_s = sync_timed(runs["graph"])  # the first call captures
    for fn in runs.values():
        fn()
    rates = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            rates[name].append(batch * steps / sync_timed(fn))
    same = {}
    for name, fn in runs.items():
        torch.manual_seed(1)
        same[name] = fn()
        same[name + "_rng_after"] = torch.cuda.get_rng_state()
    median = {name: statistics.median(r) for name, r in rates.items()}
    return {
        "batch": batch,
        "steps": steps,
        "repeats": repeats,
        "capture_s": round(capture_s, 2),
        "img_steps_per_s": {k: round(v, 1) for k, v in median.items()},
        "vs_tutorial": {k: round(v / median["tutorial"], 2) for k, v in median.items()},
        "all_runs": {k: [round(v, 1) for v in r] for k, r in rates.items()},
        "max_abs_diff_graph_vs_eager": (same["graph"] - same["eager"]).abs().max().item(),
        "max_abs_diff_eager_vs_tutorial": (same["eager"] - same["tutorial"]).abs().max().item(),
        "rng_state_equal_after_graph_and_eager": torch.equal(
            same["graph_rng_after"], same["eager_rng_after"]
        ),
    }


# ---- 2. training iterations through the stage's own step -------------------------------


def experiment(name, cuda_graph, params):
    from train import Experiment

    cfg = experiment_config(params, name)
    sampler = replace(cfg.sampler, cuda_graph=cuda_graph, compile=False, precision="fp32")
    cfg = replace(cfg, sampler=sampler)
    return Experiment(name, cfg, CUDA, "benchmark"), cfg


def time_iterations(name, cuda_graph, iterations, params):
    """Seconds of `iterations` training iterations of experiment `name` at the seed scale (after
    two untimed ones: the graph's capture, cuDNN's set-up)."""
    exp, cfg = experiment(name, cuda_graph, params)
    batch = cfg.batch_size
    images = torch.rand(batch * 8, 1, 28, 28, device=CUDA) * 2 - 1
    step = lambda i: exp.train_step(images[(i % 8) * batch : (i % 8 + 1) * batch])  # noqa: E731
    for i in range(2):
        step(i)
    return sync_timed(lambda: [step(i) for i in range(iterations)])


def kinds(params):
    """The trained experiments by kind: what sets an iteration's time (batch, K, R1, the pool)."""
    names = [n for n in params.experiments if not experiment_config(params, n).expected_error] + [
        "long_run"
    ]
    out = {}
    for name in names:
        c = experiment_config(params, name)
        pool = getattr(c, "pool", None)  # the long run's
        key = (
            c.batch_size,
            c.sampler.steps,
            c.loss.r1_weight > 0,
            pool.chains if pool else None,
            pool.steps if pool else None,
        )
        out.setdefault(key, []).append(name)
    return out


def chain_rate(batch, steps=20):
    torch.manual_seed(0)
    model = EnergyNet(32).to(CUDA)
    x = torch.rand(batch, 1, 28, 28, device=CUDA) * 2 - 1
    langevin(model, x, Chain(2, tutorial.STEP, tutorial.NOISE, tutorial.CLAMP))
    return (
        batch
        * steps
        / sync_timed(
            lambda: langevin(model, x, Chain(steps, tutorial.STEP, tutorial.NOISE, tutorial.CLAMP))
        )
    )


def project_journey(epoch_iterations, eager_iterations):
    params = tutorial.seed_scale_params()
    epoch, iteration = {}, {}
    for key, names in kinds(params).items():
        name, label = names[0], "+".join(names)
        per_epoch = tutorial.SEED_TRAIN_DIGITS // key[0]  # train.py drops a partial batch
        n = epoch_iterations or per_epoch
        graph_s = time_iterations(name, True, n, params) / n
        eager_s = time_iterations(name, False, eager_iterations, params) / eager_iterations
        iteration[label] = {
            "graph_s": round(graph_s, 5),
            "eager_s": round(eager_s, 5),
            "speedup": round(eager_s / graph_s, 2),
        }
        epoch[label] = {
            "graph_s": round(graph_s * per_epoch, 1),
            "graph_timed": not epoch_iterations,
            "eager_s": round(eager_s * per_epoch, 1),
        }
        for other in names:
            epoch[other] = epoch[label]
    train = {
        way: {
            name: experiment_config(params, name).epochs * epoch[name][f"{way}_s"]
            for group in kinds(params).values()
            for name in group
        }
        for way in ("graph", "eager")
    }
    ev, gen = params.evaluate, params.generate
    trained = len(
        [n for n in params.experiments if not experiment_config(params, n).expected_error]
    )
    evaluate_s = trained * ev.num_samples * ev.fresh_steps / chain_rate(ev.batch_size)
    generate_s = sum(chains * gen.steps / chain_rate(chains) for chains in gen.chains.values())
    minutes = {
        way: round((sum(t.values()) + evaluate_s + generate_s) / 60, 1) for way, t in train.items()
    }
    return {
        "iteration": iteration,
        "epoch": {label: epoch[label] for label in iteration},
        "train_s": {way: {k: round(v, 1) for k, v in t.items()} for way, t in train.items()},
        "evaluate_s": round(evaluate_s, 1),
        "generate_s": round(generate_s, 1),
        "journey_minutes": minutes,
        "left_out": "stage start-up, DVC's hashing, the judge's per-epoch scoring and checkpoints",
    }


# ---- 3. processes at once against one after another -------------------------------------


def worker(name, cuda_graph, iterations):
    """One process's share: time `iterations` iterations of `name` and print the seconds as JSON."""
    params = tutorial.seed_scale_params()
    print(json.dumps({"name": name, "s": time_iterations(name, cuda_graph, iterations, params)}))


def concurrency(cuda_graph, iterations):
    params = tutorial.seed_scale_params()
    names = [n for n in params.experiments if not experiment_config(params, n).expected_error]

    def command(n):
        return [
            sys.executable,
            __file__,
            "--worker",
            n,
            "--graph",
            str(cuda_graph).lower(),
            "--iterations",
            str(iterations),
        ]

    def run(together):
        started = time.perf_counter()
        if together:
            procs = [subprocess.Popen(command(n), stdout=subprocess.PIPE, text=True) for n in names]
            outs = [p.communicate()[0] for p in procs]
            if any(p.returncode for p in procs):
                raise RuntimeError(f"a worker failed: {[p.returncode for p in procs]}")
        else:
            outs = [
                subprocess.run(command(n), stdout=subprocess.PIPE, text=True, check=True).stdout
                for n in names
            ]
        wall = time.perf_counter() - started
        return wall, {
            json.loads(o.splitlines()[-1])["name"]: round(json.loads(o.splitlines()[-1])["s"], 2)
            for o in outs
        }

    seq_wall, seq = run(False)
    con_wall, con = run(True)
    return {
        "processes": len(names),
        "iterations_each": iterations,
        "cuda_graph": cuda_graph,
        "one_after_another_wall_s": round(seq_wall, 1),
        "at_once_wall_s": round(con_wall, 1),
        "one_after_another_timed_s": seq,
        "at_once_timed_s": con,
        "at_once_speedup": round(seq_wall / con_wall, 2),
        "at_once_speedup_timed_part": round(sum(seq.values()) / max(con.values()), 2),
    }


def verdicts(chains, journey):
    exp5 = next(v for k, v in journey["iteration"].items() if "final_training" in k.split("+"))[
        "graph_s"
    ]
    checks = [
        (
            "graph same samples as eager (max |diff|)",
            chains["max_abs_diff_graph_vs_eager"],
            chains["max_abs_diff_graph_vs_eager"] <= TARGETS["same_seed_max_abs_diff"]
            and chains["rng_state_equal_after_graph_and_eager"],
            f"<= {TARGETS['same_seed_max_abs_diff']}",
        ),
        (
            "graph vs tutorial loop, img-steps/s ratio",
            chains["vs_tutorial"]["graph"],
            chains["vs_tutorial"]["graph"] >= TARGETS["graph_vs_tutorial_min"],
            f">= {TARGETS['graph_vs_tutorial_min']}",
        ),
        (
            "exp 5 seed-scale iteration (s)",
            exp5,
            exp5 <= TARGETS["exp5_iteration_s_max"],
            f"<= {TARGETS['exp5_iteration_s_max']}",
        ),
        (
            "seed-scale journey projected, graph, one after another (min)",
            journey["journey_minutes"]["graph"],
            journey["journey_minutes"]["graph"] <= TARGETS["journey_minutes_max"],
            f"<= {TARGETS['journey_minutes_max']}",
        ),
    ]
    return [{"check": c, "value": v, "target": t, "pass": bool(ok)} for c, v, ok, t in checks]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--epoch-iterations",
        type=int,
        default=0,
        help="graph iterations per kind (0: a whole epoch)",
    )
    parser.add_argument(
        "--eager-iterations", type=int, default=40, help="eager iterations per kind"
    )
    parser.add_argument(
        "--concurrent-iterations", type=int, default=100, help="per process (0: skip part 3)"
    )
    parser.add_argument("--out", default="benchmarks/results/gpu_graphs.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--graph", default="true", help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("needs a CUDA GPU: torch sees none")
    if args.worker:
        return worker(args.worker, args.graph == "true", args.iterations)
    started = time.perf_counter()
    result = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    result["chain"] = chains = compare_chains(128, 60, args.repeats)
    print(
        "chain:",
        json.dumps(
            {
                k: chains[k]
                for k in (
                    "img_steps_per_s",
                    "vs_tutorial",
                    "capture_s",
                    "max_abs_diff_graph_vs_eager",
                )
            }
        ),
        flush=True,
    )
    result["journey"] = journey = project_journey(args.epoch_iterations, args.eager_iterations)
    print(
        "iterations:",
        json.dumps(journey["iteration"]),
        "\njourney minutes:",
        journey["journey_minutes"],
        flush=True,
    )
    if args.concurrent_iterations:
        result["concurrency"] = [
            concurrency(way, args.concurrent_iterations) for way in (True, False)
        ]
        for c in result["concurrency"]:
            print(
                "concurrency:",
                json.dumps({k: v for k, v in c.items() if not k.endswith("timed_s")}),
                flush=True,
            )
    result["checks"] = verdicts(chains, journey)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    for c in result["checks"]:
        print(
            f"{'PASS' if c['pass'] else 'FAIL'}: {c['check']}: {c['value']} (target {c['target']})"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({result['wall_s']} s)")


if __name__ == "__main__":
    main()
