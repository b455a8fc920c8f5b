"""The figures the report draws itself (report/fig_*.png)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from ebm.io import atomic_path  # noqa: E402
from ebm.report.page import OUT  # noqa: E402

GENERATED_COLUMNS = [
    "recognisable",
    "recognised_entropy",
    "top2_share",
    "noise_share",
    "blob_share",
    "energy",
]


def save_figure(fig, name):
    path = OUT / f"fig_{name}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def curves_figure(name, frame):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.plot(frame["step"], frame["loss"], label="loss")
    left.set(xlabel="iteration", title=f"{name}: loss")
    right.plot(frame["step"], frame["e_pos"], label="E_pos (data)")
    right.plot(frame["step"], frame["e_neg"], label="E_neg (samples)")
    right.set(xlabel="iteration", title=f"{name}: energies")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, f"{name}_curves")


def negatives_figure(name, frame, real):
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for key, color in (("class_entropy", "C0"), ("coverage", "C1"), ("recognisable", "C2")):
        if key in frame:
            ax.plot(
                frame["epoch"], frame[key], marker=".", color=color, label=key.replace("_", " ")
            )
            if real.get(key) is not None:
                ax.axhline(real[key], color=color, lw=0.8, ls="--")
    ax.set(
        xlabel="epoch",
        ylim=(-0.02, 1.02),
        title=f"{name}: the latest training negatives (dashed: real digits)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, f"{name}_negatives")


def generated_figure(name, frame):
    """The generated samples' figures at every sample epoch: what the verdicts read."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    for key, color in zip(GENERATED_COLUMNS[:-1], ("C2", "C0", "C3", "C7", "C5")):
        if key in frame and frame[key].notna().any():
            ax.plot(frame["step"], frame[key], marker=".", color=color, label=key.replace("_", " "))
    ax.set(
        xlabel="iteration", ylim=(-0.02, 1.02), title=f"{name}: generated samples per sample epoch"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, f"{name}_generated")


def classes_figure(name, frame):
    cols = [c for c in ("fresh", "buffer") if c in frame and frame[c].notna().any()]
    covs = [
        f"{c}_coverage"
        for c in cols
        if f"{c}_coverage" in frame and frame[f"{c}_coverage"].notna().any()
    ]
    fig, axes = plt.subplots(1, 2 if covs else 1, figsize=(10 if covs else 6, 2.8), squeeze=False)
    for ax, group, ylabel in (
        (axes[0][0], cols, "share of samples"),
        (axes[0][-1], covs, "class coverage"),
    ):
        if not group or (ylabel == "class coverage" and not covs):
            continue
        width = 0.8 / len(group)
        for i, col in enumerate(group):
            ax.bar(
                frame["class"] + (i - (len(group) - 1) / 2) * width, frame[col], width, label=col
            )
        if ylabel == "share of samples":
            ax.axhline(0.1, color="k", lw=0.8, ls="--", label="uniform")
        ax.set(xlabel="class the judge sees", ylabel=ylabel, xticks=range(10))
        ax.legend(fontsize=8)
    axes[0][0].set_title(f"{name}: class histogram")
    fig.tight_layout()
    return save_figure(fig, f"{name}_classes")


def energy_figure(model, frame, snapshots, real=None):
    """The chains' energy over the steps, beside the test digits' own energy (real: the generation's
    real line). Zoomed on the chains from step 100 on: the noise they start from sits far above."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.fill_between(frame["step"], frame["q05"], frame["q95"], alpha=0.2, label="chains 5-95%")
    ax.fill_between(frame["step"], frame["q25"], frame["q75"], alpha=0.4, label="chains 25-75%")
    ax.plot(frame["step"], frame["median"], label="chains' median")
    ax.plot(frame["step"], frame["mean"], ls="--", label="chains' mean")
    title = f"generation from {model}: energy of the chains"
    if real and real.get("energy_q05") is not None:
        ax.axhspan(
            real["energy_q05"],
            real["energy_q95"],
            color="green",
            alpha=0.12,
            label="test digits 5-95%",
        )
        ax.axhline(real["energy_mean"], color="green", lw=1, ls=":", label="test digits' mean")
        settled = frame[frame["step"] >= 100]
        if len(settled) and len(settled) < len(frame):
            low = min(settled["q05"].min(), real["energy_q05"])
            high = max(settled["q95"].max(), real["energy_q95"])
            pad = 0.1 * (high - low) or 0.01
            ax.set_ylim(low - pad, high + pad)
            start = frame.loc[frame["step"].idxmin(), "mean"]
            title = f"generation from {model}: energy (zoomed from step 100; step 0: {start:.3g})"
    for step in snapshots:
        ax.axvline(step, color="grey", lw=0.5)
    ax.set(xlabel="Langevin step", ylabel="energy E", title=title)
    if frame["step"].max() > 1000:
        ax.set_xscale("symlog", linthresh=100)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlim(0, frame["step"].max())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, f"{model}_energy")
