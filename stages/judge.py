"""Train the judges: LeNet-5 classifiers on the data stage's train split, read together.

    python stages/judge.py          # what `dvc repro judge` runs, from the repository root

Reads `judge` from params.yaml and the calibration part of labels/ (samples a person read);
writes checkpoints/judge/judge.pt and metrics/judge.json:
its test accuracy (how far to trust its verdicts); as a yardstick for the evaluation, what
real train digits score against the test split at N = the test split's size (`real`:
density, coverage, recognisable, typical, ...; see ebm.quality) and the noise ceiling; and
`controls`: every figure the verdicts read, on sets whose answer a person knows
(ebm.controls), with `meets` saying whether each gives its known answer.
"""

import time

from ebm import paths
from ebm.controls import EXPECTED, control_sets, meets
from ebm.data import load_digits, to_unit_range
from ebm.io import rounded, write_json
from ebm.judge import accuracy, save_judge, train_judges
from ebm.labels import judge_examples
from ebm.params import load_params
from ebm.quality import real_line, reference, score
from ebm.runtime import pick_device
from ebm.stage import run_stage

CHECKPOINT, METRICS = paths.JUDGE, paths.JUDGE_RECORD
LABELS = paths.LABELS  # samples a person read; the judge trains on their calibration part
CONTROL_FIGURES = (
    "recognisable",
    "typical",
    "top2_share",
    "recognised_entropy",
    "noise_share",
    "blob_share",
    "density",
    "coverage",
)


def control_table(judge, digits, ref, seed):
    """control -> every figure the verdicts read, and whether each expected answer holds."""
    table = {}
    for name, images in control_sets(
        digits["x_test"], digits["y_test"], n=ref.n, seed=seed
    ).items():
        figures = score(judge, images, ref)
        row = rounded({k: figures[k] for k in CONTROL_FIGURES})
        row["meets"] = all(meets(figures[k], rule) for k, rule in EXPECTED[name].items())
        table[name] = row
    return table


def main():
    params = load_params(sections=["judge"])
    cfg, device = params.judge, pick_device(params.device)
    digits = load_digits()
    x_train, x_test = to_unit_range(digits["x_train"]), to_unit_range(digits["x_test"])

    started = time.perf_counter()
    judge = train_judges(
        x_train,
        digits["y_train"],
        cfg.seed,
        cfg.members,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        device=device,
        max_shift=cfg.max_shift,
        non_digit_ratio=cfg.non_digits,
        read_by_eye=judge_examples(LABELS) if cfg.read_by_eye else None,
        read_by_eye_per_batch=cfg.read_by_eye,
    )
    wall_time_s = time.perf_counter() - started
    save_judge(CHECKPOINT, judge)

    ref = reference(judge, digits, len(x_test), cfg.seed)
    metrics = {
        "test_accuracy": round(accuracy(judge, x_test, digits["y_test"]), 4),
        "train_accuracy": round(accuracy(judge, x_train, digits["y_train"]), 4),
        "train_size": len(x_train),
        "test_size": len(x_test),
        "epochs": cfg.epochs,
        "wall_time_s": round(wall_time_s, 2),
        "device": str(device),
        "real": rounded(real_line(ref)),
        "controls": control_table(judge, digits, ref, cfg.seed + 1),
    }
    write_json(METRICS, metrics)
    missed = [name for name, row in metrics["controls"].items() if not row["meets"]]
    print(
        f"judge: test accuracy {metrics['test_accuracy']:.4f} on {len(x_test)} digits "
        f"({cfg.epochs} epochs, {wall_time_s:.1f} s) -> {CHECKPOINT}; controls "
        + (
            f"missing their known answers: {', '.join(missed)}"
            if missed
            else "all give their known answers"
        )
    )


if __name__ == "__main__":
    run_stage(main)
