"""Report: the whole journey on one page, from the pipeline's own outputs only.

    python stages/report.py          # what `dvc repro report` runs, from the repository root

Writes report/index.html (self-contained: every image is embedded as a data URI, so the
file opens from disk anywhere) and report/index.md (its Markdown twin, whose images point
at the PNG files by relative path), plus the figures this stage draws (report/fig_*.png).

Also writes metrics/headline.json: each step's verdict and the figures that decide it, the
one metrics file DVC declares, so that `dvc exp show` and `dvc metrics show` print the journey.

The first screen is the journey in pictures: one card per step (each experiment's generated
samples at its last epoch, its training negatives beside them, each generated model's final
grid) with its agreement word and a few key figures. The tables follow: a summary, the rules,
how to read the figures (their controls), then a section per step.

Reads params.yaml (scale, train, experiments, generate and, when present, long_run),
metrics/{data,judge}.json, metrics/train/*.json, metrics/eval/*.json,
metrics/generate/<model>.json, plots/train/*.csv, plots/negatives/*.csv, plots/generated/*.csv,
plots/samples/*/, plots/eval/* and plots/generate/<model>/*. A stage that has not run shows as
"not run". The experiments are the keys of params.yaml `experiments` in their order; the
generated models are the keys of `generate.chains`.

"Agrees with the original journey?" is computed from the figures by the rules in
ebm/verdicts.py (ebm/generation.py for the generation); ebm/claims.py holds the original
journey's (EBM-MNIST-Journey's) words quoted per step: its claims, not results.
"""

import base64
import html
import json
import os
import platform
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from ebm.io import atomic_path, write_json, write_text  # noqa: E402
from ebm.judge import load_judge  # noqa: E402
from ebm.labels import load_labelled, reading_of_grid  # noqa: E402
from ebm.params import ParamsError, load_params, resolve_scale  # noqa: E402
from ebm.stage import run_stage  # noqa: E402
from ebm.claims import CLAIMS, RULES  # noqa: E402
from ebm.verdicts import (  # noqa: E402
    AGREES,
    DISAGREES,
    GENERATE,
    JOURNEY_SCALE,
    LONG_RUN,
    NOT_AT_SCALE,
    NOT_RUN,
    agreement,
    classes_named,
    headline,
)
from ebm.verdicts import fmt as verdicts_fmt  # noqa: E402

OUT = Path("report")
JUDGE = "checkpoints/judge/judge.pt"
LABELS = "labels"
HEADLINE = "metrics/headline.json"

EVAL_FIGURES = [
    "recognisable",
    "recognised_entropy",
    "recognised_classes",
    "top2_share",
    "noise_share",
    "blob_share",
    "energy",
    "fld",
    "density",
    "coverage",
    "precision",
    "recall",
    "typical",
    "typical_vs_real",
    "class_entropy",
    "modes_covered",
    "min_class_coverage",
    "confidence",
    "ink",
    "saturated",
    "white",
]
SNAPSHOT_FIGURES = [
    "recognisable",
    "recognised_entropy",
    "recognised_classes",
    "density",
    "coverage",
    "fld",
    "typical",
    "ink",
    "white",
    "energy_mean",
    "below_real_energy",
]
GENERATED_COLUMNS = [
    "recognisable",
    "recognised_entropy",
    "top2_share",
    "noise_share",
    "blob_share",
    "energy",
]
TERMS = [
    ("loss", "loss"),
    ("e_pos", "E_pos"),
    ("e_neg", "E_neg"),
    ("cd", "CD"),
    ("reg", "reg"),
    ("r1", "R1"),
]


# ---- reading the pipeline's outputs (missing -> None) --------------------------------


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_csv(path):
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def fmt(value, digits=4):
    return verdicts_fmt(value, digits)


def flatten(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_diff(old, new):
    """'key.path: old -> new' for every value that differs between two resolved configs."""
    a, b = flatten(old), flatten(new)
    return [
        f"{k}: {fmt(a.get(k))} -> {fmt(b.get(k))}"
        for k in list(a) + [k for k in b if k not in a]
        if a.get(k) != b.get(k)
    ]


def merged(base, override):
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = (
            merged(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


class Run:
    """Everything the report reads, in one place."""

    def __init__(self):
        self.params = load_params(sections=["train", "experiments", "generate", "abilities"])
        self.scale = self.params["scale"]
        self.experiments = list(self.params["experiments"])  # YAML order
        self.models = list(self.params["generate"]["chains"])  # generated models, in order
        self.long_run_cfg = self._long_run_params()
        self.trains = {
            n: read_json(f"metrics/train/{n}.json") for n in self.experiments + [LONG_RUN]
        }
        self.evals = {n: read_json(f"metrics/eval/{n}.json") for n in self.experiments}
        self.gens = {m: read_json(f"metrics/generate/{m}.json") for m in self.models}
        self.judge = read_json("metrics/judge.json")
        self.data = read_json("metrics/data.json")
        self.has_long_run = self.long_run_cfg is not None or self.trains[LONG_RUN] is not None
        # the committed run's grids read by eye, and the judge to score the same tiles beside them
        labelled = Path(LABELS) / "committed" / "labels.csv"
        self.eye = (
            (load_labelled(LABELS, parts=("committed",)), load_judge(JUDGE))
            if labelled.is_file() and Path(JUDGE).is_file()
            else None
        )

    def _long_run_params(self):
        """params.yaml's `long_run` section at this scale, or None: validated when the schema
        knows it."""
        try:
            raw = yaml.safe_load(Path("params.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        if LONG_RUN not in raw:
            return None
        try:
            return load_params(sections=[LONG_RUN])[LONG_RUN]
        except (ParamsError, KeyError):
            return resolve_scale(raw, self.scale).get(LONG_RUN) or {}

    def steps(self):
        """The training steps shown: the experiments, then the long run when it exists."""
        return self.experiments + (
            [LONG_RUN] if self.has_long_run and LONG_RUN not in self.experiments else []
        )

    def quality(self, name, protocol):
        """The figures of one eval protocol (fresh | buffer); None when missing or when there was
        no model."""
        block = (self.evals.get(name) or {}).get(protocol)
        return block if block and block.get("fld") is not None else None

    def real(self, name):
        """What real digits score at the eval's N (the judge's real line at its N when the eval
        has none)."""
        return (self.evals.get(name) or {}).get("real") or (self.judge or {}).get("real") or {}

    def negatives(self, name):
        frame = read_csv(f"plots/negatives/{name}.csv")
        return frame if frame is not None and len(frame) else None

    def generated(self, name):
        """The generated samples' figures at every sample epoch (plots/generated/<name>.csv)."""
        frame = read_csv(f"plots/generated/{name}.csv")
        return frame if frame is not None and len(frame) else None

    def last_grid(self, name, kind="samples"):
        """The last grid of training negatives (kind "samples") or of generated samples
        ("generated")."""
        grids = sorted(Path(f"plots/samples/{name}").glob(f"{kind}_epoch_*.png"))
        return grids[-1] if grids else None

    def final_model(self):
        return self.models[-1] if self.models else None


# ---- one document, two renderings ----------------------------------------------------

WORD_CLASS = {AGREES: "agrees", DISAGREES: "disagrees", NOT_AT_SCALE: "scale", NOT_RUN: "notrun"}


def data_uri(path):
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def md_link(path):
    return Path(os.path.relpath(path, OUT)).as_posix()


def inline(text):
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


class Doc:
    """Appends every block to an HTML and a Markdown rendering at once, so the two stay twins."""

    def __init__(self, title):
        self.title, self.html, self.md = title, [], [f"# {title}", ""]

    def heading(self, level, text, anchor=None):
        anchor = anchor or re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.md += [f"{'#' * level} {text}", ""]

    def para(self, text, quote=False):
        body = inline(text)
        self.html.append(f"<blockquote>{body}</blockquote>" if quote else f"<p>{body}</p>")
        self.md += [("> " if quote else "") + text, ""]

    def pre(self, lines):
        self.html.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        self.md += ["```", *lines, "```", ""]

    def table(self, header, rows, table_id=None):
        attr = f' id="{table_id}"' if table_id else ""
        cells = lambda tag, row: "".join(f"<{tag}>{html.escape(fmt(c))}</{tag}>" for c in row)  # noqa: E731
        self.html.append(
            f"<table{attr}><thead><tr>{cells('th', header)}</tr></thead><tbody>"
            + "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
            + "</tbody></table>"
        )
        esc = lambda c: fmt(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        self.md += [
            "| " + " | ".join(map(esc, header)) + " |",
            "|" + "---|" * len(header),
            *["| " + " | ".join(map(esc, r)) + " |" for r in rows],
            "",
        ]

    def image(self, path, alt):
        self.html.append(
            f'<figure><img src="{data_uri(path)}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(alt)} ({html.escape(str(path))})</figcaption></figure>"
        )
        self.md += [f"![{alt}]({md_link(path)})", ""]

    def cards(self, cards):
        """The first screen: cards side by side (a CSS grid) in HTML, one after another in Markdown.
        Each card: dict(title, anchor, images: [(path, caption)], missing (text when no image),
        verdict (Verdict), note); the first image is the card's picture, any other follows
        smaller."""
        out = ['<div class="cards">']
        for card in cards:
            verdict, images = card["verdict"], card["images"]
            picture = (
                "".join(
                    f'<img class="{"main" if i == 0 else "side"}" src="{data_uri(path)}" '
                    f'alt="{html.escape(caption)}"><p class="caption">{html.escape(caption)}</p>'
                    for i, (path, caption) in enumerate(images)
                )
                if images
                else f'<div class="noimg">{html.escape(card["missing"])}</div>'
            )
            caption = ""
            figures = "".join(f"<li>{html.escape(f)}</li>" for f in verdict.figures)
            why = "" if verdict.word == AGREES else verdict.short
            note = "".join(
                f'<p class="note">{html.escape(t)}</p>' for t in (why, card.get("note")) if t
            )
            if card.get("eye"):
                note += f'<p class="eye">{html.escape(card["eye"])}</p>'
            out.append(
                f'<div class="card"><h3><a '
                f'href="#{card["anchor"]}">{html.escape(card["title"])}</a></h3>'
                f"{picture}{caption}"
                f'<p class="word '
                f'{WORD_CLASS.get(verdict.word, "notrun")}">{html.escape(verdict.word)}</p>'
                f"<ul>{figures}</ul>{note}</div>"
            )
            self.md += [f"**{card['title']}**: {verdict.word}", ""]
            for path, text in images:
                self.md += [f"![{text}]({md_link(path)}) *{text}*", ""]
            if not images:
                self.md += [f"*{card['missing']}*", ""]
            self.md += [f"- {f}" for f in verdict.figures]
            texts = (why, card.get("note"), card.get("eye"))
            self.md += ([""] if verdict.figures else []) + [f"{t}\n" for t in texts if t]
        out.append("</div>")
        self.html.append("".join(out))

    def render(self):
        style = (
            "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 "
            "1em;line-height:1.4}"
            "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid "
            "#bbb;padding:.2em .5em;"
            "text-align:right;font-size:.9em}th{background:#eee}td:first-child{text-align:left}"
            "img{max-width:100%}figure{margin:.5em 0}figcaption{font-size:.8em;color:#555}"
            "blockquote{border-left:4px solid #ccc;margin:.5em 0;padding:.2em 1em;color:#333}"
            "pre{background:#f6f6f6;padding:.5em}#summary td,#rules "
            "td{text-align:left;vertical-align:top}"
            ".cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.5em 0 1.5em}"
            ".card{flex:1 1 118px;min-width:118px;max-width:220px;box-sizing:border-box;border:1px "
            "solid #ccc;border-radius:6px;"
            "padding:.4em;font-size:.74em;background:#fafafa;break-inside:avoid}"
            ".card h3{font-size:1em;margin:0 0 .3em}.card h3 a{color:#222;text-decoration:none}"
            ".card img{width:100%;image-rendering:pixelated;display:block}.card img.side{width:60%}"
            ".card .noimg{aspect-ratio:1;box-sizing:border-box;background:#ddd;color:#555;"
            "display:flex;align-items:center;"
            "justify-content:center;text-align:center;padding:.3em}"
            ".card .caption{color:#666;margin:.2em 0}.card ul{margin:.2em 0;padding-left:1.1em}"
            ".card .note{color:#666;margin:.2em 0}"
            ".card .eye{color:#225;background:#eef;padding:.2em;margin:.2em 0}"
            ".word{font-weight:bold;margin:.2em 0;padding:.1em "
            ".4em;border-radius:3px;display:inline-block}"
            ".agrees{background:#d4f0d4;color:#1a5e1a}.disagrees{background:#f6d0d0;color:#8a1a1a}"
            ".scale{background:#fbe7c2;color:#7a4a00}.notrun{background:#e4e4e4;color:#555}"
        )
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta '
            f'charset="utf-8"><title>{html.escape(self.title)}'
            f"</title><style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
        return page, "\n".join(self.md)


# ---- figures drawn by the report -----------------------------------------------------


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


# ---- sections ------------------------------------------------------------------------


def gen_anchor(model):
    return f"{GENERATE}-{model}"


def step_list(run):
    """(key for agreement, label, anchor) of every step on the page, in order."""
    steps = [(n, n, n) for n in run.steps()]
    return steps + [((GENERATE, m), f"{GENERATE} from {m}", gen_anchor(m)) for m in run.models]


def epoch_of(grid):
    return int(re.sub(r"\D", "", grid.stem)) if grid else None


def eye_note(grid, eye):
    """One line for a card: what a person read on its grid beside the figures of the same tiles
    (eye: labels/committed and the judge; docs/labelling.md), or None when the grid was not
    labelled."""
    reading = reading_of_grid(grid, *eye) if eye is not None and grid else None
    if reading is None:
        return None
    if reading.get("stale"):
        return "read by eye: labels are of an earlier run of this grid"
    kinds = ", ".join(f"{n} {k}" for k, n in reading["person_kinds"].items())
    return (
        f"read by eye ({reading['tiles']} tiles): {kinds}. Person / figures: read "
        f"{reading['person_read']:.2f} / {reading['read']:.2f}, noise "
        f"{reading['person_noise']:.2f} / {reading['noise']:.2f}, blob "
        f"{reading['person_blob']:.2f} / {reading['blob']:.2f}"
    )


def journey_cards(doc, run):
    doc.heading(2, "The journey in pictures", anchor="pictures")
    cards = []
    for number, name in enumerate(run.steps(), 1):
        train = run.trains.get(name) or {}
        generated, negatives = run.last_grid(name, "generated"), run.last_grid(name)
        images = (
            [(generated, f"generated samples, epoch {epoch_of(generated)}")] if generated else []
        ) + ([(negatives, f"training negatives, epoch {epoch_of(negatives)}")] if negatives else [])
        title = f"{number}. {name}" if name in run.experiments else f"+ {name}"
        cards.append(
            {
                "title": title,
                "anchor": name,
                "images": images,
                "missing": f"no samples (status {train.get('status', 'not run')})",
                "verdict": agreement(run, name),
                "eye": eye_note(generated, run.eye),
            }
        )
    final = run.final_model()
    for model in run.models:
        gen = run.gens.get(model) or {}
        grid = Path(f"plots/generate/{model}/hq_samples_k{gen.get('steps')}.png")
        note = (
            "the original journey's claim is judged here"
            if model == final
            else f"for comparison; the claim is judged on {final}"
        )
        cards.append(
            {
                "title": f"generation from {model}",
                "anchor": gen_anchor(model),
                "images": [(grid, f"{fmt(gen.get('steps'))} Langevin steps from noise")]
                if gen and grid.is_file()
                else [],
                "missing": "no generation",
                "verdict": agreement(run, (GENERATE, model)),
                "note": note,
                "eye": eye_note(grid, run.eye),
            }
        )
    doc.cards(cards)
    doc.para(
        "Each card: the step's generated samples at its last epoch (chains from noise under the "
        "model, as the original journey's pictures are), the training negatives beside them, "
        "whether the step agrees with EBM-MNIST-Journey (rules under the summary) and the figures "
        "that decided it. The verdicts read the generated samples: in exp 3 the account's own "
        "numbers put the blobs at the low energy (-5) and the negatives at the high one (+5), so "
        "its pictures cannot be the negatives."
    )


def summary_section(doc, run):
    doc.heading(2, "Summary")
    rows = []
    for key, label, _ in step_list(run):
        verdict = agreement(run, key)
        if isinstance(key, tuple):
            gen = run.gens.get(key[1]) or {}
            status = (gen.get("verdict") or {}).get("verdict", "not run")
        else:
            status = (run.trains.get(key) or {}).get("status", "not run")
        rows.append(
            [
                label,
                status,
                "; ".join(verdict.figures) or "—",
                verdict.word + ("" if verdict.word == AGREES else f" ({verdict.short})"),
            ]
        )
    doc.table(
        [
            "step",
            "status",
            "deciding figures (real digits in brackets)",
            "agrees with the original journey?",
        ],
        rows,
        table_id="summary",
    )
    doc.para(
        f'Scale: {run.scale}. "{NOT_AT_SCALE}" replaces "{DISAGREES}" when a failure mode (exps '
        f"2-4) does not show below the original journey's scale (params.yaml `scale: "
        f"{JOURNEY_SCALE}`): fewer digits "
        "and iterations may not reach it. The fixes and the generation must hold at any scale. The "
        "same figures are in metrics/headline.json (`dvc metrics show`, `dvc exp show`)."
    )
    doc.heading(3, 'Rules of "agrees with the original journey?"', anchor="rules")
    doc.table(
        ["step", "agrees when", "samples and figures it reads", "why"],
        [[k, *v] for k, v in RULES.items() if k != LONG_RUN or run.has_long_run],
        table_id="rules",
    )
    doc.para(
        'A rule whose inputs are missing gives "not run" with the missing file. The rules and the '
        "claims they quote are in stages/ebm/verdicts.py, generation.py and claims.py."
    )


CONTROL_COLUMNS = [
    "recognisable",
    "typical",
    "top2_share",
    "noise_share",
    "blob_share",
    "density",
    "coverage",
]


def controls_section(doc, run):
    doc.heading(2, "How to read the figures", anchor="how-to-read")
    doc.para(
        "Every figure a verdict reads was first run on control sets whose answer a person knows "
        "(ebm.controls; tests/test_controls.py holds the answers). recognisable: the judge, a "
        "LeNet-5 with an eleventh class "
        'for "not a digit", is at least 0.9 sure of one digit, i.e. a person would read it. '
        "typical: recognisable and inside the k-NN ball of a real digit (Kynkaanniemi et al. "
        "2019), which real digits themselves pass only about half the time: it measures how "
        "typical of MNIST's strokes a sample is, and no verdict reads it. top2_share: the two "
        "commonest classes' share of the recognisable samples (collapse at 0.5). noise_share and "
        "blob_share: ebm.shapes, from the pixels alone. density and coverage: Naeem et al. 2020, "
        "in the judge's features."
    )
    controls = (run.judge or {}).get("controls")
    if not controls:
        doc.para("not run: metrics/judge.json has no controls.")
        return
    doc.table(
        ["control", *CONTROL_COLUMNS, "known answers met"],
        [
            [name, *[row.get(k) for k in CONTROL_COLUMNS], row.get("meets")]
            for name, row in controls.items()
        ],
        table_id="controls",
    )
    doc.para(
        f"{fmt((run.judge or {}).get('real', {}).get('n'))} images per control, drawn from the "
        f"test split or "
        "from generators of their own, never from what the judge trained on."
    )


def training_block(doc, run, name, cfg_epochs):
    doc.heading(3, "Training", anchor=f"{name}-training")
    train = run.trains.get(name)
    if train is None:
        doc.para(f"not run: metrics/train/{name}.json is missing.")
        return
    doc.table(
        ["status", "error", "epochs done", "iterations", "wall time (s)", "device"],
        [
            [
                train.get("status"),
                train.get("error") or "—",
                f"{train.get('epochs_done')} / {fmt(cfg_epochs)}",
                train.get("iterations"),
                train.get("wall_time_s"),
                train.get("device"),
            ]
        ],
    )
    doc.table(
        ["term", "final", "last 10%"],
        [[label, train.get(f"final_{k}"), train.get(f"last10pct_{k}")] for k, label in TERMS],
    )
    frame = read_csv(f"plots/train/{name}.csv")
    if frame is not None and len(frame):
        doc.image(curves_figure(name, frame), f"{name}: loss and energy curves")
    else:
        doc.para("no curve: the run logged no iterations.")
    negatives = run.negatives(name)
    if negatives is not None:
        doc.image(
            negatives_figure(name, negatives, (run.judge or {}).get("real") or {}),
            f"{name}: class entropy, coverage and recognisable of the latest training negatives "
            f"per epoch",
        )
        last, real = negatives.iloc[-1], (run.judge or {}).get("real") or {}
        # The judge's real line is scored at its own N (the test split's size), which need not be
        # the number of negatives tracked; coverage grows with N, so the N is named rather than
        # implied.
        doc.para(
            f"At the last epoch ({int(last['epoch'])}): class entropy "
            f"{fmt(float(last['class_entropy']), 3)}, coverage {fmt(float(last['coverage']), 3)}, "
            f"modes covered {int(last['modes_covered'])}; real digits (the judge's line, N = "
            f"{fmt(real.get('n'))}): {fmt(real.get('class_entropy'), 3)}, "
            f"{fmt(real.get('coverage'), 3)}, {fmt(real.get('modes_covered'))}."
        )
    generated = run.generated(name)
    if generated is not None:
        doc.heading(3, "Generated samples during training", anchor=f"{name}-generated")
        doc.image(
            generated_figure(name, generated),
            f"{name}: the generated samples' figures per sample epoch",
        )
        doc.table(
            ["iteration", "epoch", *GENERATED_COLUMNS, "dominant classes"],
            [
                [
                    int(r["step"]),
                    int(r["epoch"]),
                    *[r.get(k) for k in GENERATED_COLUMNS],
                    classes_named(r),
                ]
                for r in generated.to_dict("records")
            ],
        )
    if negatives is not None and "age_draws_mean" in negatives:
        last = negatives.iloc[-1]
        ages = (run.trains.get(name) or {}).get("buffer_age") or {}
        doc.para(
            f"The replay buffer's chains at the end "
            f"({fmt((run.trains.get(name) or {}).get('buffer_capacity'))} slots): drawn and "
            f"continued {fmt(float(last['age_draws_mean']), 3)} times on average (90% at most "
            f"{fmt((ages.get('draws') or {}).get('q90'))}), "
            f"{fmt(float(last['age_steps_mean']), 4)} Langevin steps since noise (at most "
            f"{fmt((ages.get('steps') or {}).get('max'))})."
        )
    for kind, label in (("generated", "generated samples"), ("samples", "training negatives")):
        grid = run.last_grid(name, kind)
        if grid:
            doc.image(grid, f"{name}: {label}, epoch {epoch_of(grid)}")


def evaluation_block(doc, run, name):
    doc.heading(3, "Evaluation", anchor=f"{name}-evaluation")
    record = run.evals.get(name)
    if record is None:
        doc.para(f"not run: metrics/eval/{name}.json is missing.")
        return
    if run.quality(name, "fresh") is None and run.quality(name, "buffer") is None:
        doc.para(
            f"status {record.get('status')}: no model to evaluate (training status "
            f"{record.get('train_status')})."
        )
        return
    real = record.get("real") or {}
    rows = [
        [
            k,
            (record.get("fresh") or {}).get(k),
            (record.get("buffer") or {}).get(k),
            record.get("test_energy") if k == "energy" else real.get(k),
        ]
        for k in EVAL_FIGURES
    ]
    rows.append(["fld_ceiling (noise)", None, None, real.get("fld_ceiling")])
    rows += [
        [f"{k} (test digits)", None, None, real.get(f"test_{k}")]
        for k in ("ink", "saturated", "white")
    ]
    doc.table(["figure", "fresh", "buffer", "real"], rows)
    doc.para(
        f"{fmt(record.get('num_samples'))} samples per protocol; fresh chains run "
        f"{fmt(record.get('fresh_steps'))} Langevin steps from noise, buffer samples come from the "
        f"trained replay buffer; real = {fmt(real.get('n'))} real train digits scored the same way "
        f"(energy: the test digits' mean energy)."
    )
    classes = read_csv(f"plots/eval/{name}_classes.csv")
    if (
        classes is not None
        and "class" in classes
        and classes.drop(columns="class").notna().any().any()
    ):
        doc.image(classes_figure(name, classes), f"{name}: classes the judge sees")
    for grid in sorted(Path(f"plots/eval/{name}").glob("*.png")):
        doc.image(grid, f"{name}: evaluation samples ({grid.stem})")


def experiment_section(doc, run, index, name):
    title, claim = CLAIMS.get(name, (f"Experiment {index + 1}: {name}", None))
    doc.heading(2, title, anchor=name)
    if claim:
        doc.para(("" if name == LONG_RUN else "The original journey says: ") + claim, quote=True)
    doc.para(
        f"Agrees with the original journey? {agreement(run, name).text()}. Rule: "
        f"{RULES.get(name, ('no rule',))[0]}."
    )

    experiments = run.params["experiments"]
    if name == LONG_RUN:
        base_name = run.experiments[-1]
        doc.heading(3, f"Config change from {base_name}", anchor=f"{name}-config")
        if run.long_run_cfg is None:
            doc.para("params.yaml has no long_run section.")
        else:
            base = experiments[base_name]
            doc.pre(config_diff(base, merged(base, run.long_run_cfg)) or ["(no change)"])
        epochs = (run.long_run_cfg or {}).get("epochs")
    else:
        cfg = experiments[name]
        previous = run.params["train"] if index == 0 else experiments[run.experiments[index - 1]]
        doc.heading(
            3,
            "Config change from "
            + ("the shared recipe (train)" if index == 0 else run.experiments[index - 1]),
            anchor=f"{name}-config",
        )
        doc.pre(config_diff(previous, cfg) or ["(no change)"])
        epochs = cfg["epochs"]
    training_block(doc, run, name, epochs)
    if name == LONG_RUN:
        doc.para(
            "The long run has no evaluation stage: its training negatives are above, and its long "
            "chains are judged in its generation section."
        )
    else:
        evaluation_block(doc, run, name)


def generation_section(doc, run, model):
    title, claim = CLAIMS[GENERATE]
    final = run.final_model()
    doc.heading(2, f"{title}, from {model}", anchor=gen_anchor(model))
    if model == final:
        doc.para(f"The original journey says: {claim}", quote=True)
    else:
        doc.para(
            f"For comparison: the original journey's claim is judged on the generation from "
            f"{final}."
        )
    gen = run.gens.get(model)
    doc.para(
        f"Agrees with the original journey? {agreement(run, (GENERATE, model)).text()}. Rule: "
        f"{RULES[GENERATE][0]}."
    )
    if gen is None:
        doc.para(f"not run: metrics/generate/{model}.json is missing.")
        return
    folder = Path("plots/generate") / model
    # the full one: rules, summary
    verdict = read_json(folder / "verdict.json") or gen.get("verdict") or {}
    doc.para(f"Verdict: {verdict.get('summary') or verdict.get('verdict', 'missing')}")
    weights = (
        "; the moving average of its weights" if gen.get("weights") == "moving average" else ""
    )
    doc.para(
        f"{fmt(gen.get('chains'))} chains from {gen.get('init')} under {model}'s model (epoch "
        f"{fmt(gen.get('checkpoint_epoch'))}{weights}), {fmt(gen.get('steps'))} steps on "
        f"{gen.get('device')} in {fmt(gen.get('wall_time_s'))} s "
        f"({fmt(gen.get('langevin_img_steps_per_s'))} image-steps/s)."
    )
    grid = folder / f"hq_samples_k{gen.get('steps')}.png"
    if grid.is_file():
        doc.image(grid, f"{model}: the final grid after {fmt(gen.get('steps'))} steps")
    if (folder / "chain_snapshots.png").is_file():
        doc.image(
            folder / "chain_snapshots.png",
            f"{model}: chains (rows) at the snapshot steps (columns)",
        )
    snaps = gen.get("snapshots") or {}
    real = gen.get("real") or {}
    energy = read_csv(folder / "energy.csv")
    if energy is not None and len(energy):
        doc.image(
            energy_figure(model, energy, [int(s) for s in snaps], real),
            f"{model}: energy of the chains over the steps, beside the test digits' own",
        )
    doc.heading(3, "Figures over the steps", anchor=f"{gen_anchor(model)}-metrics")
    rows = [
        [f"{int(s):,}", *[snaps[s].get(k) for k in SNAPSHOT_FIGURES]]
        for s in sorted(snaps, key=int)
    ]
    # the test digits' own figures; none for a share of the chains
    real_keys = {
        "ink": "test_ink",
        "saturated": "test_saturated",
        "white": "test_white",
        "below_real_energy": None,
    }
    rows.append(
        [
            f"real ({fmt(real.get('n'))} digits)",
            *[real.get(real_keys.get(k, k)) for k in SNAPSHOT_FIGURES],
        ]
    )
    binary = gen.get("binarised_real") or {}
    if binary:
        rows.append(
            [
                f"real at ±1 ({fmt(real.get('n'))} digits)",
                *[binary.get(k) for k in SNAPSHOT_FIGURES],
            ]
        )
    doc.table(["step", *[k.replace("modes_covered", "modes") for k in SNAPSHOT_FIGURES]], rows)
    doc.para(
        f"The real row: what {fmt(real.get('n'))} real train digits score (ink, saturated, white "
        f"and energy_mean: the test digits'); below_real_energy: the share of chains whose energy "
        f"is below that of 95% of the test digits ({fmt(real.get('energy_q05'), 3)}). The noise "
        f"ceiling of the Frechet distance is {fmt(real.get('fld_ceiling'), 3)}."
    )
    if binary:
        white, test_white = binary.get("white"), real.get("test_white")
        doc.para(
            f"The real at ±1 row: as many real train digits with every pixel set to -1 or +1, the "
            f"style of a cold chain whose gradient steps carry pixels to the ends of [-1, 1]. "
            f"Shapes as real as the data's then score recognisable "
            f"{fmt(binary.get('recognisable'), 3)} (typical "
            f"{fmt(binary.get('typical_vs_real'), 2)} of real) and white "
            f"{fmt(binary.get('white'), 3)} "
            f"({fmt(white / test_white if white is not None and test_white else None, 2)}x the "
            f"test digits'): recognisable judges shapes, white grey stroke edges."
        )
    counts = read_csv(folder / "class_counts.csv")
    if counts is not None and len(counts):
        doc.heading(3, "The judge's classes over the steps", anchor=f"{gen_anchor(model)}-classes")
        doc.table(list(counts.columns), counts.values.tolist())
    doc.heading(3, "The verdict's checks", anchor=f"{gen_anchor(model)}-checks")
    doc.table(
        ["check", "value", "rule", "passed"],
        [
            [k, c.get("value"), c.get("rule", "—"), c.get("passed")]
            for k, c in (verdict.get("checks") or {}).items()
        ],
    )
    beyond = verdict.get("beyond_the_claim") or {}
    if beyond:
        doc.para(
            "Beyond the claim, and in no check: "
            + "; ".join(f"{k} {fmt(v, 3)}" for k, v in beyond.items())
            + " (typical_vs_real: how MNIST-typical the strokes are, as a share of what real "
            "digits score; ink and white: against the test digits')."
        )


def abilities_headline(models):
    """The headline's line for the last model's abilities: the energy's OOD AUROC on the far and
    the near sets, and completion of the lower half beside the mean-image and nearest-digit
    baselines."""
    model = models[-1] if models else None
    record = read_json(f"metrics/abilities/{model}.json") if model else None
    if not record:
        return {}
    ood, lower = record.get("ood") or {}, (record.get("completion") or {}).get("lower_half") or {}
    auroc = {
        f"auroc_{k}": (ood.get(k) or {}).get("auroc", {}).get("energy")
        for k in ("uniform_noise", "inverted", "sklearn_digits")
    }
    accuracy = lower.get("accuracy") or {}
    line = {
        "model": model,
        **auroc,
        "lower_half_acc": accuracy.get("ebm"),
        "lower_half_acc_mean": accuracy.get("mean"),
        "lower_half_acc_nearest": accuracy.get("nearest"),
    }
    return {k: v for k, v in line.items() if v is not None}


def abilities_section(doc):
    """What the energy does besides sampling (stages/abilities.py), per model, each figure beside
    its baseline, and in words where the energy loses to one. Reads params.yaml abilities.models
    and metrics/abilities/<model>.json, plots/abilities/<model>/*.png."""
    try:
        models = load_params(sections=["abilities"])["abilities"]["models"]
    except (ParamsError, KeyError):
        models = sorted(p.stem for p in Path("metrics/abilities").glob("*.json"))
    doc.heading(
        2,
        "Besides sampling: completion, denoising, out-of-distribution detection",
        anchor="abilities",
    )
    doc.para(
        "What an energy gives that a sampler alone does not (IGEBM, Du & Mordatch 2019): "
        "completing a digit with part of it hidden (the hidden pixels start as noise, the model's "
        "sampler runs with the visible pixels clamped), denoising by a few Langevin steps, and "
        "telling digits from non-digits by E(x). Each figure stands beside a plain baseline: for "
        "completion the hole at background, the train-mean image and the nearest train digit by "
        "the visible pixels; for denoising a 3x3 median filter; for OOD the judge's maximum "
        "softmax probability (MSP, Hendrycks & Gimpel 2017). Accuracy is the judge's against the "
        "true labels; MSE is over the hidden pixels, on the [-1, 1] scale."
    )
    for model in models:
        record = read_json(f"metrics/abilities/{model}.json")
        doc.heading(3, f"{model}", anchor=f"abilities-{model}")
        if record is None:
            doc.para(f"not run: metrics/abilities/{model}.json is missing.")
            continue
        folder, comp = Path("plots/abilities") / model, record.get("completion") or {}
        regions = [k for k, v in comp.items() if isinstance(v, dict)]
        ways = ("ebm", "background", "mean", "nearest")
        doc.table(
            ["region", *[f"accuracy {w}" for w in ways], *[f"MSE {w}" for w in ways]],
            [
                [
                    r,
                    *[comp[r]["accuracy"].get(w) for w in ways],
                    *[comp[r]["mse"].get(w) for w in ways],
                ]
                for r in regions
            ],
        )
        loses = {
            b: [r for r in regions if comp[r]["accuracy"]["ebm"] < comp[r]["accuracy"][b]]
            for b in ("mean", "nearest")
        }
        doc.para(
            f"Completion of {fmt(comp.get('digits'))} test digits, {fmt(comp.get('steps'))} "
            f"Langevin steps (the judge on the intact digits: "
            f"{fmt(comp.get('judge_accuracy_original'), 3)}). "
            + " ".join(
                f"The energy's completions are less accurate than the {b} baseline's in "
                f"{len(lost)} of {len(regions)} regions ({', '.join(lost)})."
                if lost
                else f"The energy's completions are at least as accurate as the {b} baseline's in "
                f"every region."
                for b, lost in loses.items()
            )
        )
        for region in regions:
            if (folder / f"completion_{region}.png").is_file():
                doc.image(
                    folder / f"completion_{region}.png",
                    f"{model}, completion of the {region.replace('_', ' ')} "
                    "(rows: original, the hole in grey, the energy's completion, the nearest train "
                    "digit's)",
                )
        den = record.get("denoise") or {}
        sigmas = [k for k, v in den.items() if isinstance(v, dict)]
        doc.table(
            [
                "noise",
                "PSNR noisy",
                "PSNR energy",
                "PSNR median",
                "accuracy clean",
                "accuracy noisy",
                "accuracy energy",
                "accuracy median",
            ],
            [
                [
                    k.replace("_", " "),
                    *[den[k]["psnr"].get(w) for w in ("noisy", "ebm", "median")],
                    *[den[k]["accuracy"].get(w) for w in ("clean", "noisy", "ebm", "median")],
                ]
                for k in sigmas
            ],
        )
        worse = [
            k.replace("_", " ") for k in sigmas if den[k]["psnr"]["ebm"] < den[k]["psnr"]["median"]
        ]
        doc.para(
            f"Denoising of {fmt(den.get('digits'))} test digits by {fmt(den.get('steps'))} "
            f"Langevin steps "
            "(PSNR in dB, peak-to-peak 2). "
            + (
                f"The energy's PSNR is below the 3x3 median's at {', '.join(worse)}."
                if worse
                else "The energy's PSNR is above the 3x3 median's at every noise level."
            )
        )
        if (folder / "denoise.png").is_file():
            doc.image(
                folder / "denoise.png",
                f"{model}, denoising (rows: clean, then per noise level: noisy, "
                "the energy's, the median filter's)",
            )
        det = record.get("ood") or {}
        sets = [k for k, v in det.items() if isinstance(v, dict)]
        rows, lost = [], []
        for k in sets:
            block = det[k]
            if "auroc" not in block:
                rows.append([k, None, None, None, None, f"skipped: {block.get('skipped')}"])
                continue
            a, f = block["auroc"], block["fpr95"]
            better = (
                "energy" if a["energy"] > a["msp"] else "MSP" if a["msp"] > a["energy"] else "tie"
            )
            lost += [k] if better == "MSP" else []
            rows.append([k, a["energy"], a["msp"], f["energy"], f["msp"], better])
        doc.table(
            ["set", "AUROC energy", "AUROC MSP", "FPR95 energy", "FPR95 MSP", "higher AUROC"], rows
        )
        doc.para(
            f"{fmt(det.get('digits'))} test digits against each set (low energy = a digit; the "
            f"test digits' mean energy {fmt(det.get('digits_energy_mean'), 3)}). "
            + (
                f"The energy loses to the judge's max softmax on {', '.join(lost)}."
                if lost
                else "The energy beats the judge's max softmax on every set."
            )
        )
        if (folder / "energy_hist.png").is_file():
            doc.image(
                folder / "energy_hist.png", f"{model}: energy of the test digits against each set"
            )


def stage_records(run):
    """(stage, metrics) for every metrics file there is: data, judge, train, evaluate, generate."""
    order = {n: i for i, n in enumerate(run.steps() + run.models)}
    rows = [("data", run.data), ("judge", run.judge)]
    for folder, stage in (("train", "train"), ("eval", "evaluate"), ("generate", "generate")):
        for path in sorted(
            Path("metrics", folder).glob("*.json"), key=lambda p: (order.get(p.stem, 99), p.stem)
        ):
            rows.append((f"{stage}@{path.stem}", read_json(path)))
    return rows


def provenance_section(doc, run):
    import torch

    doc.heading(2, "Provenance")
    data, judge = run.data, run.judge
    rows = [["scale (params.yaml)", run.scale]]
    if data:
        rows += [
            [
                "data source",
                f"{data.get('source')} (asked: {data.get('requested_source')})"
                + (
                    f"; fell back: {data['fallback_reason']}" if data.get("fallback_reason") else ""
                ),
            ],
            [
                "train / test digits",
                f"{fmt(data.get('train_size'))} / {fmt(data.get('test_size'))}",
            ],
            ["data content hash", str(data.get("content_hash", ""))[:16]],
        ]
    else:
        rows.append(["data", "not run (metrics/data.json is missing)"])
    rows.append(["judge test accuracy", fmt(judge.get("test_accuracy")) if judge else "not run"])
    rows += [
        ["torch / python (report stage)", f"{torch.__version__} / {platform.python_version()}"]
    ]
    doc.table(["what", "value"], rows)
    doc.table(
        ["stage", "wall time (s)", "device"],
        [
            [
                s,
                (m or {}).get("wall_time_s", "not run" if m is None else None),
                (m or {}).get("device"),
            ]
            for s, m in stage_records(run)
        ],
    )


def main():
    run = Run()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("fig_*.png"):
        old.unlink()

    doc = Doc("Training an energy-based model on MNIST: the journey, reproduced")
    doc.para(
        f"EBM-MNIST-Journey, the original journey, trains an energy-based model on MNIST in five "
        f"experiments and then draws digits with a 20,000-step chain. This page reproduces it at "
        f"scale {run.scale}: every number, curve and picture comes from this pipeline's own "
        f"outputs (metrics/, plots/); "
        f'"not run" '
        f"marks a stage whose output is missing. The original journey's words are quoted as its "
        f"claims; whether each agrees is computed by the rules listed under the summary."
    )
    journey_cards(doc, run)
    summary_section(doc, run)
    controls_section(doc, run)
    for index, name in enumerate(run.steps()):
        experiment_section(doc, run, index, name)
    for model in run.models:
        generation_section(doc, run, model)
    abilities_section(doc)
    provenance_section(doc, run)
    page, markdown = doc.render()
    line = headline(run, run.steps(), run.models)
    abilities = abilities_headline(run.params.get("abilities", {}).get("models") or [])
    if abilities:
        line[f"{len(line) + 1}_abilities"] = abilities
    write_json(HEADLINE, line)
    write_text(OUT / "index.html", page)
    write_text(OUT / "index.md", markdown)
    print(
        f"report: {OUT / 'index.html'} ({len(page) / 1e6:.1f} MB) and {OUT / 'index.md'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main)
