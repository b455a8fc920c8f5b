"""Report: the whole journey on one page, from the pipeline's own outputs only.

    python stages/report.py          # what `dvc repro report` runs, from the repository root

Writes report/index.html (self-contained: every image is embedded as a data URI, so the
file opens from disk anywhere) and report/index.md (its Markdown twin, whose images point
at the PNG files by relative path), plus the figures this stage draws (report/fig_*.png).
Reads params.yaml (scale, train, experiments), metrics/{data,judge,generate}.json,
metrics/train/*.json, metrics/eval/*.json, plots/train/*.csv, plots/samples/*/,
plots/eval/* and plots/generate/*. A stage that has not run shows as "not run".

"Agrees with the seed?" is computed from the numbers by the rules in AGREEMENT_RULES; the
seed's words quoted per experiment are its claims, not results.
"""
import base64
import html
import json
import os
import platform
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from ebm.io import atomic_path, write_text
from ebm.params import experiment_config, load_params
from ebm.stage import run_stage

OUT = Path("report")
EXPERIMENTS = []   # the journey, in params.yaml's order: set by main()
GENERATE = "generation"
EXPECTED_ERROR = "element 0 of tensors does not require grad"
PROTOCOL = "buffer"       # the eval protocol the agreement rules read: the seed's grids are training
                          # negatives, i.e. chains started from the replay buffer

SEED = {   # (title, the seed's account, quoted from ../shared/seed; a claim, not a result)
    "initial_attempt": ("Experiment 1: initial attempt and the gradient error",
                        "The MCMC sampling was performed inside a `torch.no_grad()` block, preventing the "
                        "calculation of energy gradients needed for Langevin Dynamics. Result: `RuntimeError: "
                        "element 0 of tensors does not require grad...`"),
    "loss_collapse": ("Experiment 2: loss collapse (trivial minimum)",
                      "A poorly scaled energy regularizer `(E_pos**2 + E_neg**2)` created a trivial mathematical "
                      "minimum at `E_pos=-1, E_neg=1`. The model learned to output these constant values regardless "
                      "of input. Result: Loss stuck at `-1.0`, and generated samples were pure noise."),
    "blob_collapse": ("Experiment 3: blob collapse",
                      "After scaling the regularizer, the model found the next-easiest solution: mapping fuzzy blobs "
                      "to a low energy value (`-5`) and everything else to a high one (`+5`). The MCMC sampler was "
                      "not strong enough to produce challenging negative samples. Result: Loss stuck at `-5.0`, and "
                      "generated samples were fuzzy blobs."),
    "mode_collapse": ("Experiment 4: mode collapse",
                      "With a stronger MCMC sampler (`CD_K=60`) and a better regularizer (R1 penalty), the model "
                      "began to learn real digits. However, the replay buffer created a feedback loop, causing the "
                      "model to get \"stuck\" generating only one or two types of digits. Result: Generated samples "
                      "showed low diversity (e.g., mostly '7's)."),
    "final_training": ("Experiment 5: final successful training",
                       "By increasing MCMC noise and the frequency of re-initializing chains from random noise, the "
                       "mode collapse feedback loop was broken. Result: Stable training and diverse sample "
                       "generation across all digit classes."),
    GENERATE: ("Generation: a long chain of 20,000 steps",
               "After successful training and a long MCMC chain for generation, the model is capable of producing "
               "diverse and recognizable digits (`hq_samples_k20000.png`)."),
}

AGREEMENT_RULES = {
    "initial_attempt": f"training status is expected_error and its error contains \"{EXPECTED_ERROR}\"",
    "loss_collapse": "status ok, final loss within 0.05 of -1, final E_pos within 0.25 of -1 and E_neg within 0.25 "
                     "of +1",
    "blob_collapse": "status ok, final loss within 0.25 of -5",
    "mode_collapse": f"status ok and mode collapse in the {PROTOCOL} samples: class entropy below final_training's "
                     "minus 0.1, or fewer than 8 of 10 classes covered",
    "final_training": f"status ok, {PROTOCOL} samples with class entropy >= 0.9 and recognisable >= 0.6",
    GENERATE: "the generation verdict is \"stays realistic\" and the last snapshot has class entropy >= 0.9 "
              "and recognisable >= 0.6",
}
QUALITY_KEYS = ["fld", "fld_floor", "fld_ceiling", "class_entropy", "confidence", "recognisable", "modes_covered"]
TERMS = [("loss", "loss"), ("e_pos", "E_pos"), ("e_neg", "E_neg"), ("cd", "CD"), ("reg", "reg"), ("r1", "R1")]


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
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return "nan" if value != value else f"{value + 0.0:.{digits}g}"   # + 0.0: no "-0"
    return str(value)


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
    return [f"{k}: {fmt(a.get(k))} -> {fmt(b.get(k))}" for k in list(a) + [k for k in b if k not in a]
            if a.get(k) != b.get(k)]


def evaluation(evals, name, protocol):
    """The metrics of one eval protocol (fresh | buffer); None when missing or when there was no model."""
    quality = (evals.get(name) or {}).get(protocol)
    return quality if quality and quality.get("fld") is not None else None


# ---- agreement with the seed ---------------------------------------------------------

def within(value, target, tol):
    return value is not None and abs(value - target) <= tol


def agreement(name, trains, evals, gen):
    """('agrees' | 'disagrees' | 'not run', why) by the rule AGREEMENT_RULES[name]."""
    if name == GENERATE:
        if gen is None:
            return "not run", "metrics/generate.json is missing"
        verdict = gen.get("verdict", {})
        last = gen.get("snapshots", {}).get(str(verdict.get("last_step")), {})
        entropy, recog = last.get("class_entropy"), last.get("recognisable")
        why = (f"verdict \"{verdict.get('verdict')}\"; at step {verdict.get('last_step')} class entropy "
               f"{fmt(entropy, 3)}, recognisable {fmt(recog, 3)}")
        ok = verdict.get("verdict") == "stays realistic" and (entropy or 0) >= 0.9 and (recog or 0) >= 0.6
        return ("agrees" if ok else "disagrees"), why
    train = trains.get(name)
    if train is None:
        return "not run", f"metrics/train/{name}.json is missing"
    status, error = train.get("status"), train.get("error") or ""
    if name == "initial_attempt":
        ok = status == "expected_error" and EXPECTED_ERROR in error
        return ("agrees" if ok else "disagrees"), f"status {status}: {error or 'no error'}"
    if status != "ok":
        return "disagrees", f"training status {status}" + (f": {error}" if error else "")
    loss, e_pos, e_neg = train.get("final_loss"), train.get("final_e_pos"), train.get("final_e_neg")
    if name == "loss_collapse":
        ok = within(loss, -1, 0.05) and within(e_pos, -1, 0.25) and within(e_neg, 1, 0.25)
        return ("agrees" if ok else "disagrees"), f"final loss {fmt(loss)}, E_pos {fmt(e_pos)}, E_neg {fmt(e_neg)}"
    if name == "blob_collapse":
        return ("agrees" if within(loss, -5, 0.25) else "disagrees"), f"final loss {fmt(loss)}"
    quality = evaluation(evals, name, PROTOCOL)
    if quality is None:
        return "not run", f"metrics/eval/{name}.json has no {PROTOCOL} metrics"
    entropy, recog, modes = quality.get("class_entropy"), quality.get("recognisable"), quality.get("modes_covered")
    if name == "mode_collapse":
        final = evaluation(evals, "final_training", PROTOCOL)
        why = f"class entropy {fmt(entropy, 3)}, modes covered {fmt(modes)}"
        if modes is not None and modes < 8:
            return "agrees", why + " (< 8)"
        if final is None:
            return "not run", why + "; final_training's eval, the comparison, is missing"
        ref = final.get("class_entropy")
        why += f"; final_training's class entropy {fmt(ref, 3)}"
        return ("agrees" if entropy < ref - 0.1 else "disagrees"), why
    ok = entropy >= 0.9 and recog >= 0.6
    return ("agrees" if ok else "disagrees"), f"class entropy {fmt(entropy, 3)}, recognisable {fmt(recog, 3)}"


# ---- one document, two renderings ----------------------------------------------------

class Doc:
    """Appends every block to an HTML and a Markdown rendering at once, so the two stay twins."""

    def __init__(self, title):
        self.title, self.html, self.md = title, [], [f"# {title}", ""]

    def heading(self, level, text, anchor=None):
        anchor = anchor or re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.md += [f"{'#' * level} {text}", ""]

    def para(self, text, quote=False):
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))
        self.html.append(f"<blockquote>{body}</blockquote>" if quote else f"<p>{body}</p>")
        self.md += [("> " if quote else "") + text, ""]

    def pre(self, lines):
        self.html.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        self.md += ["```", *lines, "```", ""]

    def table(self, header, rows, table_id=None):
        attr = f' id="{table_id}"' if table_id else ""
        cells = lambda tag, row: "".join(f"<{tag}>{html.escape(fmt(c))}</{tag}>" for c in row)  # noqa: E731
        self.html.append(f"<table{attr}><thead><tr>{cells('th', header)}</tr></thead><tbody>"
                         + "".join(f"<tr>{cells('td', r)}</tr>" for r in rows) + "</tbody></table>")
        esc = lambda c: fmt(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        self.md += ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header),
                    *["| " + " | ".join(map(esc, r)) + " |" for r in rows], ""]

    def image(self, path, alt):
        path = Path(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
                         f"<figcaption>{html.escape(alt)} ({html.escape(str(path))})</figcaption></figure>")
        self.md += [f"![{alt}]({Path(os.path.relpath(path, OUT)).as_posix()})", ""]

    def render(self):
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}"
                 "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #bbb;padding:.2em .5em;"
                 "text-align:right;font-size:.9em}th{background:#eee}td:first-child{text-align:left}"
                 "img{max-width:100%}figure{margin:.5em 0}figcaption{font-size:.8em;color:#555}"
                 "blockquote{border-left:4px solid #ccc;margin:.5em 0;padding:.2em 1em;color:#333}"
                 "pre{background:#f6f6f6;padding:.5em}")
        page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
                f"</title><style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>\n"
                + "\n".join(self.html) + "\n</body></html>\n")
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


def classes_figure(name, frame):
    fig, ax = plt.subplots(figsize=(6, 2.8))
    cols = [c for c in ("fresh", "buffer") if c in frame]
    width = 0.8 / max(len(cols), 1)
    for i, col in enumerate(cols):
        ax.bar(frame["class"] + (i - (len(cols) - 1) / 2) * width, frame[col], width, label=col)
    ax.axhline(0.1, color="k", lw=0.8, ls="--", label="uniform")
    ax.set(xlabel="class the judge sees", ylabel="fraction", xticks=range(10), title=f"{name}: class histogram")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, f"{name}_classes")


def energy_figure(frame, snapshots):
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.fill_between(frame["step"], frame["q05"], frame["q95"], alpha=0.2, label="5-95%")
    ax.fill_between(frame["step"], frame["q25"], frame["q75"], alpha=0.4, label="25-75%")
    ax.plot(frame["step"], frame["median"], label="median")
    ax.plot(frame["step"], frame["mean"], ls="--", label="mean")
    for step in snapshots:
        ax.axvline(step, color="grey", lw=0.5)
    ax.set(xlabel="Langevin step", ylabel="energy E", title="generation: energy of the chains")
    if frame["step"].max() > 1000:
        ax.set_xscale("symlog", linthresh=100)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlim(0, frame["step"].max())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, "generate_energy")


# ---- sections ------------------------------------------------------------------------

def summary_section(doc, trains, evals, gen):
    doc.heading(2, "Summary")
    header = ["experiment", "status", "final loss", "E_pos", "E_neg", "fld fresh", "fld buffer", "floor / ceiling",
              "class entropy fresh / buffer", "recognisable fresh / buffer", "modes covered fresh / buffer",
              "agrees with the seed?"]
    pair = lambda f, b, k: f"{fmt((f or {}).get(k), 3)} / {fmt((b or {}).get(k), 3)}"  # noqa: E731
    rows = []
    for name in EXPERIMENTS:
        t = trains.get(name) or {}
        fresh, buf = evaluation(evals, name, "fresh"), evaluation(evals, name, "buffer")
        ref = fresh or buf or {}
        word, why = agreement(name, trains, evals, gen)
        rows.append([name, t.get("status", "not run"), t.get("final_loss"), t.get("final_e_pos"), t.get("final_e_neg"),
                     (fresh or {}).get("fld"), (buf or {}).get("fld"),
                     f"{fmt(ref.get('fld_floor'), 3)} / {fmt(ref.get('fld_ceiling'), 3)}",
                     pair(fresh, buf, "class_entropy"), pair(fresh, buf, "recognisable"),
                     pair(fresh, buf, "modes_covered"), f"{word}: {why}" if word != "not run" else f"not run ({why})"])
    last = (gen or {}).get("snapshots", {}).get(str((gen or {}).get("verdict", {}).get("last_step")), {})
    word, why = agreement(GENERATE, trains, evals, gen)
    rows.append([f"{GENERATE} ({fmt((gen or {}).get('steps'))} steps)",
                 (gen or {}).get("verdict", {}).get("verdict", "not run"), None, None, None, last.get("fld"), None,
                 f"{fmt(last.get('fld_floor'), 3)} / {fmt(last.get('fld_ceiling'), 3)}",
                 f"{fmt(last.get('class_entropy'), 3)} / —", f"{fmt(last.get('recognisable'), 3)} / —",
                 f"{fmt(last.get('modes_covered'), 3)} / —",
                 f"{word}: {why}" if word != "not run" else f"not run ({why})"])
    doc.table(header, rows, table_id="summary")
    doc.para("fld: Frechet distance in the judge's 84-d features between samples and the test digits (lower is "
             "better); floor = the judge's train digits vs test digits, ceiling = uniform noise vs test digits, "
             "both with the same number of samples. Class entropy is the judge's class histogram's entropy, "
             "recognisable the fraction of samples the judge classifies confidently (see ebm.quality). For the "
             "generation row the numbers are those of its last snapshot.")
    doc.heading(3, "Rules of \"agrees with the seed?\"")
    doc.table(["experiment", "agrees when"], [[k, v] for k, v in AGREEMENT_RULES.items()])


def experiment_section(doc, index, name, params, trains, evals, gen):
    title, claim = SEED[name]
    doc.heading(2, title, anchor=name)
    doc.para(f"The seed says: {claim}", quote=True)
    word, why = agreement(name, trains, evals, gen)
    doc.para(f"Agrees with the seed? {word}: {why}. Rule: {AGREEMENT_RULES[name]}.")

    cfg = experiment_config(params, name)
    previous = params["train"] if index == 0 else experiment_config(params, EXPERIMENTS[index - 1])
    doc.heading(3, "Config change from " + ("the shared recipe (train)" if index == 0 else EXPERIMENTS[index - 1]),
                anchor=f"{name}-config")
    doc.pre(config_diff(previous, cfg) or ["(no change)"])

    doc.heading(3, "Training", anchor=f"{name}-training")
    train = trains.get(name)
    if train is None:
        doc.para(f"not run: metrics/train/{name}.json is missing.")
    else:
        doc.table(["status", "error", "epochs done", "iterations", "wall time (s)", "device"],
                  [[train.get("status"), train.get("error") or "—", f"{train.get('epochs_done')} / {cfg['epochs']}",
                    train.get("iterations"), train.get("wall_time_s"), train.get("device")]])
        doc.table(["term", "final", "last 10%"],
                  [[label, train.get(f"final_{k}"), train.get(f"last10pct_{k}")] for k, label in TERMS])
        frame = read_csv(f"plots/train/{name}.csv")
        if frame is not None and len(frame):
            doc.image(curves_figure(name, frame), f"{name}: loss and energy curves")
        else:
            doc.para("no curve: the run logged no iterations.")
        grids = sorted(Path(f"plots/samples/{name}").glob("samples_epoch_*.png"))
        if grids:
            doc.image(grids[-1], f"{name}: the last training sample grid")

    doc.heading(3, "Evaluation", anchor=f"{name}-evaluation")
    record = evals.get(name)
    if record is None:
        doc.para(f"not run: metrics/eval/{name}.json is missing.")
        return
    if evaluation(evals, name, "fresh") is None and evaluation(evals, name, "buffer") is None:
        doc.para(f"status {record.get('status')}: no model to evaluate (training status {record.get('train_status')}).")
        return
    doc.table(["metric", "fresh", "buffer"],
              [[k, (record.get("fresh") or {}).get(k), (record.get("buffer") or {}).get(k)]
               for k in QUALITY_KEYS + ["energy"]])
    if record.get("test_energy") is not None:
        doc.para(f"Mean energy of the test digits: {fmt(record['test_energy'])}.")
    doc.para(f"{fmt(record.get('num_samples'))} samples per protocol; fresh chains run "
             f"{fmt(record.get('fresh_steps'))} Langevin steps from noise, buffer samples come from the trained replay buffer.")
    classes = read_csv(f"plots/eval/{name}_classes.csv")
    if classes is not None and "class" in classes and classes.drop(columns="class").notna().any().any():
        doc.image(classes_figure(name, classes), f"{name}: classes the judge sees")
    for grid in sorted(Path(f"plots/eval/{name}").glob("*.png")):
        doc.image(grid, f"{name}: evaluation samples ({grid.stem})")


def generation_section(doc, gen):
    title, claim = SEED[GENERATE]
    doc.heading(2, title, anchor=GENERATE)
    doc.para(f"The seed says: {claim}", quote=True)
    if gen is None:
        doc.para("not run: metrics/generate.json is missing.")
        return
    verdict = read_json("plots/generate/verdict.json") or gen.get("verdict", {})   # the full one: rules, summary
    doc.para(f"Verdict: {verdict.get('summary', 'missing')}")
    doc.para(f"{fmt(gen.get('batch_size'))} chains from {gen.get('init')}, {fmt(gen.get('steps'))} steps on "
             f"{gen.get('device')} in {fmt(gen.get('wall_time_s'))} s "
             f"({fmt(gen.get('langevin_img_steps_per_s'))} image-steps/s).")
    grid = Path(f"plots/generate/hq_samples_k{gen.get('steps')}.png")
    if grid.is_file():
        doc.image(grid, f"the final grid after {fmt(gen.get('steps'))} steps")
    if Path("plots/generate/chain_snapshots.png").is_file():
        doc.image("plots/generate/chain_snapshots.png", "chains (rows) at the snapshot steps (columns)")
    snaps = gen.get("snapshots", {})
    energy = read_csv("plots/generate/energy.csv")
    if energy is not None and len(energy):
        doc.image(energy_figure(energy, [int(s) for s in snaps]), "energy of the chains over the steps")
    doc.heading(3, "Metrics over the steps", anchor="generation-metrics")
    keys = ["fld", "fld_floor", "fld_ceiling", "class_entropy", "confidence", "recognisable", "modes_covered",
            "white", "saturated", "energy_mean"]
    doc.table(["step", *keys], [[int(s), *[snaps[s].get(k) for k in keys]] for s in sorted(snaps, key=int)])
    doc.para(f"white / saturated: fraction of pixels at +1 / at +-1; the test digits have "
             f"{fmt(gen.get('test_digits_white'), 3)} at +1.")
    counts = read_csv("plots/generate/class_counts.csv")
    if counts is not None and len(counts):
        doc.heading(3, "The judge's classes over the steps", anchor="generation-classes")
        doc.table(list(counts.columns), counts.values.tolist())
    doc.heading(3, "The verdict's checks", anchor="generation-checks")
    doc.table(["check", "value", "rule", "fired"],
              [[k, c.get("value"), c.get("rule"), c.get("fired")] for k, c in verdict.get("checks", {}).items()])


def provenance_section(doc, params, trains, evals, gen):
    import torch

    doc.heading(2, "Provenance")
    data, judge = read_json("metrics/data.json"), read_json("metrics/judge.json")
    rows = [["scale (params.yaml)", params["scale"]]]
    if data:
        rows += [["data source", f"{data.get('source')} (asked: {data.get('requested_source')})"
                  + (f"; fell back: {data['fallback_reason']}" if data.get("fallback_reason") else "")],
                 ["train / test digits", f"{fmt(data.get('train_size'))} / {fmt(data.get('test_size'))}"],
                 ["data content hash", str(data.get("content_hash", ""))[:16]]]
    else:
        rows.append(["data", "not run (metrics/data.json is missing)"])
    rows.append(["judge test accuracy", fmt(judge.get("test_accuracy")) if judge else "not run"])
    rows += [["torch / python (report stage)", f"{torch.__version__} / {platform.python_version()}"]]
    doc.table(["what", "value"], rows)
    stages = [(f"train@{n}", trains.get(n)) for n in EXPERIMENTS] + [("judge", judge)]
    stages += [(f"evaluate@{n}", evals.get(n)) for n in EXPERIMENTS] + [("generate", gen)]
    doc.table(["stage", "wall time (s)", "device"],
              [[s, (m or {}).get("wall_time_s", "not run" if m is None else None), (m or {}).get("device")]
               for s, m in stages])


def main():
    params = load_params(sections=["train", "experiments"])
    EXPERIMENTS[:] = params["experiments"]
    trains = {n: read_json(f"metrics/train/{n}.json") for n in EXPERIMENTS}
    evals = {n: read_json(f"metrics/eval/{n}.json") for n in EXPERIMENTS}
    trains, evals = {k: v for k, v in trains.items() if v}, {k: v for k, v in evals.items() if v}
    gen = read_json("metrics/generate.json")
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("fig_*.png"):
        old.unlink()

    doc = Doc("Training an energy-based model on MNIST: the journey, reproduced")
    doc.para(f"Scale: {params['scale']}. Every number, curve and picture below comes from this pipeline's own "
             f"outputs (metrics/, plots/); \"not run\" marks a stage whose output is missing. The seed's words are "
             f"quoted as its claims; whether each agrees is computed by the rules listed under the summary.")
    summary_section(doc, trains, evals, gen)
    for index, name in enumerate(EXPERIMENTS):
        experiment_section(doc, index, name, params, trains, evals, gen)
    generation_section(doc, gen)
    provenance_section(doc, params, trains, evals, gen)
    page, markdown = doc.render()
    write_text(OUT / "index.html", page)
    write_text(OUT / "index.md", markdown)
    print(f"report: {OUT / 'index.html'} ({len(page) / 1e6:.1f} MB) and {OUT / 'index.md'}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
