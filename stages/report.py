"""Report: the whole journey on one page, from the pipeline's own outputs only.

    python stages/report.py          # what `dvc repro report` runs, from the repository root

Writes report/index.html (self-contained: every image is embedded as a data URI, so the
file opens from disk anywhere) and report/index.md (its Markdown twin, whose images point
at the PNG files by relative path). It draws no curve of its own: the curves are dvc.yaml's
plots, which `dvc plots show` draws with every step overlaid, and the report names them.

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
journey's (EBM-MNIST-Journey's) words quoted per step: its claims, not results. This script
only assembles the page: ebm/report/ reads the outputs, draws the figures and writes the prose.
"""

import sys

from ebm import paths
from ebm.io import write_json, write_text
from ebm.report.journey import experiment_section, journey_cards, summary_section
from ebm.report.outputs import Run
from ebm.report.page import OUT, Doc
from ebm.report.results import (
    abilities_headline,
    controls_section,
    abilities_section,
    generation_section,
    provenance_section,
)
from ebm.report.seeds import seeds_section
from ebm.stage import run_stage
from ebm.verdicts import headline

HEADLINE = paths.HEADLINE


def main():
    run = Run()
    OUT.mkdir(parents=True, exist_ok=True)

    doc = Doc("Training an energy-based model on MNIST: the journey, reproduced")
    doc.para(
        f"EBM-MNIST-Journey, the original journey, trains an energy-based model on MNIST in five "
        f"experiments and then draws digits with a 20,000-step chain. This page reproduces it at "
        f"scale {run.scale}: every number and picture comes from this pipeline's own "
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
    line = headline(run, run.steps(), run.models)
    seeds_section(doc, line, run.params.train.seed)
    provenance_section(doc, run)
    page, markdown = doc.render()
    abilities = abilities_headline(run.params.abilities.models)
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
