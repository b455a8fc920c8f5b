"""The report's section on other training seeds: this run's verdicts beside theirs."""

import pandas as pd

from ebm import paths


def seeds_section(doc, line, seed):
    """This run's verdicts beside those of other training seeds, and on how many each holds."""
    doc.heading(2, "The journey on other training seeds", anchor="other-runs")
    others = pd.read_csv(paths.SEEDS, dtype=str) if paths.SEEDS.is_file() else None
    if others is not None:
        others = others[(others["run"] != "workspace") & (others["train_seed"] != str(seed))]
    if others is None or others.empty:
        doc.para(f"No other training seed's verdicts ({paths.SEEDS} is missing).")
        return
    steps = [key.split("_", 1)[1] for key in line]
    rows = []
    for key, step in zip(line, steps):
        theirs = others[step].fillna("not run") if step in others else ["not run"] * len(others)
        words = [line[key]["verdict"], *theirs]
        rows.append([step, *words, f"{sum(w == 'agrees' for w in words)} of {len(words)}"])
    seeds = [f"train.seed {s}" for s in others["train_seed"]]
    doc.table(["step", f"this run (train.seed {seed})", *seeds, "agrees on"], rows)
    doc.para(
        f"The other training seeds are DVC experiments of this pipeline with only `train.seed` "
        f"changed (`dvc exp run --queue -S train.seed=N`), their verdicts collected into "
        f"{paths.SEEDS} by `python tools/seed_table.py --verdicts {paths.SEEDS} workspace "
        f"<experiments>` (docs/experiments.md); they are not part of `dvc repro`. Each was "
        f"judged by the judge and shape tests of the commit it ran at, which may be older than "
        f"this run's: a seed's verdict can move when they change, as this run's did."
    )
