"""Where the stages read and write: the one place the code names a pipeline path.

dvc.yaml declares the same paths as each stage's deps and outs (DVC must know them before a
stage runs); tests/test_dvc_yaml.py checks that every output here is declared there. A path of
one experiment or model is a function of its name: `curve("final_training")`.
"""

from pathlib import Path

PARAMS_OK = Path("checks/params.ok")  # check_params' token: every stage waits for it
DIGITS = Path("data/mnist.npz")
DIGITS_RECORD = Path("metrics/data.json")  # where the digits came from, their hash
FASHION = Path("data/fashion_mnist")  # torchvision's download, when abilities may fetch it
JUDGE = Path("checkpoints/judge/judge.pt")
JUDGE_RECORD = Path("metrics/judge.json")
LABELS = Path("labels")  # samples a person read (calibration, held_out, committed)
REPORT = Path("report")
HEADLINE = Path("metrics/headline.json")  # the one declared DVC metric: each step's verdict
SEEDS = Path("seeds/verdicts.csv")  # every step's verdict on other seeds (tools/seed_table.py)


def checkpoints(name):
    return Path("checkpoints") / name


def train_record(name):
    return Path("metrics/train") / f"{name}.json"


def curve(name):
    return Path("plots/train") / f"{name}.csv"


def negatives(name):
    return Path("plots/negatives") / f"{name}.csv"


def generated(name):
    return Path("plots/generated") / f"{name}.csv"


def samples(name):
    return Path("plots/samples") / name


def eval_record(name):
    return Path("metrics/eval") / f"{name}.json"


def eval_grids(name):
    return Path("plots/eval") / name


def eval_classes(name):
    return Path("plots/eval") / f"{name}_classes.csv"


def generate_record(model):
    return Path("metrics/generate") / f"{model}.json"


def generate_plots(model):
    return Path("plots/generate") / model


def abilities_record(model):
    return Path("metrics/abilities") / f"{model}.json"


def abilities_plots(model):
    return Path("plots/abilities") / model


# each stage's outputs as dvc.yaml declares them (`name`: its foreach key)
OUTPUTS = {
    "check_params": lambda name: [PARAMS_OK],
    "data": lambda name: [DIGITS, DIGITS_RECORD],
    "train": lambda name: [
        checkpoints(name),
        samples(name),
        curve(name),
        negatives(name),
        generated(name),
        train_record(name),
    ],
    "judge": lambda name: [JUDGE, JUDGE_RECORD],
    "evaluate": lambda name: [eval_grids(name), eval_classes(name), eval_record(name)],
    "generate": lambda name: [generate_plots(name), generate_record(name)],
    "abilities": lambda name: [abilities_plots(name), abilities_record(name)],
    "report": lambda name: [REPORT, HEADLINE],
}
