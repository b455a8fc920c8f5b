"""Checkpoints are data: every loader reads them with weights_only=True, and a file it cannot
read (a pickle that would run code, a truncated file, the older format) stops the stage in one
line naming the file and the command that rebuilds it. The round trip stays exact."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm.checkpoint import load_checkpoint, plain, save_checkpoint
from ebm.judge import LeNet5, load_judge, save_judge
from ebm.model import EnergyNet, average_weights, load_trained
from ebm.params import experiment_config, load_params
from ebm.stage import run_stage
from pipeline_repo import stage_script

train = stage_script("train")

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TRAINED = "checkpoints/final_training/checkpoint.pt"
RETRAIN = "`rm -r checkpoints/final_training && dvc repro train@final_training`"
JUDGE = "checkpoints/judge/judge.pt"


class Payload:
    """What a hostile checkpoint carries: unpickling it writes a file (it could do anything)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml", sections=["train", "experiments", "long_run"])


@pytest.fixture(scope="module")
def experiments(params):
    return {
        name: train.Experiment(name, experiment_config(params, name), CPU, "hash")
        for name in ("final_training", "long_run")
    }


# every place that loads a checkpoint: (the file it reads, how it is called)
LOADERS = {
    "train resume": (
        TRAINED,
        RETRAIN,
        lambda exps: exps["final_training"].resume(Path("checkpoints/final_training")),
    ),
    "train continue_from": (
        TRAINED,
        RETRAIN,
        lambda exps: exps["long_run"].continue_from("final_training"),
    ),
    "load_trained": (TRAINED, RETRAIN, lambda exps: load_trained(Path(TRAINED), CPU)),
    "judge": (JUDGE, "`dvc repro -f judge`", lambda exps: load_judge(JUDGE)),
}


def damage(path, kind, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "payload":
        torch.save({"config": {"model": {"width": 8}}, "epoch": 1, "model": Payload(marker)}, path)
    elif kind == "not a checkpoint":
        path.write_text("a text file saved under the checkpoint's name\n" * 20)
    elif kind == "corrupt inside":  # a whole archive whose pickle record was overwritten
        save_judge(path, LeNet5())
        data = bytearray(path.read_bytes())
        start = data.index(b"\x80\x02", data.index(b"data.pkl"))  # the pickle's protocol header
        data[start : start + 40] = b"\x00" * 40
        path.write_bytes(data)
    elif kind == "old format":  # what train.py wrote before: NumPy's RNG state as an ndarray
        torch.save({"epoch": 1, "rng": {"numpy": np.random.get_state()}}, path)
    else:  # a checkpoint cut short (a copy that stopped, a full disk)
        save_judge(path, LeNet5())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def one_line_error(capsys, action):
    """Run `action` the way a stage script runs its main; return its one line on stderr."""
    with pytest.raises(SystemExit) as stopped:
        run_stage(action)
    assert stopped.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "kind", ["payload", "old format", "truncated", "not a checkpoint", "corrupt inside"]
)
@pytest.mark.parametrize("loader", LOADERS)
def test_an_unreadable_checkpoint_stops_the_stage_in_one_line(
    loader, kind, experiments, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    where, remedy, load = LOADERS[loader]
    marker = tmp_path / "payload_ran"
    damage(Path(where), kind, marker)
    before = Path(where).read_bytes()
    line = one_line_error(capsys, lambda: load(experiments))
    assert line.startswith(f"error: {where}: "), line
    assert line.endswith(remedy), line
    if kind == "payload":
        assert "holds exec" in line and "not loaded" in line, line
    elif kind == "old format":
        assert "older checkpoint format" in line and "numpy" in line, line
    elif kind == "corrupt inside":
        assert "corrupt (Unsupported operand 0)" in line, line
    else:
        assert "truncated or not a checkpoint (no whole zip archive)" in line, line
    assert not marker.exists()  # the payload never ran
    assert Path(where).read_bytes() == before  # the file is left for the user to look at


def test_a_run_whose_checkpoint_is_unreadable_trains_nothing(experiments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = experiments["final_training"]
    damage(Path(TRAINED), "truncated", None)
    weights = {k: v.clone() for k, v in exp.net.state_dict().items()}
    with pytest.raises(Exception, match="truncated"):
        exp.resume(Path("checkpoints/final_training"))
    assert exp.epoch == 0 and exp.history == []
    assert all(torch.equal(v, weights[k]) for k, v in exp.net.state_dict().items())


def test_a_checkpoint_round_trips_through_weights_only_and_resumes_exactly(params, tmp_path):
    # the fullest checkpoint: a pool and a moving average
    cfg = experiment_config(params, "long_run")
    exp = train.Experiment("long_run", cfg, CPU, "hash")
    exp.average = average_weights(None, exp.net, cfg.ema_decay or 0.9)
    exp.epoch, exp.grids = 2, {2: torch.zeros(4, 1, 28, 28, dtype=torch.uint8)}
    # NumPy floats, as
    exp.history = [{"step": 1, "epoch": 1, "loss": np.float64(-0.25), "lr": 1e-4}]
    # figures may be
    exp.tracked = [{"step": 1, "coverage": np.float32(0.5), "modes_covered": np.int64(7)}]
    np.random.randn(3)  # leaves a cached Gaussian in NumPy's state
    save_checkpoint(tmp_path / "checkpoint.pt", exp.checkpoint())
    expected = (random.random(), np.random.randn(5), torch.rand(5))

    ckpt = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["history"] == [{"step": 1, "epoch": 1, "loss": -0.25, "lr": 1e-4}]
    assert (
        type(ckpt["tracked"][0]["coverage"]) is float
        and type(ckpt["tracked"][0]["modes_covered"]) is int
    )

    # reseeds: the draws below come from the resume
    again = train.Experiment("long_run", cfg, CPU, "hash")
    assert again.resume(tmp_path)
    assert (random.random(), *[x.tolist() for x in (np.random.randn(5), torch.rand(5))]) == (
        expected[0],
        *[x.tolist() for x in expected[1:]],
    )
    assert (
        again.epoch == 2 and again.history == ckpt["history"] and again.tracked == ckpt["tracked"]
    )
    assert torch.equal(again.pool.images, exp.pool.images) and torch.equal(
        again.pool.ages, exp.pool.ages
    )
    assert all(torch.equal(again.average[k], exp.average[k]) for k in exp.average)
    assert all(torch.equal(v, exp.net.state_dict()[k]) for k, v in again.net.state_dict().items())


def test_load_trained_reads_the_new_format_onto_the_device(tmp_path):
    net = EnergyNet(width=8)
    save_checkpoint(
        tmp_path / "checkpoint.pt",
        {"config": {"model": {"width": 8}}, "model": net.state_dict(), "ema": None},
    )
    ckpt, model = load_trained(tmp_path / "checkpoint.pt", CPU)
    assert ckpt["ema"] is None and all(
        torch.equal(v, net.state_dict()[k]) for k, v in model.state_dict().items()
    )


def test_what_a_checkpoint_cannot_hold_is_refused_when_it_is_written(tmp_path):
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(
        TypeError, match=r"checkpoint\['history'\]\[0\]\['when'\]: a pathlib.*PosixPath"
    ):
        save_checkpoint(target, {"history": [{"when": Path("x")}]})
    assert not target.exists()
    assert plain({"a": (np.arange(3), np.bool_(True))}, "x")["a"][1] is True


def test_a_missing_checkpoint_names_the_file_and_the_remedy(tmp_path):
    with pytest.raises(Exception, match=r"nowhere\.pt: file not found; rebuild it"):
        load_checkpoint(tmp_path / "nowhere.pt", CPU, "rebuild it")
