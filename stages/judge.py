"""Train the judge: a LeNet-5 classifier on the data stage's train split.

    python stages/judge.py          # what `dvc repro judge` runs, from the repository root

Reads `judge` from params.yaml; writes checkpoints/judge/judge.pt and metrics/judge.json:
its test accuracy (how far to trust its verdicts) and, as a yardstick for the evaluation,
the scores of the real test digits themselves (confidence, recognisable) and the Frechet
floor (train digits) and ceiling (noise) at N = the test split's size.
"""
import time

from ebm.data import load_digits, to_unit_range
from ebm.io import write_json
from ebm.judge import accuracy, save_judge, train_judge
from ebm.params import load_params
from ebm.quality import class_metrics, embed, references
from ebm.runtime import pick_device
from ebm.stage import run_stage

CHECKPOINT = "checkpoints/judge/judge.pt"
METRICS = "metrics/judge.json"


def main():
    params = load_params(sections=["judge"])
    cfg, device = params["judge"], pick_device(params["device"])
    digits = load_digits()
    x_train, x_test = to_unit_range(digits["x_train"]), to_unit_range(digits["x_test"])

    started = time.perf_counter()
    judge = train_judge(x_train, digits["y_train"], cfg["seed"], cfg["epochs"], cfg["batch_size"], cfg["lr"], device)
    wall_time_s = time.perf_counter() - started
    save_judge(CHECKPOINT, judge)

    real = class_metrics(embed(judge, x_test)[1])
    refs = references(judge, digits, len(x_test), cfg["seed"])
    metrics = {
        "test_accuracy": round(accuracy(judge, x_test, digits["y_test"]), 4),
        "train_accuracy": round(accuracy(judge, x_train, digits["y_train"]), 4),
        "train_size": len(x_train), "test_size": len(x_test), "epochs": cfg["epochs"],
        "wall_time_s": round(wall_time_s, 2), "device": str(device),
        "test_confidence": round(real["confidence"], 4), "test_recognisable": round(real["recognisable"], 4),
        "reference_n": refs["n"], "fld_floor": round(refs["floor"], 4), "fld_ceiling": round(refs["ceiling"], 4),
    }
    write_json(METRICS, metrics)
    print(f"judge: test accuracy {metrics['test_accuracy']:.4f} on {len(x_test)} digits "
          f"({cfg['epochs']} epochs, {wall_time_s:.1f} s) -> {CHECKPOINT}")


if __name__ == "__main__":
    run_stage(main)
