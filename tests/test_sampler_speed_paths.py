"""The fast sampler computes what the plain tutorial loop computes (fp32, CPU, same seed)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from ebm.model import EnergyNet
from ebm.sampler import langevin

spec = importlib.util.spec_from_file_location("bench", Path(__file__).parents[1] / "benchmarks" / "sampler.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fast_sampler_matches_the_tutorial_loop(threads):
    torch.manual_seed(0)
    model = EnergyNet(16)
    x0 = torch.rand(12, 1, 28, 28) * 2 - 1
    torch.manual_seed(5)
    plain = bench.reference_loop(model, x0, steps=8)
    torch.manual_seed(5)
    fast = langevin(model, x0, 8, bench.STEP, bench.NOISE, bench.CLAMP, threads=threads)
    assert torch.allclose(plain, fast, atol=1e-5), (plain - fast).abs().max()
    assert torch.get_num_threads() >= 1 and all(p.requires_grad for p in model.parameters())


def test_no_grad_bug_reaches_the_worker_threads():
    """Grad mode is per thread: the bug must still raise when slices run on other threads."""
    with pytest.raises(RuntimeError, match="does not require grad"):
        langevin(EnergyNet(8), torch.zeros(4, 1, 28, 28), 2, 10, 0.005, 0.03, no_grad_bug=True, threads=2)
