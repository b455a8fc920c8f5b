"""Read params.yaml in one place: pick the scale, validate every value, fail early.

A stage calls `load_params()` (or `experiment_config(params, name)`) before doing any
work, so a typo costs a second, not an hour of training. It returns an `ebm.config.Params`
of frozen dataclasses. Each error names the key path, the value and what is allowed, in one
line.

A value that differs between the scales is written inline as a mapping of every scale to
its value, e.g. `epochs: {cpu: 15, seed: 100}`; `load_params` picks the entry of the
file's `scale`. Nothing else depends on the scale, so a key set with `dvc exp run -S`
always takes effect: `-S experiments.final_training.epochs=20` at both scales,
`-S experiments.final_training.epochs.cpu=20` at the CPU scale only.

The experiments are the keys of `experiments`, in the file's order (the journey's). Each is
`train` with its own changes merged in (`deep_merge`, the one merge); cross-field rules
(RULES) run on each section, and on each experiment after the merge. The checks are the
fields of `ebm.config` (`ebm.fields.Field`), not a pydantic model: a per-scale choice on
any leaf and errors that name `...epochs.cpu` in one line are what this walk gives for free.
"""

import copy
import dataclasses
from pathlib import Path

import yaml

from ebm import config
from ebm.errors import ParamsError  # noqa: F401  (re-exported)
from ebm.fields import IMAGE_BYTES, SCALES, physical_memory  # noqa: F401  (re-exported)

SECTIONS = {
    "data": config.Data,
    "train": config.Train,
    "experiments": "experiments",  # any names: each a partial Train
    "judge": config.Judge,
    "evaluate": config.Evaluate,
    "generate": config.Generate,
    "long_run": "long_run",  # LongRun: a partial Train and its own keys
    "abilities": config.Abilities,
}
SCALE_FIELD = config.Params.__dataclass_fields__["scale"].metadata["spec"]
DEVICE_FIELD = config.Params.__dataclass_fields__["device"].metadata["spec"]


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


def validate(tree, cls, path, scale, partial=False):
    """The values of `tree` at `scale`, each checked against the fields of the dataclass `cls`
    (partial: keys may be missing), as a plain dict."""
    if not isinstance(tree, dict):
        raise ParamsError(
            f"params.yaml: {path.rstrip('.') or 'top level'} = {tree!r}: must be a mapping"
        )
    fields = dataclasses.fields(cls)
    unknown = set(tree) - {f.name for f in fields}
    if unknown:
        key, allowed = sorted(unknown)[0], ", ".join(f.name for f in fields)
        raise ParamsError(f"params.yaml: unknown key {path}{key} (allowed here: {allowed})")
    out = {}
    for f in fields:
        if f.name not in tree:
            if partial:
                continue
            raise ParamsError(f"params.yaml: missing key {path}{f.name}")
        if "section" in f.metadata:
            out[f.name] = validate(
                tree[f.name], f.metadata["section"], f"{path}{f.name}.", scale, partial
            )
        else:
            out[f.name] = f.metadata["spec"].check(tree[f.name], f"{path}{f.name}", scale)
    return out


def typed(cls, values):
    """A validated, complete dict as the dataclass `cls`, its sections as theirs."""
    return cls(
        **{
            f.name: typed(f.metadata["section"], values[f.name])
            if "section" in f.metadata
            else values[f.name]
            for f in dataclasses.fields(cls)
        }
    )


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
    file_scale = SCALE_FIELD.check(raw.get("scale"), "scale", None)
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
    return _typed_params(params)


def _typed_params(values):
    out = {}
    for name, value in values.items():
        if name == "experiments":
            out[name] = {n: typed(config.Train, cfg) for n, cfg in value.items()}
        elif name == "long_run":
            out[name] = typed(config.LongRun, value)
        else:
            out[name] = typed(SECTIONS[name], value) if name in SECTIONS else value
    return config.Params(**out)


def _validate_sections(raw, scale, sections):
    allowed = ["scale", "device", *SECTIONS]
    for key in raw:
        if key not in allowed:
            raise ParamsError(f"params.yaml: unknown section {key} (allowed: {', '.join(allowed)})")
    params = {"scale": scale, "device": DEVICE_FIELD.check(raw.get("device"), "device", scale)}
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
            params[section] = validate(raw[section], SECTIONS[section], f"{section}.", scale)
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
    train = validate(raw.get("train"), config.Train, "train.", scale)
    out = {}
    for name, overrides in experiments.items():
        path = f"experiments.{name}."
        if not isinstance(name, str) or not name.isidentifier():
            raise ParamsError(
                f"params.yaml: experiments.{name}: an experiment's name must be a word "
                "(letters, digits, _): it names its stages and files"
            )
        cfg = deep_merge(train, validate(overrides or {}, config.Train, path, scale, partial=True))
        check_rules("train", cfg, path)
        out[name] = cfg
    return out


def _validate_long_run(raw, scale):
    """The continued experiment's config with long_run's changes, its pool and `continues`."""
    section = raw["long_run"]
    own = validate(section, config.LongRun, "long_run.", scale, partial=True)
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
    pool = validate(section.get("pool"), config.Pool, "long_run.pool.", scale)
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
    return list(load_params(path, sections=["experiments"]).experiments)


def experiment_config(params, name):
    """The complete, validated config of one experiment: `train` with its overrides; `long_run`:
    the experiment it continues with its changes (load_params with the long_run section)."""
    if name == "long_run" and params.long_run is not None:
        return params.long_run
    if name not in params.experiments:
        raise ParamsError(
            f"unknown experiment {name!r}: must be one of {', '.join(params.experiments)}"
        )
    return params.experiments[name]
