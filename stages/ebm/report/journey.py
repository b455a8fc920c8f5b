"""The report's first part: the journey's cards, the summary, the controls, one section per step."""

import re

from ebm import paths
from ebm.claims import CLAIMS, RULES
from ebm.labels import reading_of_grid
from ebm.report.outputs import config_diff, fmt, read_csv
from ebm.verdicts import (
    AGREES,
    DISAGREES,
    GENERATE,
    JOURNEY_SCALE,
    LONG_RUN,
    NOT_AT_SCALE,
    agreement,
    classes_named,
)

GENERATED_COLUMNS = [
    "recognisable",
    "recognised_entropy",
    "top2_share",
    "noise_share",
    "blob_share",
    "energy",
]
# The curves are dvc.yaml's plots, drawn by `dvc plots show` with every step overlaid: the report
# names them beside the figures it tabulates and draws none itself.
CURVES = "`dvc plots show` draws {what} for every step, overlaid ({where})"
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


TERMS = [
    ("loss", "loss"),
    ("e_pos", "E_pos"),
    ("e_neg", "E_neg"),
    ("cd", "CD"),
    ("reg", "reg"),
    ("r1", "R1"),
]


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
        grid = paths.generate_plots(model) / f"hq_samples_k{gen.get('steps')}.png"
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
    frame = read_csv(paths.curve(name))
    if frame is not None and len(frame):
        doc.para(
            "Curves: "
            + CURVES.format(
                what="the loss, both energies, the regulariser, R1, the gradient norm and the "
                "learning rate",
                where=paths.curve(name),
            )
            + "."
        )
    else:
        doc.para("no curve: the run logged no iterations.")
    negatives = run.negatives(name)
    if negatives is not None:
        last, real = negatives.iloc[-1], (run.judge or {}).get("real") or {}
        # The judge's real line is scored at its own N (the test split's size), which need not be
        # the number of negatives tracked; coverage grows with N, so the N is named rather than
        # implied.
        doc.para(
            f"At the last epoch ({int(last['epoch'])}): class entropy "
            f"{fmt(float(last['class_entropy']), 3)}, coverage {fmt(float(last['coverage']), 3)}, "
            f"modes covered {int(last['modes_covered'])}; real digits (the judge's line, N = "
            f"{fmt(real.get('n'))}): {fmt(real.get('class_entropy'), 3)}, "
            f"{fmt(real.get('coverage'), 3)}, {fmt(real.get('modes_covered'))}. "
            + CURVES.format(
                what="the negatives' class entropy and coverage per epoch",
                where=paths.negatives(name),
            )
            + "."
        )
    generated = run.generated(name)
    if generated is not None:
        doc.heading(3, "Generated samples during training", anchor=f"{name}-generated")
        doc.para(
            CURVES.format(
                what="the figures below (recognisable, the top-2 share, the blob share)",
                where=paths.generated(name),
            )
            + "."
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
    classes = read_csv(paths.eval_classes(name))
    if (
        classes is not None
        and "class" in classes
        and classes.drop(columns="class").notna().any().any()
    ):
        doc.table(
            ["class", *[c for c in classes.columns if c != "class"]],
            [
                [int(r["class"]), *[fmt(r[c], 3) for c in classes.columns if c != "class"]]
                for r in classes.to_dict("records")
            ],
        )
        doc.para(
            f"The classes the judge sees (share of samples, coverage per class): "
            f"{paths.eval_classes(name)}, which `dvc plots show` draws as bars."
        )
    for grid in sorted(paths.eval_grids(name).glob("*.png")):
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

    experiments = run.params.experiments
    if name == LONG_RUN:
        base_name = run.experiments[-1]
        doc.heading(3, f"Config change from {base_name}", anchor=f"{name}-config")
        if run.long_run_cfg is None:
            doc.para("params.yaml has no long_run section.")
        else:
            base = experiments[base_name]
            doc.pre(config_diff(base, run.long_run_cfg) or ["(no change)"])
        epochs = run.long_run_cfg.epochs if run.long_run_cfg else None
    else:
        cfg = experiments[name]
        previous = run.params.train if index == 0 else experiments[run.experiments[index - 1]]
        doc.heading(
            3,
            "Config change from "
            + ("the shared recipe (train)" if index == 0 else run.experiments[index - 1]),
            anchor=f"{name}-config",
        )
        doc.pre(config_diff(previous, cfg) or ["(no change)"])
        epochs = cfg.epochs
    training_block(doc, run, name, epochs)
    if name == LONG_RUN:
        doc.para(
            "The long run has no evaluation stage: its training negatives are above, and its long "
            "chains are judged in its generation section."
        )
    else:
        evaluation_block(doc, run, name)
