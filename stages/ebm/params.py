"""Read params.yaml in one place: pick the scale, validate every value, fail early.

A stage calls `load_params()` (or `experiment_config(params, name)`) before doing any
work, so a typo costs a second, not an hour of training. Each error names the key path,
the value and what is allowed, in one line.

A value that differs between the scales is written inline as a mapping of every scale to
its value, e.g. `epochs: {cpu: 15, seed: 100}`; `load_params` picks the entry of the
file's `scale`. Nothing else depends on the scale, so a key set with `dvc exp run -S`
always takes effect: `-S experiments.final_training.epochs=20` at both scales,
`-S experiments.final_training.epochs.cpu=20` at the CPU scale only.

The experiments are the keys of `experiments`, in the file's order (the journey's).

Numbers must be finite. A count of images held at once (buffer capacity, batch sizes,
samples, chains) must fit in this machine's total RAM at 28*28*4 bytes an image: total,
not available, so the verdict does not change with the load of other jobs. Cross-field
rules (RULES) run on each section, and on each experiment after `train` is merged in.
The checker is hand-built: pydantic models would need a per-scale pre-validator on every
leaf and a formatter to turn its multi-line errors into these one-line messages.
"""

import copy
import math
import os
from pathlib import Path

import yaml

from ebm.errors import ParamsError  # noqa: F401  (re-exported)

SCALES = ("cpu", "seed")
IMAGE_BYTES = 28 * 28 * 4  # one float32 digit: the unit of every size check below


# ---- field specs ---------------------------------------------------------------------
# A spec is a dict key -> Field, or key -> nested spec dict.


def physical_memory():
    """This machine's RAM in bytes: a count of images that needs more can never be held."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.1f} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1024


class Field:
    """One leaf: its type, range or choices; `images`: a count of 28x28 float32 images held at
    once."""

    def __init__(
        self, kind, lo=None, hi=None, choices=None, optional=False, lo_open=False, images=False
    ):
        self.kind, self.lo, self.hi, self.choices = kind, lo, hi, choices
        self.optional, self.lo_open, self.images = optional, lo_open, images

    def describe(self):
        if self.choices:
            return ("a list of " if self.kind == "names" else "one of ") + " | ".join(
                map(str, self.choices)
            )
        what = {
            int: "an integer",
            float: "a number",
            bool: "true or false",
            str: "a string",
            "ints": "a list of integers",
            "counts": "a mapping of names to integers",
            "switch": "true, false or auto",
            "names": "a non-empty list of names",
            "numbers": "a non-empty list of numbers",
        }[self.kind]
        if self.lo is not None or self.hi is not None:
            left = "(" if self.lo_open else "["
            what += (
                f" in {left}{self.lo if self.lo is not None else '-inf'}, "
                f"{str(self.hi) + ']' if self.hi is not None else 'inf)'}"
            )
        return what + (" or null" if self.optional else "")

    def at_scale(self, value, path, scale):
        """A mapping of every scale to a value: this scale's value and key path; else as it is."""
        if not isinstance(value, dict) or (self.kind == "counts" and set(value) != set(SCALES)):
            return value, path
        # None: `scale` itself, which cannot vary by scale
        if set(value) != set(SCALES) or scale is None:
            raise ParamsError(
                f"params.yaml: {path} = {value!r}: must be {self.describe()}, or a mapping of each "
                f"scale ({', '.join(SCALES)}) to one"
            )
        return value[scale], f"{path}.{scale}"

    def check(self, value, path, scale):
        value, path = self.at_scale(value, path, scale)
        if self.kind == "counts" and isinstance(value, dict):  # each count may differ by scale too
            value = {k: Field(int).at_scale(v, f"{path}.{k}", scale)[0] for k, v in value.items()}
        if value is None and self.optional:
            return None
        ok_type = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            "switch": isinstance(value, bool) or value == "auto",
            "ints": isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "counts": isinstance(value, dict)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()),
            "names": isinstance(value, list) and value and all(isinstance(v, str) for v in value),
            "numbers": isinstance(value, list)
            and value
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value
            ),
        }[self.kind]
        chosen = value if self.kind == "names" and isinstance(value, list) else [value]
        if not ok_type or (self.choices and any(v not in self.choices for v in chosen)):
            raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
        numbers = (
            value
            if self.kind in ("ints", "numbers", "names")
            else list(value.values())
            if self.kind == "counts"
            else [value]
        )
        for v in numbers:
            if isinstance(v, str):
                continue
            too_low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
            too_high = self.hi is not None and v > self.hi
            if too_low or too_high:
                raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
            if self.images and v * IMAGE_BYTES > physical_memory():
                raise ParamsError(
                    f"params.yaml: {path} = {value!r}: {v} images of 28x28 float32 take "
                    f"{size(v * IMAGE_BYTES)}, more than this machine's {size(physical_memory())} "
                    f"of memory"
                )
        return float(value) if self.kind is float else value


def positive_int(optional=False):
    return Field(int, lo=1, optional=optional)


def image_count():
    return Field(int, lo=1, images=True)


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
        "steps": positive_int(),  # K, Langevin steps per training iteration
        "step_size": positive(),
        "noise_std": non_negative(),
        "grad_clamp": positive(),
        "no_grad_bug": Field(bool),  # experiment 1's bug: sample under torch.no_grad()
        "precision": Field(str, choices=("fp32", "bf16")),
        "compile": Field(bool),
        "cuda_graph": Field("switch"),  # the K steps as one CUDA graph (ebm.graphs); auto: on CUDA
    },
    "buffer": {
        "capacity": image_count(),
        "restart_prob": fraction(),
        "initial_fill": positive_int(),
    },
    "loss": {
        "alpha": non_negative(),
        "r1_weight": non_negative(),
        "data_noise_std": non_negative(),
        "kl_weight": non_negative(),
        "repel_weight": non_negative(),
    },
    "optim": {
        "lr": positive(),
        "beta1": Field(float, lo=0.0, hi=1.0),
        "beta2": Field(float, lo=0.0, hi=1.0),
        "lr_decay": Field(float, lo=0.0, hi=1.0, lo_open=True),  # StepLR gamma per epoch
        "grad_clip": positive(),
    },
    "batch_size": image_count(),
    "epochs": positive_int(),
    "sample_epochs": Field("ints", lo=1),
    "grid_size": image_count(),
    "generated_chains": image_count(),  # chains from noise run at every sample epoch, scored
    "generated_steps": Field(int, lo=0),  # their Langevin steps
    "log_every": positive_int(),
    "expected_error": Field(str, optional=True),
    "max_abs_energy": positive(),
    "train_subset": Field(int, lo=0),
}

JUDGE = {
    "seed": Field(int, lo=0),
    "epochs": positive_int(),
    "batch_size": image_count(),
    "lr": positive(),
    "non_digits": non_negative(),  # "not a digit" images per training digit
    "max_shift": Field(int, lo=0, hi=4),  # pixels a training image may be shifted by
    "read_by_eye": Field(int, lo=0),  # labelled EBM samples per batch (0: none)
}

EVALUATE = {
    "seed": Field(int, lo=0),
    "num_samples": image_count(),
    "fresh_steps": Field(int, lo=0),
    "batch_size": image_count(),
}

GENERATE = {
    "seed": Field(int, lo=0),
    "steps": positive_int(),
    "chains": Field("counts", lo=1, images=True),  # model name -> how many chains
    "init": Field(str, choices=("noise", "buffer")),
    "step_size": positive(),
    "noise_std": non_negative(),
    "noise_std_final": non_negative(),
    "grad_clamp": positive(),
    "snapshots": Field("ints", lo=0),
    "show_chains": positive_int(),
}

# What an energy does besides sampling (stages/abilities.py): completion, denoising, OOD detection.
REGIONS = ("lower_half", "right_half", "square")  # ebm.restore.hide's regions
ABILITIES = {
    "seed": Field(int, lo=0),
    "models": Field("names"),  # trained models (experiments or long_run), a stage each
    "completion": {
        "digits": image_count(),
        "regions": Field("names", choices=REGIONS),
        "square": Field(
            int, lo=1, hi=20
        ),  # side of the random square; it lies in the central 20x20
        "steps": positive_int(),
    },
    "denoise": {
        "digits": image_count(),
        "sigmas": Field("numbers", lo=0.0, lo_open=True),
        "steps": positive_int(),
        "step_size": positive(),
        "noise_std": non_negative(),
        "grad_clamp": positive(),
    },
    "ood": {
        "digits": image_count(),
        "per_set": image_count(),
        "fashion_mnist": {
            "path": Field(
                str, optional=True
            ),  # a local t10k-images-idx3-ubyte[.gz]; checked to exist
            "download": Field(bool),
            "download_timeout_s": positive(),
        },
    },
}


# Beyond the original journey: one experiment's model continued against long-lived chains.
# Its own keys, plus any TRAIN key it changes from the experiment it continues.
POOL = {
    "chains": image_count(),  # long-lived chains
    "restart_prob": fraction(),  # per chain and iteration: rare, so ages spread out
    "lifetime": Field(int, lo=0),  # steps after which a chain restarts (0: none)
    "steps": positive_int(),  # Langevin steps each chain advances per iteration
    "share": fraction(),  # fraction of each batch's negatives drawn from the pool
    "step_size": positive(),
    "noise_std": non_negative(),
    "grad_clamp": positive(),
}
# 0: evaluation and generation use the last weights
LONG_RUN = {"continues": Field(str), "pool": POOL, "ema_decay": Field(float, lo=0.0, hi=0.9999)}

SCHEMA = {
    "scale": Field(str, choices=SCALES),
    "device": Field(str, choices=("auto", "cuda", "cpu")),
    "data": DATA,
    "train": TRAIN,
    "experiments": "experiments",  # any names: each a partial TRAIN
    "judge": JUDGE,
    "evaluate": EVALUATE,
    "generate": GENERATE,
    "long_run": "long_run",  # LONG_RUN + a partial TRAIN
    "abilities": ABILITIES,
}


# ---- cross-field rules: rule(cfg, at) -> message or None; `at` is the section's key path --


def _initial_fill(cfg, at):
    fill, capacity = cfg["buffer"]["initial_fill"], cfg["buffer"]["capacity"]
    if fill > capacity:
        return f"{at}buffer.initial_fill = {fill}: must be at most {at}buffer.capacity = {capacity}"


def _snapshots(cfg, at):
    beyond = [s for s in cfg["snapshots"] if s > cfg["steps"]]
    if beyond:
        return (
            f"{at}snapshots = {cfg['snapshots']}: step {beyond[0]} is beyond {at}steps = "
            f"{cfg['steps']}"
        )


def _show_chains(cfg, at):
    for name, chains in cfg["chains"].items():
        if cfg["show_chains"] > chains:
            return (
                f"{at}show_chains = {cfg['show_chains']}: must be at most {at}chains.{name} = "
                f"{chains}"
            )


def _cuda_graph(cfg, at):
    s = cfg["sampler"]
    if s["cuda_graph"] is not False and (s["compile"] or s["precision"] != "fp32"):
        return (
            f"{at}sampler.cuda_graph = {str(s['cuda_graph']).lower()}: the graph runs the plain "
            f"fp32 gradient, so {at}sampler.compile must be false and {at}sampler.precision fp32 "
            f"(or set cuda_graph: false)"
        )


def _fashion_path(cfg, at):
    path = cfg["ood"]["fashion_mnist"]["path"]
    if path is not None and not Path(path).is_file():
        return (
            f"{at}ood.fashion_mnist.path = {path!r}: no such file (a Fashion-MNIST "
            f"t10k-images-idx3-ubyte[.gz])"
        )


RULES = {
    "train": [_initial_fill, _cuda_graph],
    "generate": [_snapshots, _show_chains],
    "abilities": [_fashion_path],
}


def check_rules(section, cfg, at):
    for rule in RULES.get(section, []):
        message = rule(cfg, at)
        if message:
            raise ParamsError(f"params.yaml: {message}")


# ---- validation ----------------------------------------------------------------------


def deep_merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate(tree, spec, path, scale, partial=False):
    """The values of `tree` at `scale`, each checked against `spec` (partial: keys may be
    missing)."""
    if not isinstance(tree, dict):
        raise ParamsError(
            f"params.yaml: {path.rstrip('.') or 'top level'} = {tree!r}: must be a mapping"
        )
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
            out[key] = validate(tree[key], sub, f"{path}{key}.", scale, partial)
        else:
            out[key] = sub.check(tree[key], f"{path}{key}", scale)
    return out


def load_params(path="params.yaml", sections=None, scale=None):
    """Load and validate params.yaml (only `sections`, when given, plus the basics) at its scale.

    Every value is validated at both scales, so a bad value only the other scale uses fails
    now, not after switching. scale: resolve at this scale instead of the file's own (a tool
    that looks at the other scale, such as the benchmark's seed-scale projection).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the repository root)") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    file_scale = SCHEMA["scale"].check(raw.get("scale"), "scale", None)
    if scale is None:
        scale = file_scale
    elif scale not in SCALES:
        raise ParamsError(f"load_params(scale={scale!r}): must be one of {' | '.join(SCALES)}")
    params = _validate_sections(raw, scale, sections)
    for other in SCALES:
        if other != scale:
            try:
                _validate_sections(raw, other, sections)
            except ParamsError as err:
                raise ParamsError(f"{err} (with scale: {other})") from None
    return params


def _validate_sections(raw, scale, sections):
    for key in raw:
        if key not in SCHEMA:
            raise ParamsError(f"params.yaml: unknown section {key} (allowed: {', '.join(SCHEMA)})")
    params = {"scale": scale, "device": SCHEMA["device"].check(raw.get("device"), "device", scale)}
    for section in sections if sections is not None else list(raw):
        if section in ("scale", "device"):
            continue
        if section not in raw:
            raise ParamsError(f"params.yaml: missing section {section}")
        if section == "experiments":
            params[section] = _validate_experiments(raw, scale)
        elif section == "long_run":
            params[section] = _validate_long_run(raw, scale)
        else:
            params[section] = validate(raw[section], SCHEMA[section], f"{section}.", scale)
            check_rules(section, params[section], f"{section}.")
    trained = [*(raw.get("experiments") or {}), *(["long_run"] if "long_run" in raw else [])]
    models = set(params["generate"]["chains"]) - set(trained) if "generate" in params else ()
    if models:
        raise ParamsError(
            f"params.yaml: generate.chains.{sorted(models)[0]}: no such trained model (experiments "
            f"and long_run: {', '.join(trained)})"
        )
    unknown = (
        [m for m in params["abilities"]["models"] if m not in trained]
        if "abilities" in params
        else []
    )
    if unknown:
        raise ParamsError(
            f"params.yaml: abilities.models = {params['abilities']['models']!r}: {unknown[0]!r} is "
            f"no trained model (experiments and long_run: {', '.join(trained)})"
        )
    return params


def _validate_experiments(raw, scale):
    experiments = raw["experiments"]
    if not isinstance(experiments, dict) or not experiments:
        raise ParamsError(
            "params.yaml: experiments must be a mapping of experiment name to overrides"
        )
    train = validate(raw.get("train"), TRAIN, "train.", scale)
    out = {}
    for name, overrides in experiments.items():
        path = f"experiments.{name}."
        if not isinstance(name, str) or not name.isidentifier():
            raise ParamsError(
                f"params.yaml: experiments.{name}: an experiment's name must be a word "
                "(letters, digits, _): it names its stages and files"
            )
        cfg = deep_merge(train, validate(overrides or {}, TRAIN, path, scale, partial=True))
        check_rules("train", cfg, path)
        out[name] = cfg
    return out


def _validate_long_run(raw, scale):
    """The continued experiment's config with long_run's changes, its pool and `continues`."""
    section = raw["long_run"]
    own = validate(section, {**TRAIN, **LONG_RUN}, "long_run.", scale, partial=True)
    experiments = _validate_experiments(raw, scale)
    source = own.pop("continues", None)
    if "ema_decay" not in own:
        raise ParamsError("params.yaml: missing key long_run.ema_decay")
    ema_decay = own.pop("ema_decay")
    if source not in experiments:
        raise ParamsError(
            f"params.yaml: long_run.continues = {source!r}: must name an experiment "
            f"({', '.join(experiments)})"
        )
    pool = validate(section.get("pool"), POOL, "long_run.pool.", scale)
    own.pop("pool", None)
    cfg = deep_merge(experiments[source], own)
    check_rules("train", cfg, "long_run.")
    return {**cfg, "continues": source, "pool": pool, "ema_decay": ema_decay}


def resolve_scale(tree, scale):
    """`tree` with every mapping of each scale to a value replaced by `scale`'s value, unvalidated:
    for a section the schema does not know (yet)."""
    if isinstance(tree, dict):
        if set(tree) == set(SCALES):
            return resolve_scale(tree[scale], scale)
        return {key: resolve_scale(value, scale) for key, value in tree.items()}
    return tree


def experiment_names(path="params.yaml"):
    """The experiments in the journey's order (params.yaml's), as `dvc.yaml`'s foreach sees them."""
    return list(load_params(path, sections=["experiments"])["experiments"])


def experiment_config(params, name):
    """The complete, validated config of one experiment: `train` with its overrides; `long_run`:
    the experiment it continues with its changes (load_params with the long_run section)."""
    if name == "long_run" and "long_run" in params:
        return params["long_run"]
    if name not in params["experiments"]:
        raise ParamsError(
            f"unknown experiment {name!r}: must be one of {', '.join(params['experiments'])}"
        )
    return params["experiments"][name]
