"""Generate: long Langevin chains from the final experiment's model, judged as they run.

    python stages/generate.py          # what `dvc repro generate` runs, from the repository root

Reads params.yaml `generate` and the checkpoint of `final_training`; runs `batch_size`
chains for `steps` Langevin steps from U(-1, 1) noise (or from the model's replay buffer),
with the noise std moving linearly from `noise_std` to `noise_std_final`. The chains are
recorded at each step of `snapshots` (0 = the starting state; the last step always is) and
scored there by the judge (ebm.quality). Writes, atomically:
  plots/generate/hq_samples_k<steps>.png   the final grid (the seed's hq_samples_k20000.png)
  plots/generate/chain_snapshots.png       `show_chains` chains (rows) at every snapshot (columns)
  plots/generate/energy.csv                energy quantiles at every snapshot and every SEGMENT steps
  plots/generate/class_counts.csv          the judge's predicted classes at every snapshot (a row each)
  plots/generate/verdict.json              the verdict in full: every check with its rule, and a summary
  metrics/generate.json                    judge metrics per snapshot and the verdict's numbers (see `verdict`)
Nijkamp et al. (2020): a model whose long chains stay realistic is "convergent"; one whose
chains drift (oversaturate, collapse to few classes, dissolve into noise) learnt a sampler
that only works for its short training chains. The verdict says which, from the numbers.
"""
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ebm.buffer import uniform_noise
from ebm.data import load_digits, to_unit_range
from ebm.images import save_grid, to_uint8
from ebm.io import atomic_path, write_csv, write_json
from ebm.model import load_trained
from ebm.params import ParamsError, load_params
from ebm.runtime import pick_device, seed_everything
from ebm.sampler import langevin
from ebm.stage import run_stage

EXPERIMENT = "final_training"
CHECKPOINT = Path("checkpoints") / EXPERIMENT / "checkpoint.pt"
TRAIN_METRICS = Path("metrics/train") / f"{EXPERIMENT}.json"
JUDGE = Path("checkpoints/judge/judge.pt")
OUT = Path("plots/generate")
METRICS = Path("metrics/generate.json")
SEGMENT = 500          # most steps per sampler call: the noise schedule is constant within one
GRID = 64              # images in the final grid
SATURATED = 0.99       # |pixel| >= this counts as saturated (at -1 or +1)

# The verdict's rules (all on the judge's numbers; `position` = (fld - floor) / (ceiling - floor),
# 0 = as close to the test set as real train digits, 1 = as far as uniform noise).
REFERENCE_STEP = 1000  # "realistic at 1,000 steps?" is the baseline the last snapshot is compared with
NOISE_POSITION = 0.5   # noise: position >= 0.5, the samples are nearer noise than digits
DRIFT_POSITION = 0.1   # drift: position rises by more than 0.1 from the reference to the last snapshot
ENTROPY_DROP = 0.1     # class collapse: class entropy (normalised, 1 = uniform) falls by more than 0.1
RECOGNISABLE_DROP = 0.2  # fading: the recognisable fraction falls by more than 0.2
WHITE_FACTOR = 2.0     # oversaturation: more than 2x the test digits' fraction of pixels at +1


def fail(message):
    raise SystemExit(f"error: generate: {message}")


def snapshot_steps(cfg):
    """The sorted snapshot steps; the last step is always one. A step beyond `steps` is an error."""
    beyond = [s for s in cfg["snapshots"] if s > cfg["steps"]]
    if beyond:
        raise ParamsError(f"params.yaml: generate.snapshots = {cfg['snapshots']}: step {beyond[0]} is beyond "
                          f"generate.steps = {cfg['steps']} (a snapshot must be in [0, steps])")
    if cfg["show_chains"] > cfg["batch_size"]:
        raise ParamsError(f"params.yaml: generate.show_chains = {cfg['show_chains']}: must be at most "
                          f"generate.batch_size = {cfg['batch_size']}")
    return sorted(set(cfg["snapshots"]) | {cfg["steps"]})


def load_model(device):
    """The final experiment's checkpoint and EnergyNet; fail clearly unless its training ended ok."""
    if not TRAIN_METRICS.is_file() or not CHECKPOINT.is_file():
        fail(f"no trained model ({TRAIN_METRICS} or {CHECKPOINT} is missing); "
             f"run `dvc repro train@{EXPERIMENT}` first")
    record = json.loads(TRAIN_METRICS.read_text())
    if record.get("status") != "ok":
        fail(f"{EXPERIMENT} has training status {record.get('status')!r} ({record.get('error')}), not 'ok'; "
             f"generation needs a finished training: rerun `dvc repro train@{EXPERIMENT}`")
    return load_trained(CHECKPOINT, device)


def initial_chains(cfg, ckpt, device):
    generator = torch.Generator().manual_seed(cfg["seed"])
    n = cfg["batch_size"]
    if cfg["init"] == "noise":
        return uniform_noise(n, (1, 28, 28), "cpu", generator).to(device)
    images, size = ckpt["buffer"]["images"], ckpt["buffer"]["size"]
    if size >= n:
        picks = torch.randperm(size, generator=generator)[:n]
    else:
        picks = torch.randint(0, size, (n,), generator=generator)
    return images[picks].to(device)


def pixel_stats(x):
    x = torch.as_tensor(x).float()
    return {"saturated": float((x.abs() >= SATURATED).float().mean()), "white": float((x >= SATURATED).float().mean())}


def run_chains(model, x, cfg, snapshots):
    """Langevin in segments (<= SEGMENT steps, noise at the segment's midpoint of the linear schedule).

    Returns ({step: samples on the CPU} at the snapshots, energy rows at every boundary, sampling seconds).
    """
    steps = cfg["steps"]
    bounds = sorted(set(snapshots) | set(range(0, steps, SEGMENT)) | {steps})
    kept, rows, sampling_s = {}, [], 0.0

    def record(step):
        with torch.no_grad():
            energy = model(x).float().cpu().numpy()
        q05, q25, median, q75, q95 = np.quantile(energy, [0.05, 0.25, 0.5, 0.75, 0.95])
        rows.append({"step": step, "mean": float(energy.mean()), "q05": q05, "q25": q25, "median": median,
                     "q75": q75, "q95": q95})
        if step in snapshots:
            kept[step] = x.detach().cpu().clone()

    record(0)
    with tqdm(total=steps, desc="generate", unit="step", mininterval=2.0, file=sys.stderr) as bar:
        for start, end in zip(bounds[:-1], bounds[1:]):
            frac = (start + end) / 2 / steps
            noise_std = cfg["noise_std"] + (cfg["noise_std_final"] - cfg["noise_std"]) * frac
            began = time.perf_counter()
            x = langevin(model, x, end - start, cfg["step_size"], noise_std, cfg["grad_clamp"])
            if x.is_cuda:
                torch.cuda.synchronize()
            sampling_s += time.perf_counter() - began
            bar.update(end - start)
            record(end)
    return kept, pd.DataFrame(rows), sampling_s


def judge_snapshots(kept, cfg, device):
    from ebm.judge import load_judge
    from ebm.quality import references, sample_quality

    try:
        judge = load_judge(JUDGE, device=device)
    except FileNotFoundError as err:
        fail(str(err))
    refs = references(judge, load_digits(), n=cfg["batch_size"], seed=cfg["seed"])
    out, class_counts = {}, []
    for step, samples in sorted(kept.items()):
        quality = sample_quality(judge, samples, refs)
        counts = quality.pop("class_counts", None) or [0] * 10
        m = {k: v if isinstance(v, int) else round(float(v), 4) + 0.0 for k, v in quality.items() if k != "n"}
        m.update({k: round(v, 4) for k, v in pixel_stats(samples).items()})
        out[str(step)] = m
        class_counts.append({"step": step, **{str(d): int(c) for d, c in enumerate(counts)}})
    return out, pd.DataFrame(class_counts)


def position(m):
    span = m["fld_ceiling"] - m["fld_floor"]
    return (m["fld"] - m["fld_floor"]) / span if span > 0 else float("nan")


def verdict(per_step, data_white):
    """Realistic at REFERENCE_STEP, then stays so / drifts by the last snapshot? Rules at the top."""
    steps = sorted(int(s) for s in per_step)
    last = steps[-1]
    later = [s for s in steps if REFERENCE_STEP <= s < last]      # REFERENCE_STEP itself, else the next one,
    earlier = [s for s in steps if 0 < s < last]                    # else the latest before the last
    ref = later[0] if later else (earlier[-1] if earlier else None)
    m_last = per_step[str(last)]
    white_limit = WHITE_FACTOR * data_white

    def state_checks(m, step):
        return {f"noise@{step}": {"value": round(position(m), 4), "rule": f"fld position >= {NOISE_POSITION}",
                                  "fired": bool(position(m) >= NOISE_POSITION)},
                f"oversaturated@{step}": {"value": round(m["white"], 4),
                                          "rule": f"pixels at +1 > {WHITE_FACTOR} x test digits' {data_white:.4f}",
                                          "fired": bool(m["white"] > white_limit)}}

    result = {"reference_step": ref, "last_step": last, "position_last": round(position(m_last), 4)}
    if ref is None:
        checks = state_checks(m_last, last)
        fired = [k for k, c in checks.items() if c["fired"]]
        result.update(checks=checks, verdict="realistic at the last step" if not fired else "not realistic",
                      summary=f"no snapshot between 0 and {last}: only the last state is judged; "
                              + ("no rule fired" if not fired else "fired: " + ", ".join(fired)))
        return result
    m_ref = per_step[str(ref)]
    ref_checks = state_checks(m_ref, ref)
    checks = {**ref_checks, **state_checks(m_last, last),
              "drift": {"value": round(position(m_last) - position(m_ref), 4),
                        "rule": f"fld position rises by > {DRIFT_POSITION} from step {ref}",
                        "fired": bool(position(m_last) - position(m_ref) > DRIFT_POSITION)},
              "class_collapse": {"value": round(m_last["class_entropy"] - m_ref["class_entropy"], 4),
                                 "rule": f"class entropy falls by > {ENTROPY_DROP} from step {ref}",
                                 "fired": bool(m_ref["class_entropy"] - m_last["class_entropy"] > ENTROPY_DROP)},
              "fading": {"value": round(m_last["recognisable"] - m_ref["recognisable"], 4),
                         "rule": f"recognisable fraction falls by > {RECOGNISABLE_DROP} from step {ref}",
                         "fired": bool(m_ref["recognisable"] - m_last["recognisable"] > RECOGNISABLE_DROP)}}
    at_ref = [k for k in ref_checks if checks[k]["fired"]]
    later_fired = [k for k in checks if k not in ref_checks and checks[k]["fired"]]
    numbers = (f"fld {m_ref['fld']:.3g} at step {ref} -> {m_last['fld']:.3g} at step {last} "
               f"(floor {m_last['fld_floor']:.3g}, ceiling {m_last['fld_ceiling']:.3g}); class entropy "
               f"{m_ref['class_entropy']:.3f} -> {m_last['class_entropy']:.3f}; recognisable "
               f"{m_ref['recognisable']:.3f} -> {m_last['recognisable']:.3f}; pixels at +1 "
               f"{m_ref['white']:.3f} -> {m_last['white']:.3f} (test digits {data_white:.3f})")
    if at_ref:
        word = "not realistic at the reference step"
        why = "fired at the reference: " + ", ".join(at_ref)
        why += ("; later: " + ", ".join(later_fired)) if later_fired else ""
    elif later_fired:
        word, why = "drifts", "fired: " + ", ".join(later_fired)
    else:
        word, why = "stays realistic", "no rule fired"
    result.update(checks=checks, verdict=word,
                  summary=f"{word} (reference step {ref}, last step {last}): {why}. {numbers}")
    return result


def metric_view(judged):
    """The verdict as `dvc metrics show` columns: numbers, flags and the one-word verdict. The rules'
    text and the summary sentence stay in plots/generate/verdict.json, where they do not widen the table."""
    view = {k: v for k, v in judged.items() if k not in ("checks", "summary")}
    view["checks"] = {k: {"value": c["value"], "fired": c["fired"]} for k, c in judged["checks"].items()}
    return view


def save_snapshot_grid(path, kept, show):
    steps = sorted(kept)
    fig, axes = plt.subplots(show, len(steps), figsize=(1.1 * len(steps) + 0.6, 1.1 * show + 0.5), squeeze=False)
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


def main():
    params = load_params(sections=["generate"])
    device, cfg = pick_device(params["device"]), params["generate"]
    snapshots = snapshot_steps(cfg)
    seed_everything(cfg["seed"])
    ckpt, model = load_model(device)
    started = time.perf_counter()
    kept, energy, sampling_s = run_chains(model, initial_chains(cfg, ckpt, device), cfg, snapshots)

    data_white = pixel_stats(to_unit_range(load_digits()["x_test"]))["white"]
    per_step, class_counts = judge_snapshots(kept, cfg, device)
    for step, frame in energy.groupby("step"):
        if str(step) in per_step:
            per_step[str(step)]["energy_mean"] = round(float(frame["mean"].iloc[0]), 4)

    final = kept[cfg["steps"]]
    for stale in OUT.glob("hq_samples_k*.png"):
        if stale.name != f"hq_samples_k{cfg['steps']}.png":
            stale.unlink()
    save_grid(OUT / f"hq_samples_k{cfg['steps']}.png", to_uint8(final[:GRID]))
    save_snapshot_grid(OUT / "chain_snapshots.png", kept, cfg["show_chains"])
    write_csv(OUT / "energy.csv", energy)
    write_csv(OUT / "class_counts.csv", class_counts)
    judged = verdict(per_step, data_white)
    write_json(OUT / "verdict.json", judged)
    result = {"experiment": EXPERIMENT, "checkpoint_epoch": ckpt.get("epoch"), "steps": cfg["steps"],
              "batch_size": cfg["batch_size"], "init": cfg["init"], "device": str(device),
              "wall_time_s": round(time.perf_counter() - started, 2), "sampling_s": round(sampling_s, 2),
              "langevin_img_steps_per_s": round(cfg["steps"] * cfg["batch_size"] / sampling_s, 1),
              "test_digits_white": round(data_white, 4), "snapshots": per_step,
              "verdict": metric_view(judged)}
    write_json(METRICS, result)
    print(f"generate: {cfg['steps']} steps x {cfg['batch_size']} chains on {device} in {result['wall_time_s']} s; "
          f"{judged['summary']}")


if __name__ == "__main__":
    run_stage(main)
