"""Abilities: what a trained energy does besides sampling, measured against plain baselines.

    python stages/abilities.py long_run          # what `dvc repro abilities@long_run` runs
    python stages/abilities.py final_training    # exp 5's model

Reads params.yaml `abilities`, the model's checkpoint, the judge and the digits. Three tests:
  completion  the first `completion.digits` test digits with a region hidden (lower half, right
              half, a random square); the hidden pixels start from U(-1, 1) and the model's own
              sampler (step size, noise, gradient clamp from its checkpoint) runs `steps` steps
              with the visible pixels clamped (IGEBM, Du & Mordatch 2019). Figures: the judge's
              accuracy on the completed digits against their true labels and the MSE on the hidden
              pixels, beside three baselines: the hole at background (-1), the train-mean image,
              and the train digit nearest by the visible pixels.
  denoise     test digits + N(0, sigma) (clipped to [-1, 1]), then `steps` low-noise Langevin
              steps. Figures: PSNR and the judge's accuracy, before and after, beside a 3x3 median.
  ood         -E(x) as the score of "is a digit": AUROC and FPR at 95% TPR of the first
              `ood.digits` test digits against each set of ebm.ood, beside the judge's maximum
              softmax probability (Hendrycks & Gimpel 2017). Fashion-MNIST: ebm.ood.fashion_mnist.
Every random number comes from abilities.seed. Writes metrics/abilities/<model>.json and, in
plots/abilities/<model>/: completion_<region>.png (rows: original, masked with the hole grey,
the EBM's completion, the nearest train digit's), denoise.png (rows: clean, then per sigma noisy,
EBM, median) and energy_hist.png (the energy of the digits against each set).
"""

import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ebm import ood, paths, restore  # noqa: E402
from ebm.config import Sampler  # noqa: E402
from ebm.data import load_digits, to_unit_range  # noqa: E402
from ebm.images import save_grid, to_uint8  # noqa: E402
from ebm.io import atomic_path, round_figure, write_json  # noqa: E402
from ebm.judge import load_judge  # noqa: E402
from ebm.model import energies, load_finished  # noqa: E402
from ebm.params import ParamsError, load_params  # noqa: E402
from ebm.quality import embed  # noqa: E402
from ebm.runtime import pick_device, seed_everything  # noqa: E402
from ebm.sampler import Chain, langevin  # noqa: E402
from ebm.stage import run_stage  # noqa: E402

SHOW = 10  # digits per grid row
BASELINES = ("background", "mean", "nearest")


def judged(judge, images):
    """The judge's (N, 10) digit-class probabilities."""
    return embed(judge, images)[1]


def completion(model, judge, x, labels, train, cfg, chain, generator, out):
    figures = {
        "digits": len(x),
        "steps": chain.steps,
        "judge_accuracy_original": round_figure(restore.accuracy(judged(judge, x), labels)),
    }
    for region in cfg.regions:
        hidden = restore.hide(region, len(x), generator, cfg.square)
        filled = {
            "ebm": restore.complete(model, x, hidden, chain, generator),
            "background": restore.fill_background(x, hidden),
            "mean": restore.fill_mean(x, hidden, train),
            "nearest": restore.fill_nearest(x, hidden, train),
        }
        figures[region] = {
            "accuracy": {
                k: round_figure(restore.accuracy(judged(judge, v), labels))
                for k, v in filled.items()
            },
            "mse": {k: round_figure(restore.hidden_mse(v, x, hidden)) for k, v in filled.items()},
        }
        masked = torch.where(hidden, torch.zeros_like(x), x)  # the hole in mid-grey
        rows = [x, masked, filled["ebm"], filled["nearest"]]
        save_grid(
            out / f"completion_{region}.png",
            to_uint8(torch.cat([r[:SHOW] for r in rows])),
            nrow=SHOW,
        )
    return figures


def denoising(model, judge, x, labels, cfg, generator, out):
    chain = Chain.of(cfg)
    figures, rows = {"digits": len(x), "steps": chain.steps}, [x[:SHOW]]
    clean_accuracy = restore.accuracy(judged(judge, x), labels)
    for sigma in cfg.sigmas:
        noisy = restore.add_noise(x, sigma, generator)
        versions = {
            "noisy": noisy,
            "ebm": langevin(model, noisy, chain),
            "median": restore.median3(noisy),
        }
        figures[f"sigma_{sigma:g}"] = {
            "psnr": {k: round_figure(restore.psnr(v, x)) for k, v in versions.items()},
            "accuracy": {
                "clean": round_figure(clean_accuracy),
                **{
                    k: round_figure(restore.accuracy(judged(judge, v), labels))
                    for k, v in versions.items()
                },
            },
        }
        rows += [v[:SHOW] for v in versions.values()]
    save_grid(out / "denoise.png", to_uint8(torch.cat(rows)), nrow=SHOW)
    return figures


def ood_sets(digits, cfg, generator):
    """{name: images} of every OOD set, and a note per set that is missing."""
    n = cfg.per_set
    sets = {
        "uniform_noise": ood.uniform_noise(n, generator),
        "constant": ood.constant_images(n, generator),
        **{k: v[:n] for k, v in ood.manipulated(digits).items()},
        "sklearn_digits": ood.sklearn_digits(n),
    }
    fashion, source = ood.fashion_mnist(cfg.fashion_mnist)
    notes = {}
    if fashion is None:
        notes["fashion_mnist"] = source
    else:
        sets["fashion_mnist"] = to_unit_range(fashion[:n])
        notes["fashion_mnist"] = f"from {source}"
    return sets, notes


def detection(model, judge, digits, cfg, generator, device, out):
    sets, notes = ood_sets(digits, cfg, generator)
    energy = {
        "digits": energies(model, digits, device).numpy(),
        **{k: energies(model, v, device).numpy() for k, v in sets.items()},
    }
    msp = {
        "digits": judged(judge, digits).max(1),
        **{k: judged(judge, v).max(1) for k, v in sets.items()},
    }
    figures = {"digits": len(digits)}
    for name in sets:
        figures[name] = {
            "n": len(sets[name]),
            "auroc": {
                "energy": round_figure(ood.auroc(-energy["digits"], -energy[name])),
                "msp": round_figure(ood.auroc(msp["digits"], msp[name])),
            },
            "fpr95": {
                "energy": round_figure(ood.fpr_at_tpr(-energy["digits"], -energy[name])),
                "msp": round_figure(ood.fpr_at_tpr(msp["digits"], msp[name])),
            },
            "energy_mean": round_figure(energy[name].mean()),
        }
    for name, note in notes.items():
        if name not in sets:
            figures[name] = {"skipped": note}
        else:
            figures[name]["source"] = note
    figures["digits_energy_mean"] = round_figure(energy["digits"].mean())
    histograms(energy, figures, out / "energy_hist.png")
    return figures


def histograms(energy, figures, path):
    """One panel per set: its energy against the digits', bins over the two together."""
    names = [k for k in energy if k != "digits"]
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        both = np.r_[energy["digits"], energy[name]]
        bins = np.linspace(both.min(), both.max(), 40)
        ax.hist(energy["digits"], bins, alpha=0.6, label="test digits", color="C0")
        ax.hist(energy[name], bins, alpha=0.6, label=name, color="C3")
        auroc = figures[name]["auroc"]
        ax.set_title(f"{name}: AUROC E {auroc['energy']:.3f}, MSP {auroc['msp']:.3f}", fontsize=8)
        ax.set_xlabel("energy E(x)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    params = load_params(sections=["abilities"])
    cfg, device = params.abilities, pick_device(params.device)
    if len(argv) != 1 or argv[0] not in cfg.models:
        raise ParamsError(
            f"usage: python stages/abilities.py <model>  (abilities.models: "
            f"{' | '.join(cfg.models)})"
        )
    name = argv[0]
    started = time.perf_counter()
    seed_everything(cfg.seed)  # the Langevin noise comes from the global RNG
    generator = torch.Generator().manual_seed(cfg.seed)
    ckpt, model = load_finished(name, device)
    judge, digits = load_judge(device=device), load_digits()
    test, labels = to_unit_range(digits["x_test"]), digits["y_test"]
    train = to_unit_range(digits["x_train"])
    out = paths.abilities_plots(name)
    # the model's own sampler, for the completion's steps
    chain = Chain.of(Sampler(**ckpt["config"]["sampler"]), steps=cfg.completion.steps)

    timings, result = (
        {},
        {
            "model": name,
            "checkpoint_epoch": ckpt.get("epoch"),
            "weights": "moving average" if ckpt.get("ema") else "last",
        },
    )
    began = time.perf_counter()
    n = cfg.completion.digits
    result["completion"] = completion(
        model, judge, test[:n], labels[:n], train, cfg.completion, chain, generator, out
    )
    timings["completion_s"] = round_figure(time.perf_counter() - began)
    began = time.perf_counter()
    n = cfg.denoise.digits
    result["denoise"] = denoising(model, judge, test[:n], labels[:n], cfg.denoise, generator, out)
    timings["denoise_s"] = round_figure(time.perf_counter() - began)
    began = time.perf_counter()
    result["ood"] = detection(model, judge, test[: cfg.ood.digits], cfg.ood, generator, device, out)
    timings["ood_s"] = round_figure(time.perf_counter() - began)
    result.update(
        **timings, wall_time_s=round_figure(time.perf_counter() - started), device=str(device)
    )
    write_json(paths.abilities_record(name), result)
    c, o = result["completion"], result["ood"]
    print(
        f"abilities {name} in {result['wall_time_s']:.1f} s: completion accuracy "
        + ", ".join(
            f"{r} {c[r]['accuracy']['ebm']} (mean {c[r]['accuracy']['mean']}, nearest "
            f"{c[r]['accuracy']['nearest']})"
            for r in cfg.completion.regions
        )
        + "; OOD AUROC "
        + ", ".join(
            f"{k} {v['auroc']['energy']}"
            for k, v in o.items()
            if isinstance(v, dict) and "auroc" in v
        )
    )


if __name__ == "__main__":
    run_stage(main)
