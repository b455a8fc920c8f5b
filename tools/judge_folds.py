"""Choose the judges with each calibration run's eye labels left out in turn.

    python tools/judge_folds.py     # about 10 minutes on 2 cores; needs data/ (`dvc repro data`)

For each fold, the judges train as the judge stage trains them (params.yaml `judge`) but on the
labelled tiles of one calibration run only, and are scored on the other run's tiles: per tile
(read vs not read), per grid (grids whose read, noise and blob shares all lie within 0.1 of the
person's; the worst gap), and on real test digits (the share read of the first 500 and of all).
One row per number of judges and threshold; docs/labelling.md quotes the table and the rule that
chose from it.
"""

import ebm.quality
from ebm.data import load_digits, to_unit_range
from ebm.judge import Judges, train_judges
from ebm.labels import GRID_SHARE_TOLERANCE, agreement, figures_of, judge_examples, load_labelled
from ebm.params import load_params
from ebm.quality import embed

MEMBERS = (1, 2, 3)
THRESHOLDS = (0.7, 0.8, 0.9)


def fold_judges(digits, cfg, train_runs):
    """The first max(MEMBERS) judges trained on the labelled tiles of `train_runs`."""
    return train_judges(
        to_unit_range(digits["x_train"]),
        digits["y_train"],
        cfg.seed,
        max(MEMBERS),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        max_shift=cfg.max_shift,
        non_digit_ratio=cfg.non_digits,
        read_by_eye=judge_examples(runs=train_runs),
        read_by_eye_per_batch=cfg.read_by_eye,
    ).members


def main():
    cfg = load_params(sections=["judge"]).judge
    digits = load_digits()
    real = to_unit_range(digits["x_test"])
    tiles, labels = load_labelled(parts=("calibration",))
    runs = list(dict.fromkeys(labels["run"]))
    judged = {run: fold_judges(digits, cfg, [r for r in runs if r != run]) for run in runs}

    print("| judges | sure at | real read 500; all | per tile | grids within 0.1 | worst gap |")
    print("|---|---|---|---|---|---|")
    for members in MEMBERS:
        for threshold in THRESHOLDS:
            ebm.quality.RECOGNISABLE = threshold  # figures_of and kinds read it when called
            cells = {key: [] for key in ("real", "tile", "grids", "gap")}
            for run, members_of_fold in judged.items():
                judges = Judges(members_of_fold[:members]).eval()
                read_real = embed(judges, real)[1].max(1) >= threshold
                cells["real"].append(f"{read_real[:500].mean():.3f}; {read_real.mean():.3f}")
                keep = (labels["run"] == run).to_numpy()
                per_grid, per_tile = agreement(labels[keep], figures_of(judges, tiles[keep]))
                cells["tile"].append(f"{per_tile['read_agreement']:.3f}")
                within = (per_grid["worst_gap"] <= GRID_SHARE_TOLERANCE + 1e-9).sum()
                cells["grids"].append(f"{within}/{len(per_grid)}")
                cells["gap"].append(f"{per_grid['worst_gap'].max():.2f}")
            print(
                f"| {members} | {threshold} | "
                + " | ".join(" / ".join(v) for v in cells.values())
                + " |"
            )
    print(f"\nfolds (scored run / trained on the others): {' / '.join(runs)}")


if __name__ == "__main__":
    main()
