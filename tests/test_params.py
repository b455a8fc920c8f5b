"""params.yaml validation: every bad value fails early, in one line naming key, value and what is
allowed.

`ebm.params.load_params` runs on edited copies of the project's own params.yaml; one
subprocess check shows the training stage turning such an error into one `error:` line and
exit status 1 before it writes or changes any output.
"""

import copy
import hashlib
import json
import sys

import pytest
import yaml

from ebm.params import (
    IMAGE_BYTES,
    ParamsError,
    experiment_config,
    load_params,
    physical_memory,
    resolve_scale,
)
from pipeline_repo import EXPERIMENTS, ROOT, dvc, edit_params, make_repo, run

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
README_ERROR = (
    "error: params.yaml: experiments.final_training.buffer.restart_prob = 1.5: must be a number in "
    "[0.0, 1.0]"
)


def write(tmp_path, change):
    params = copy.deepcopy(PARAMS)
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def error_of(tmp_path, change, sections=None):
    with pytest.raises(ParamsError) as caught:
        load_params(write(tmp_path, change), sections=sections)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def exp(params, name="final_training"):
    return params["experiments"][name]


# (id, edit, the pieces the message must hold: key path, value, what is allowed)
BAD = [
    (
        "unknown key",
        lambda p: exp(p).setdefault("sampler", {}).update(stepz=60),
        [
            "unknown key experiments.final_training.sampler.stepz",
            "allowed here: steps, step_size, noise_std, grad_clamp, no_grad_bug, precision, "
            "compile",
        ],
    ),
    (
        "string for an integer",
        lambda p: p["train"].update(batch_size={"cpu": 32, "seed": "64"}),
        # the bad value is used at the seed scale only: it still fails now
        ["train.batch_size.seed = '64'", "must be an integer in [1, inf)", "(with scale: seed)"],
    ),
    (
        "string for an integer at this scale",
        lambda p: p["train"].update(batch_size={"cpu": "64", "seed": 128}),
        ["train.batch_size.cpu = '64'", "must be an integer in [1, inf)"],
    ),
    (
        "bool for an integer",
        lambda p: p["train"]["model"].update(width=True),
        ["train.model.width = True", "must be an integer in [1, inf)"],
    ),
    (
        "negative step count",
        lambda p: p["train"]["sampler"].update(steps=-5),
        ["train.sampler.steps = -5", "must be an integer in [1, inf)"],
    ),
    (
        "negative step count in an experiment",
        lambda p: exp(p, "mode_collapse").setdefault("sampler", {}).update(steps=-1),
        ["experiments.mode_collapse.sampler.steps = -1", "must be an integer in [1, inf)"],
    ),
    (
        "probability above 1",
        lambda p: exp(p).setdefault("buffer", {}).update(restart_prob=1.5),
        ["experiments.final_training.buffer.restart_prob = 1.5", "must be a number in [0.0, 1.0]"],
    ),
    (
        "probability below 0",
        lambda p: p["train"]["buffer"].update(restart_prob=-0.1),
        ["train.buffer.restart_prob = -0.1", "must be a number in [0.0, 1.0]"],
    ),
    (
        "negative alpha",
        lambda p: exp(p, "blob_collapse").setdefault("loss", {}).update(alpha=-0.1),
        ["experiments.blob_collapse.loss.alpha = -0.1", "must be a number in [0.0, inf)"],
    ),
    (
        "zero learning rate",
        lambda p: p["train"]["optim"].update(lr=0.0),
        ["train.optim.lr = 0.0", "must be a number in (0.0, inf)"],
    ),
    (
        "NaN guard",
        lambda p: p["train"].update(max_abs_energy=float("nan")),
        ["train.max_abs_energy = nan", "must be a number in (0.0, inf)"],
    ),
    (
        "int for a bool",
        lambda p: p["train"]["sampler"].update(no_grad_bug=1),
        ["train.sampler.no_grad_bug = 1", "must be true or false"],
    ),
    (
        "list entry out of range",
        lambda p: p["train"]["sample_epochs"].update(cpu=[0, 5]),
        ["train.sample_epochs.cpu = [0, 5]", "must be a list of integers in [1, inf)"],
    ),
    (
        "infinite step size",
        lambda p: p["train"]["sampler"].update(step_size=float("inf")),
        ["train.sampler.step_size = inf", "must be a number in (0.0, inf)"],
    ),
    (
        "infinite value in an experiment",
        lambda p: exp(p).setdefault("loss", {}).update(alpha=float("-inf")),
        ["experiments.final_training.loss.alpha = -inf", "must be a number in [0.0, inf)"],
    ),
    (
        "experiment name not a word",
        lambda p: p["experiments"].update({"sixth try": {"epochs": 3}}),
        ["experiments.sixth try: an experiment's name must be a word"],
    ),
    (
        "experiment not a mapping",
        lambda p: p["experiments"].update(final_training=[1, 2]),
        ["experiments.final_training = [1, 2]", "must be a mapping"],
    ),
    (
        "scale by scale",
        lambda p: p.update(scale={"cpu": "cpu", "seed": "seed"}),
        ["scale = {'cpu': 'cpu', 'seed': 'seed'}: must be one of cpu | seed"],
    ),
    (
        "unknown scale",
        lambda p: p.update(scale="gpu"),
        ["scale = 'gpu'", "must be one of cpu | seed"],
    ),
    (
        "unknown device",
        lambda p: p.update(device="tpu"),
        ["device = 'tpu'", "must be one of auto | cuda | cpu"],
    ),
    (
        "unknown choice",
        lambda p: p["generate"].update(init="buffers"),
        ["generate.init = 'buffers'", "must be one of noise | buffer"],
    ),
    (
        "per-scale value names an unknown scale",
        lambda p: p["train"].update(batch_size={"cpu": 32, "gpu": 64}),
        [
            "train.batch_size = {'cpu': 32, 'gpu': 64}",
            "or a mapping of each scale (cpu, seed) to one",
        ],
    ),
    (
        "per-scale value misses a scale",
        lambda p: exp(p).update(epochs={"cpu": 20}),
        [
            "experiments.final_training.epochs = {'cpu': 20}",
            "or a mapping of each scale (cpu, seed) to one",
        ],
    ),
    (
        "the old at_scale block",
        lambda p: p["train"].update(at_scale={"cpu": {"batch_size": 64}}),
        ["unknown key train.at_scale"],
    ),
    (
        "bad value only the other scale uses",
        lambda p: p["evaluate"].update(num_samples={"cpu": 1000, "seed": 0}),
        ["evaluate.num_samples.seed = 0", "must be an integer in [1, inf)", "(with scale: seed)"],
    ),
    # cross-field rules
    (
        "initial fill beyond the capacity",
        lambda p: p["train"]["buffer"].update(initial_fill=999999),
        ["train.buffer.initial_fill = 999999: must be at most train.buffer.capacity = 512"],
    ),
    (
        "initial fill beyond an experiment's capacity",
        lambda p: exp(p).setdefault("buffer", {}).update(capacity=64),
        [
            "experiments.final_training.buffer.initial_fill = 128: must be at most "
            "experiments.final_training.buffer.capacity = 64"
        ],
    ),
    (
        "snapshot beyond the steps",
        lambda p: p["generate"].update(snapshots=[0, 100, 30000]),
        ["generate.snapshots = [0, 100, 30000]: step 30000 is beyond generate.steps = 20000"],
    ),
    (
        "more chains shown than run",
        lambda p: p["generate"].update(show_chains=257),
        ["generate.show_chains = 257: must be at most generate.chains.final_training = 64"],
    ),
    (
        "chains of a model that is no experiment",
        lambda p: p["generate"]["chains"].update(sixth_try=64),
        [
            "generate.chains.sixth_try: no such trained model (experiments and long_run: "
            "initial_attempt, "
        ],
    ),
    (
        "long_run continues no experiment",
        lambda p: p["long_run"].update(continues="sixth_try"),
        ["long_run.continues = 'sixth_try': must name an experiment (initial_attempt, "],
    ),
    (
        "long_run pool restart beyond 1",
        lambda p: p["long_run"]["pool"].update(restart_prob=1.5),
        ["long_run.pool.restart_prob = 1.5: must be a number in [0.0, 1.0]"],
    ),
    (
        "long_run average that never moves",
        lambda p: p["long_run"].update(ema_decay=1.0),
        ["long_run.ema_decay = 1.0: must be a number in [0.0, 0.9999]"],
    ),
    (
        "long_run without its average's decay",
        lambda p: p["long_run"].pop("ema_decay"),
        ["missing key long_run.ema_decay"],
    ),
    (
        "per-scale chains miss a scale",
        lambda p: p["generate"]["chains"].update(final_training={"cpu": 64}),
        [
            "generate.chains.final_training = {'cpu': 64}",
            "or a mapping of each scale (cpu, seed) to one",
        ],
    ),
    (
        "unknown completion region",
        lambda p: p["abilities"]["completion"].update(regions=["lower_half", "top_half"]),
        [
            "abilities.completion.regions = ['lower_half', 'top_half']",
            "must be a list of lower_half | right_half | square",
        ],
    ),
    (
        "Fashion-MNIST copy that does not exist",
        lambda p: p["abilities"]["ood"]["fashion_mnist"].update(
            path="/nonexistent/t10k-images-idx3-ubyte.gz"
        ),
        [
            "abilities.ood.fashion_mnist.path = '/nonexistent/t10k-images-idx3-ubyte.gz': no such "
            "file"
        ],
    ),
    (
        "abilities of a model that is no experiment",
        lambda p: p["abilities"].update(models=["long_run", "sixth_try"]),
        ["abilities.models = ['long_run', 'sixth_try']: 'sixth_try' is no trained model"],
    ),
    (
        "denoising noise of zero",
        lambda p: p["abilities"]["denoise"].update(sigmas=[0.3, 0]),
        [
            "abilities.denoise.sigmas = [0.3, 0]",
            "must be a non-empty list of numbers in (0.0, inf)",
        ],
    ),
    # sizes that cannot fit in memory: n images of 28x28 float32
    (
        "buffer beyond memory",
        lambda p: p["train"]["buffer"].update(capacity=10**12, initial_fill=1),
        [
            "train.buffer.capacity = 1000000000000: 1000000000000 images of 28x28 float32 take 2.8 "
            "PiB, more than this machine's",
            "GiB of memory",
        ],
    ),
    (
        "batch beyond memory",
        lambda p: p["train"].update(batch_size={"cpu": 32, "seed": 10**11}),
        ["train.batch_size.seed = 100000000000: ", "take 285.2 TiB", "(with scale: seed)"],
    ),
    (
        "evaluation samples beyond memory",
        lambda p: p["evaluate"].update(num_samples=10**12),
        ["evaluate.num_samples = 1000000000000: ", "take 2.8 PiB"],
    ),
    (
        "generation chains beyond memory",
        lambda p: p["generate"]["chains"]["final_training"].update(seed=10**12),
        [
            "generate.chains = {'final_training': 1000000000000",
            "1000000000000 images",
            "take 2.8 PiB",
            "(with scale: seed)",
        ],
    ),
    ("missing key", lambda p: p["train"]["optim"].pop("beta2"), ["missing key train.optim.beta2"]),
    (
        "unknown section",
        lambda p: p.update(trian={"seed": 1}),
        [
            "unknown section trian",
            "allowed: scale, device, data, train, experiments, judge, evaluate, generate, long_run",
        ],
    ),
]


@pytest.mark.parametrize(
    "change, pieces", [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_value_names_key_value_and_what_is_allowed(tmp_path, change, pieces):
    message = error_of(tmp_path, change)
    assert message.startswith("params.yaml: "), message
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"


def test_readme_example_is_the_exact_message(tmp_path):
    message = error_of(tmp_path, lambda p: exp(p).setdefault("buffer", {}).update(restart_prob=1.5))
    assert f"error: {message}" == README_ERROR


def test_not_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params\.yaml: not valid YAML"):
        load_params(path)


def test_unknown_experiment_name_on_the_command_line():
    params = load_params(ROOT / "params.yaml", sections=["train", "experiments"])
    with pytest.raises(
        ParamsError,
        match="unknown experiment 'sixth_try': must be one of initial_attempt, loss_collapse, "
        "blob_collapse, mode_collapse, final_training",
    ):
        experiment_config(params, "sixth_try")


def test_a_new_experiment_is_one_block_and_keeps_the_file_order(tmp_path):
    params = load_params(
        write(tmp_path, lambda p: p["experiments"].update(sixth_try={"epochs": 3}))
    )
    assert list(params.experiments) == [*EXPERIMENTS, "sixth_try"]
    assert experiment_config(params, "sixth_try").epochs == 3


def test_long_run_is_the_continued_experiment_with_its_changes(tmp_path):
    params = load_params(
        write(tmp_path, lambda p: None), sections=["train", "experiments", "long_run"]
    )
    base, long_run = (
        experiment_config(params, "final_training"),
        experiment_config(params, "long_run"),
    )
    assert long_run.continues == "final_training" and long_run.pool.chains > 0
    assert long_run.optim.lr < base.optim.lr and long_run.sampler == base.sampler
    assert long_run.loss == base.loss and long_run.buffer == base.buffer


def test_memory_check_is_against_this_machines_ram(tmp_path):
    fits = physical_memory() // IMAGE_BYTES // 2
    params = load_params(
        write(tmp_path, lambda p: p["evaluate"].update(num_samples=fits)), sections=["evaluate"]
    )
    assert params.evaluate.num_samples == fits
    error_of(tmp_path, lambda p: p["evaluate"].update(num_samples=4 * fits))


@pytest.mark.parametrize("scale", ["cpu", "seed"])
def test_the_project_params_load_at_both_scales(tmp_path, scale):
    params = load_params(write(tmp_path, lambda p: p.update(scale=scale)))
    assert params.scale == scale and set(params.experiments) == set(EXPERIMENTS)
    assert experiment_config(params, "initial_attempt").sampler.no_grad_bug is True


def test_a_tool_can_resolve_the_other_scale_without_editing_the_file(tmp_path):
    path = write(tmp_path, lambda p: p.update(scale="cpu"))
    seed = experiment_config(load_params(path, scale="seed"), "final_training")
    cpu = experiment_config(load_params(path), "final_training")
    assert (seed.batch_size, seed.epochs) == (128, 100) and (cpu.batch_size, cpu.epochs) == (32, 10)
    with pytest.raises(ParamsError, match=r"scale='gpu'\): must be one of cpu \| seed"):
        load_params(path, scale="gpu")


@pytest.mark.parametrize(
    "scale, epochs, batch_size, num_samples", [("cpu", 3, 50, 500), ("seed", 9, 100, 4096)]
)
def test_per_scale_values_and_experiment_overrides_resolve(
    tmp_path, scale, epochs, batch_size, num_samples
):
    def change(p):
        p["scale"] = scale
        p["train"].update(batch_size={"cpu": 50, "seed": 100})
        p["train"]["sampler"].update(steps=33, noise_std=0.005)
        p["experiments"]["final_training"] = {
            "epochs": {"cpu": 3, "seed": 9},
            "sampler": {"noise_std": 0.02},
        }
        p["evaluate"].update(num_samples={"cpu": 500, "seed": 4096})

    params = load_params(write(tmp_path, change))
    final = experiment_config(params, "final_training")
    assert (final.epochs, final.batch_size) == (epochs, batch_size)
    # override + shared value
    assert final.sampler.noise_std == 0.02 and final.sampler.steps == 33
    assert experiment_config(params, "mode_collapse").sampler.noise_std == 0.005
    assert params.evaluate.num_samples == num_samples
    assert isinstance(final.optim.lr, float)


# ---- the stage: one line, exit 1, no output touched --------------------------------------


def tree(where):
    """Every file outside .git and .dvc, with a hash of its bytes."""
    return {
        str(p.relative_to(where)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(where.rglob("*"))
        if p.is_file() and not {".git", ".dvc", "__pycache__"} & set(p.relative_to(where).parts)
    }


@pytest.mark.parametrize(
    "change, argv, line",
    [
        (
            lambda p: exp(p).setdefault("buffer", {}).update(restart_prob=1.5),
            ["final_training"],
            README_ERROR,
        )
    ],
    ids=["bad value"],
)
def test_train_stage_fails_in_one_line_and_touches_nothing(tmp_path, change, argv, line):
    where = make_repo(tmp_path)
    edit_params(where, change)
    # outputs of an earlier run, which a failing stage must leave as they are
    for name, content in [
        ("metrics/train/final_training.json", b'{"status": "ok"}\n'),
        ("plots/train/final_training.csv", b"step,loss\n1,0.5\n"),
        ("checkpoints/final_training/checkpoint.pt", b"an earlier checkpoint"),
        ("plots/samples/final_training/samples_epoch_001.png", b"an earlier grid"),
    ]:
        (where / name).parent.mkdir(parents=True, exist_ok=True)
        (where / name).write_bytes(content)
    before = tree(where)
    done = run([sys.executable, "stages/train.py", *argv], where, check=False)
    assert done.returncode == 1, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines == [line], done.stderr
    assert done.stdout == ""
    assert tree(where) == before
    assert not (where / "data").exists()


# ---- every key a user can see and set takes effect (what `dvc exp run -S key=value` writes) ----


@pytest.mark.parametrize("scale", ["cpu", "seed"])
@pytest.mark.parametrize(
    "change, read, value",
    [
        (
            lambda p: exp(p).update(epochs=20),
            lambda ps: experiment_config(ps, "final_training").epochs,
            20,
        ),
        (
            lambda p: p["train"].update(batch_size=64),
            lambda ps: experiment_config(ps, "mode_collapse").batch_size,
            64,
        ),
        (
            lambda p: p["train"].update(sample_epochs=[3]),
            lambda ps: experiment_config(ps, "final_training").sample_epochs,
            [3],
        ),
        (lambda p: p["evaluate"].update(num_samples=700), lambda ps: ps.evaluate.num_samples, 700),
        (
            lambda p: p["generate"]["chains"].update(final_training=48),
            lambda ps: ps.generate.chains["final_training"],
            48,
        ),
        (
            lambda p: p["data"].update(source="torchvision"),
            lambda ps: ps.data.source,
            "torchvision",
        ),
    ],
    ids=[
        "experiment epochs",
        "train.batch_size",
        "train.sample_epochs",
        "evaluate.num_samples",
        "generate.chains",
        "data.source",
    ],
)
def test_a_plain_value_applies_at_both_scales(tmp_path, scale, change, read, value):
    before = read(load_params(write(tmp_path, lambda p: p.update(scale=scale))))
    assert before != value
    assert read(load_params(write(tmp_path, lambda p: (p.update(scale=scale), change(p))))) == value


def test_a_per_scale_entry_applies_at_its_scale_only(tmp_path):
    # -S experiments.final_training.epochs.cpu=20
    path = write(tmp_path, lambda p: exp(p)["epochs"].update(cpu=20))
    assert experiment_config(load_params(path, scale="cpu"), "final_training").epochs == 20
    assert experiment_config(load_params(path, scale="seed"), "final_training").epochs == 100


def test_dvc_exp_run_set_params_take_effect(tmp_path):
    """`-S` replaces a per-scale mapping by a plain value, or sets one scale's entry; both
    resolve."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "read": {
                        "cmd": "python -c \"open('out.txt', 'w').write('read')\"",
                        "params": ["train", "experiments", "evaluate"],
                        "outs": [{"out.txt": {"cache": False}}],
                    }
                }
            }
        )
    )
    run(["git", "init", "-q"], tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "params"], tmp_path)
    dvc(
        "exp",
        "run",
        "-S",
        "train.batch_size=64",
        "-S",
        "experiments.final_training.epochs.cpu=20",
        "-S",
        "evaluate.num_samples=700",
        cwd=tmp_path,
    )
    diff = json.loads(dvc("params", "diff", "--json", cwd=tmp_path).stdout)["params.yaml"]
    changed = {key: (v["old"], v["new"]) for key, v in diff.items()}
    assert changed["experiments.final_training.epochs.cpu"] == (10, 20)
    assert changed["train.batch_size"] == (None, 64) and changed["train.batch_size.cpu"] == (
        32,
        None,
    )
    for scale, epochs in [("cpu", 20), ("seed", 100)]:
        params = load_params(tmp_path / "params.yaml", scale=scale)
        final = experiment_config(params, "final_training")
        assert (final.epochs, final.batch_size, params.evaluate.num_samples) == (epochs, 64, 700)


def test_resolve_scale_picks_per_scale_values_in_any_tree():
    tree = {
        "epochs": {"cpu": 15, "seed": 100},
        "sampler": {"steps": 60},
        "chains": {"final_training": {"cpu": 1, "seed": 2}},
    }
    assert resolve_scale(tree, "seed") == {
        "epochs": 100,
        "sampler": {"steps": 60},
        "chains": {"final_training": 2},
    }
