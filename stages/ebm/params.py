"""Read params.yaml in one place: resolve the scale, validate every value, fail early.

A stage calls `load_params()` (or `experiment_config(params, name)`) before doing any
work, so a typo costs a second, not an hour of training. Each error names the key path,
the value and what is allowed.
"""
import copy
from pathlib import Path

import yaml

SCALES = ("cpu", "seed")
EXPERIMENTS = ("initial_attempt", "loss_collapse", "blob_collapse", "mode_collapse", "final_training")


class ParamsError(ValueError):
    """A wrong, missing or unknown value in params.yaml."""


# ---- field specs ---------------------------------------------------------------------
# A spec is a dict key -> Field, or key -> nested spec dict.

class Field:
    def __init__(self, kind, lo=None, hi=None, choices=None, optional=False, lo_open=False):
        self.kind, self.lo, self.hi, self.choices = kind, lo, hi, choices
        self.optional, self.lo_open = optional, lo_open

    def describe(self):
        if self.choices:
            return "one of " + " | ".join(map(str, self.choices))
        what = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                "ints": "a list of integers", "counts": "a mapping of names to integers"}[self.kind]
        if self.lo is not None or self.hi is not None:
            left = "(" if self.lo_open else "["
            what += f" in {left}{self.lo if self.lo is not None else '-inf'}, " \
                    f"{self.hi if self.hi is not None else 'inf'}]"
        return what + (" or null" if self.optional else "")

    def check(self, value, path):
        if value is None and self.optional:
            return None
        ok_type = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            "ints": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "counts": isinstance(value, dict) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in value.values()),
        }[self.kind]
        if not ok_type or (self.choices and value not in self.choices) or value != value:   # NaN: no range holds it
            raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
        for v in (value if self.kind == "ints" else value.values() if self.kind == "counts" else [value]):
            if isinstance(v, str):
                continue
            too_low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
            too_high = self.hi is not None and v > self.hi
            if too_low or too_high:
                raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
        return float(value) if self.kind is float else value


def positive_int(optional=False):
    return Field(int, lo=1, optional=optional)


def fraction():
    return Field(float, lo=0.0, hi=1.0)


def non_negative():
    return Field(float, lo=0.0)


def positive():
    return Field(float, lo=0.0, lo_open=True)


DATA = {
    "source": Field(str, choices=("auto", "torchvision", "bundled")),
    "download_timeout_s": positive(),
    "test_fraction": Field(float, lo=0.0, hi=1.0, lo_open=True),
    "split_seed": Field(int, lo=0),
}

TRAIN = {
    "seed": Field(int, lo=0),
    "model": {"width": positive_int()},
    "sampler": {
        "steps": positive_int(),                 # K, Langevin steps per training iteration
        "step_size": positive(),
        "noise_std": non_negative(),
        "grad_clamp": positive(),
        "no_grad_bug": Field(bool),              # experiment 1's bug: sample under torch.no_grad()
        "precision": Field(str, choices=("fp32", "bf16")),
        "compile": Field(bool),
    },
    "buffer": {
        "capacity": positive_int(),
        "restart_prob": fraction(),
        "initial_fill": positive_int(),
    },
    "loss": {
        "alpha": non_negative(),
        "r1_weight": non_negative(),
        "data_noise_std": non_negative(),
    },
    "optim": {
        "lr": positive(),
        "beta1": Field(float, lo=0.0, hi=1.0),
        "beta2": Field(float, lo=0.0, hi=1.0),
        "lr_decay": Field(float, lo=0.0, hi=1.0, lo_open=True),   # StepLR gamma per epoch
        "grad_clip": positive(),
    },
    "batch_size": positive_int(),
    "epochs": positive_int(),
    "sample_epochs": Field("ints", lo=1),
    "grid_size": positive_int(),
    "log_every": positive_int(),
    "expected_error": Field(str, optional=True),
    "max_abs_energy": positive(),
    "train_subset": Field(int, lo=0),
}

JUDGE = {
    "seed": Field(int, lo=0),
    "epochs": positive_int(),
    "batch_size": positive_int(),
    "lr": positive(),
}

EVALUATE = {
    "seed": Field(int, lo=0),
    "num_samples": positive_int(),
    "fresh_steps": Field(int, lo=0),
    "batch_size": positive_int(),
}

GENERATE = {
    "seed": Field(int, lo=0),
    "steps": positive_int(),
    "chains": Field("counts", lo=1),
    "init": Field(str, choices=("noise", "buffer")),
    "step_size": positive(),
    "noise_std": non_negative(),
    "noise_std_final": non_negative(),
    "grad_clamp": positive(),
    "snapshots": Field("ints", lo=0),
    "show_chains": positive_int(),
}

SCHEMA = {
    "scale": Field(str, choices=SCALES),
    "device": Field(str, choices=("auto", "cuda", "cpu")),
    "data": DATA,
    "train": TRAIN,
    "experiments": {name: "experiment" for name in EXPERIMENTS},
    "judge": JUDGE,
    "evaluate": EVALUATE,
    "generate": GENERATE,
}


# ---- resolution and validation -------------------------------------------------------

def deep_merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_scale(tree, scale, path=""):
    """Fold every `at_scale: {cpu: ..., seed: ...}` block into its section for `scale`."""
    if not isinstance(tree, dict):
        return tree
    tree = dict(tree)
    overrides = tree.pop("at_scale", None) or {}
    if not isinstance(overrides, dict) or set(overrides) - set(SCALES) or \
            any(not isinstance(v, dict) for v in overrides.values() if v is not None):
        raise ParamsError(f"params.yaml: {path}at_scale = {overrides!r}: must map {' | '.join(SCALES)} to overrides")
    resolved = {k: resolve_scale(v, scale, f"{path}{k}.") for k, v in tree.items()}
    chosen = overrides.get(scale)
    return deep_merge(resolved, resolve_scale(chosen, scale, path)) if chosen else resolved


def validate(tree, spec, path="", partial=False):
    if not isinstance(tree, dict):
        raise ParamsError(f"params.yaml: {path.rstrip('.') or 'top level'} = {tree!r}: must be a mapping")
    unknown = set(tree) - set(spec)
    if unknown:
        key = sorted(unknown)[0]
        raise ParamsError(f"params.yaml: unknown key {path}{key} (allowed here: {', '.join(spec)})")
    out = {}
    for key, sub in spec.items():
        if key not in tree:
            if partial:
                continue
            raise ParamsError(f"params.yaml: missing key {path}{key}")
        if isinstance(sub, dict):
            out[key] = validate(tree[key], sub, f"{path}{key}.", partial)
        elif isinstance(sub, Field):
            out[key] = sub.check(tree[key], f"{path}{key}")
        else:
            out[key] = tree[key]
    return out


def load_params(path="params.yaml", sections=None, scale=None):
    """Load, scale-resolve and validate params.yaml (only `sections`, when given, plus the basics).

    scale: resolve at this scale instead of the file's own `scale` (a tool that looks at the
    other scale, such as the benchmark's seed-scale projection); stages leave it to the file.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    file_scale = SCHEMA["scale"].check(raw.get("scale"), "scale")
    if scale is None:
        scale = file_scale
    elif scale not in SCALES:
        raise ParamsError(f"load_params(scale={scale!r}): must be one of {' | '.join(SCALES)}")
    params = _resolve_and_validate(raw, scale, sections)
    for other in SCALES:   # a bad value only the other scale uses fails now, not after switching scale
        if other != scale:
            try:
                _resolve_and_validate(raw, other, sections)
            except ParamsError as err:
                raise ParamsError(f"{err} (with scale: {other})") from None
    return params


def _resolve_and_validate(raw, scale, sections):
    resolved = resolve_scale(raw, scale)
    for key in resolved:
        if key not in SCHEMA:
            raise ParamsError(f"params.yaml: unknown section {key} (allowed: {', '.join(SCHEMA)})")
    wanted = sections if sections is not None else [k for k in resolved]
    params = {"scale": scale, "device": SCHEMA["device"].check(resolved.get("device"), "device")}
    for section in wanted:
        if section in ("scale", "device"):
            continue
        if section not in resolved:
            raise ParamsError(f"params.yaml: missing section {section}")
        spec = SCHEMA[section]
        if section == "experiments":
            params[section] = _validate_experiments(resolved[section], resolved)
        else:
            params[section] = validate(resolved[section], spec, f"{section}.")
    return params


def _validate_experiments(experiments, resolved):
    if not isinstance(experiments, dict):
        raise ParamsError("params.yaml: experiments must be a mapping of experiment name to overrides")
    validate(experiments, {name: None for name in EXPERIMENTS}, "experiments.", partial=True)
    train = validate(resolved.get("train"), TRAIN, "train.")
    out = {}
    for name, overrides in experiments.items():
        overrides = overrides or {}
        validate(overrides, TRAIN, f"experiments.{name}.", partial=True)
        out[name] = validate(deep_merge(train, overrides), TRAIN, f"experiments.{name}.")
    return out


def experiment_config(params, name):
    """The complete, validated config of one experiment: `train` with its overrides."""
    if name not in EXPERIMENTS:
        raise ParamsError(f"unknown experiment {name!r}: must be one of {', '.join(EXPERIMENTS)}")
    if name not in params["experiments"]:
        raise ParamsError(f"params.yaml: missing key experiments.{name}")
    return params["experiments"][name]
