"""The pipeline's outputs as the report reads them: a missing file is None, and a stage that
has not run shows as "not run"."""

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import yaml

from ebm import paths
from ebm.judge import load_judge
from ebm.labels import load_labelled
from ebm.params import load_params
from ebm.verdicts import LONG_RUN
from ebm.verdicts import fmt as verdicts_fmt

JUDGE = paths.JUDGE


LABELS = paths.LABELS


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
    a, b = flatten(asdict(old)), flatten(asdict(new))
    return [
        f"{k}: {fmt(a.get(k))} -> {fmt(b.get(k))}"
        for k in list(a) + [k for k in b if k not in a]
        if a.get(k) != b.get(k)
    ]


class Run:
    """Everything the report reads, in one place."""

    def __init__(self):
        self.params = load_params(sections=["train", "experiments", "generate", "abilities"])
        self.scale = self.params.scale
        self.experiments = list(self.params.experiments)  # YAML order
        self.models = list(self.params.generate.chains)  # generated models, in order
        self.long_run_cfg = self._long_run_params()
        self.trains = {n: read_json(paths.train_record(n)) for n in self.experiments + [LONG_RUN]}
        self.evals = {n: read_json(paths.eval_record(n)) for n in self.experiments}
        self.gens = {m: read_json(paths.generate_record(m)) for m in self.models}
        self.judge = read_json(paths.JUDGE_RECORD)
        self.data = read_json(paths.DIGITS_RECORD)
        self.has_long_run = self.long_run_cfg is not None or self.trains[LONG_RUN] is not None
        # the committed run's grids read by eye, and the judge to score the same tiles beside them
        labelled = Path(LABELS) / "committed" / "labels.csv"
        self.eye = (
            (load_labelled(LABELS, parts=("committed",)), load_judge(JUDGE))
            if labelled.is_file() and Path(JUDGE).is_file()
            else None
        )

    def _long_run_params(self):
        """The long run's config (ebm.config.LongRun), or None when params.yaml has none."""
        raw = yaml.safe_load(Path("params.yaml").read_text()) or {}
        return load_params(sections=[LONG_RUN]).long_run if LONG_RUN in raw else None

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
        frame = read_csv(paths.negatives(name))
        return frame if frame is not None and len(frame) else None

    def generated(self, name):
        """The generated samples' figures at every sample epoch (plots/generated/<name>.csv)."""
        frame = read_csv(paths.generated(name))
        return frame if frame is not None and len(frame) else None

    def last_grid(self, name, kind="samples"):
        """The last grid of training negatives (kind "samples") or of generated samples
        ("generated")."""
        grids = sorted(paths.samples(name).glob(f"{kind}_epoch_*.png"))
        return grids[-1] if grids else None

    def final_model(self):
        return self.models[-1] if self.models else None


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
