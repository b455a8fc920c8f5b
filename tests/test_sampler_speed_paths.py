"""The fast sampler computes what the plain tutorial loop computes (fp32, CPU, same seed)."""

import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ebm.model import EnergyNet
from ebm.runtime import place
from ebm.sampler import Chain, fast_input_grad, input_grad, langevin

spec = importlib.util.spec_from_file_location(
    "bench", Path(__file__).parents[1] / "benchmarks" / "sampler.py"
)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fast_sampler_matches_the_tutorial_loop(threads):
    torch.manual_seed(0)
    model = EnergyNet(16)  # the tutorial's layout
    placed = place(EnergyNet(16), torch.device("cpu"))  # the stages' layout (channels_last)
    placed.load_state_dict(model.state_dict())
    x0 = torch.rand(12, 1, 28, 28) * 2 - 1
    torch.manual_seed(5)
    plain = bench.reference_loop(model, x0, steps=8)
    torch.manual_seed(5)
    fast = langevin(placed, x0, Chain(8, bench.STEP, bench.NOISE, bench.CLAMP), threads=threads)
    assert torch.allclose(plain, fast, atol=1e-5), (plain - fast).abs().max()
    assert torch.get_num_threads() >= 1 and all(p.requires_grad for p in placed.parameters())


def test_place_uses_channels_last_on_cpu_and_keeps_the_energies():
    torch.manual_seed(0)
    model = EnergyNet(16)
    placed = place(EnergyNet(16), torch.device("cpu"))
    placed.load_state_dict(model.state_dict())
    assert placed.body[2].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert torch.allclose(model(x), placed(x), atol=1e-5)


def test_no_grad_bug_reaches_the_worker_threads():
    """Grad mode is per thread: the bug must still raise when slices run on other threads."""
    with pytest.raises(RuntimeError, match="does not require grad"):
        langevin(
            EnergyNet(8),
            torch.zeros(4, 1, 28, 28),
            Chain(2, 10, 0.005, 0.03),
            no_grad_bug=True,
            threads=2,
        )


# The CUDA speed paths, checked for their logic on the CPU (CI has no GPU). The "eager"
# backend runs torch.compile's graph capture without generating kernels, in a second.
@pytest.mark.parametrize("precision, compile", [("fp32", True), ("bf16", False), ("bf16", True)])
def test_fast_input_grad_gives_the_plain_gradient(precision, compile):
    torch.manual_seed(0)
    model = EnergyNet(8)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    plain = input_grad(model, x)
    fast = fast_input_grad(model, precision, compile, backend="eager")(x)
    assert fast.dtype == torch.float32 and fast.shape == x.shape  # the chain stays fp32
    assert not fast.requires_grad  # no graph through the weights
    if precision == "fp32":
        assert torch.allclose(plain, fast, atol=1e-7)
    else:  # bf16 keeps ~3 significant digits
        assert torch.nn.functional.cosine_similarity(plain.flatten(), fast.flatten(), 0) > 0.999
    assert all(p.grad is None for p in model.parameters())  # dE/dx only, never the weights'


def test_plain_precision_without_compile_keeps_the_plain_path():
    assert fast_input_grad(EnergyNet(8), "fp32", False) is None


def test_langevin_with_a_compiled_gradient_matches_and_the_bug_still_raises():
    torch.manual_seed(0)
    model = EnergyNet(8)
    x0 = torch.rand(6, 1, 28, 28) * 2 - 1
    compiled = fast_input_grad(model, "fp32", True, backend="eager")
    torch.manual_seed(3)
    plain = langevin(model, x0, Chain(4, bench.STEP, bench.NOISE, bench.CLAMP))
    for threads in (1, 2):  # one slice is the CUDA path: the chain must come out detached there too
        torch.manual_seed(3)
        fast = langevin(
            model,
            x0,
            Chain(4, bench.STEP, bench.NOISE, bench.CLAMP),
            threads=threads,
            grad_fn=compiled,
        )
        assert torch.allclose(plain, fast, atol=1e-6) and not fast.requires_grad
    # experiment 1 ignores the fast path
    with pytest.raises(RuntimeError, match="does not require grad"):
        langevin(model, x0, Chain(2, 10, 0.005, 0.03), no_grad_bug=True, grad_fn=compiled)


def test_thread_settings_are_restored_after_sampling():
    before = torch.get_num_threads(), sys.getswitchinterval()
    langevin(EnergyNet(8), torch.zeros(4, 1, 28, 28), Chain(2, 10, 0.005, 0.03), threads=2)
    assert (torch.get_num_threads(), sys.getswitchinterval()) == before


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="--keep-freed-memory sets glibc's mallopt"
)
def test_the_benchmark_runs_and_records_its_allocator_setting(tmp_path):
    """A small run of the benchmark script itself (in its own process: the allocator setting is
    process-wide): both loops timed, the same samples, page faults counted, the seed-scale
    projection filled in (that part times real batch-128 iterations: about 15 s in all).
    The CPU alone, as asked, also on a machine with a GPU."""
    out = tmp_path / "bench.json"
    script = Path(__file__).parents[1] / "benchmarks" / "sampler.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--batch",
            "8",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--keep-freed-memory",
            "--devices",
            "cpu",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (cpu,) = json.loads(out.read_text())["results"]
    assert cpu["allocator"].startswith("glibc, freed memory kept")
    assert cpu["reference_img_steps_per_s"] > 0 and cpu["project_img_steps_per_s"] > 0
    assert cpu["max_abs_difference_same_seed"] < 1e-5
    assert set(cpu["page_faults_per_step"]) == {"reference", "project"}
    assert cpu["seed_scale_projection"]["journey_minutes"] > 0
    assert cpu["seed_scale_projection"]["train_s"]["long_run"] > 0
