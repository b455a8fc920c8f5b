"""The abilities stage's module: completion with clamped pixels, its baselines, denoising, and the
OOD scores (ebm.restore, ebm.ood). The stage itself runs end to end in the tiny pipeline
(tests/test_pipeline.py)."""

import gzip
from dataclasses import replace

import numpy as np
import pytest
import torch

from ebm import ood, restore
from ebm.config import FashionMnist
from ebm.model import EnergyNet
from ebm.sampler import Chain


@pytest.fixture
def energy():
    torch.manual_seed(0)
    return EnergyNet(width=8).eval().requires_grad_(False)


@pytest.mark.parametrize("region", ["lower_half", "right_half", "square"])
def test_clamped_pixels_never_change(energy, region):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((6, 1, 28, 28), generator=generator) * 2 - 1
    hidden = restore.hide(region, len(x), generator, square=12)
    # large steps and noise: every free pixel moves, so a leak into the clamped ones would show
    chain = Chain(steps=8, step_size=100.0, noise_std=0.5, grad_clamp=1.0)
    torch.manual_seed(1)
    out = restore.complete(energy, x, hidden, chain, generator)
    assert torch.equal(out[~hidden], x[~hidden])
    assert (out[hidden] != x[hidden]).float().mean() > 0.9
    assert out.min() >= -1 and out.max() <= 1


def test_regions():
    generator = torch.Generator().manual_seed(0)
    lower, right = (
        restore.hide("lower_half", 2, generator),
        restore.hide("right_half", 2, generator),
    )
    assert lower[:, :, 14:].all() and not lower[:, :, :14].any()
    assert right[:, :, :, 14:].all() and not right[:, :, :, :14].any()
    square = restore.hide("square", 200, generator, square=12)
    assert (square.flatten(1).sum(1) == 144).all()
    rows, cols = square.any(-1), square.any(-2)  # the square stays inside the central 20x20
    assert not rows[..., :4].any() and not rows[..., 24:].any() and not cols[..., :4].any()
    with pytest.raises(ValueError, match="unknown region 'top_half'"):
        restore.hide("top_half", 2, generator)


def test_baselines_fill_only_the_hole():
    generator = torch.Generator().manual_seed(0)
    train = torch.rand((50, 1, 28, 28), generator=generator) * 2 - 1
    x = train[[7, 21]].clone()
    x[0, :, 14:] = 0.3  # digit 7's lower half differs; its upper half is exact
    hidden = restore.hide("lower_half", 2, generator)
    nearest = restore.fill_nearest(x, hidden, train, chunk=16)  # chunks: the best across them wins
    assert torch.equal(nearest, train[[7, 21]])
    assert torch.equal(restore.fill_background(x, hidden)[hidden], torch.full((2 * 14 * 28,), -1.0))
    mean = restore.fill_mean(x, hidden, train)
    assert torch.allclose(mean[0, :, 14:], train.mean(0)[:, 14:]) and torch.equal(
        mean[~hidden], x[~hidden]
    )
    assert restore.hidden_mse(nearest, train[[7, 21]], hidden) == 0.0


def test_psnr_median_and_accuracy():
    x = -torch.ones((2, 1, 28, 28))
    # MSE 0.04, peak-to-peak 2: 10 log10(100)
    assert restore.psnr(x + 0.2, x) == pytest.approx(20.0)
    salted = x.clone()
    salted[:, :, 10, 10] = 1.0
    assert torch.equal(restore.median3(salted), x)
    probs = np.array([[0.1, 0.7, 0.1], [0.5, 0.2, 0.1]])  # rows may sum to < 1
    assert restore.accuracy(probs, [1, 2]) == 0.5


def test_auroc_and_fpr95_on_a_hand_computed_case():
    inliers, outliers = [3.0, 2.0, 0.5], [1.0, 0.0, 2.0]
    # pairs (in, out) with in > out: 3 beats all 3, 2 beats 1 and 0 and ties 2 (a half), 0.5 beats 0
    assert ood.auroc(inliers, outliers) == pytest.approx(6.5 / 9)
    # 95% of the inliers are accepted only at threshold 0.5, which accepts the outliers 1.0 and 2.0
    assert ood.fpr_at_tpr(inliers, outliers) == pytest.approx(2 / 3)
    assert ood.auroc([5, 6], [1, 2]) == 1.0 and ood.fpr_at_tpr([5, 6], [1, 2]) == 0.0


def test_ood_sets():
    generator = torch.Generator().manual_seed(0)
    for images in (
        ood.uniform_noise(5, generator),
        ood.constant_images(5, generator),
        ood.sklearn_digits(5),
    ):
        assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    constant = ood.constant_images(3, generator)
    assert (constant.flatten(1).std(1) == 0).all()
    digits = torch.rand((2, 1, 28, 28), generator=generator)
    changed = ood.manipulated(digits)
    assert torch.equal(changed["inverted"], -digits)
    assert torch.equal(changed["upside_down"][:, :, 0], digits[:, :, -1])
    assert torch.equal(changed["rotated_90"][0, 0, :, 0], digits[0, 0, 0].flip(0))


def test_fashion_mnist_from_a_local_idx_file(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, 28, 28)
    raw = (
        b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (3, 28, 28)) + images.tobytes()
    )
    (tmp_path / "t10k.gz").write_bytes(gzip.compress(raw))
    cfg = FashionMnist(path=str(tmp_path / "t10k.gz"), download=False, download_timeout_s=1.0)
    read, source = ood.fashion_mnist(cfg)
    assert np.array_equal(read, images) and source == cfg.path
    read, why = ood.fashion_mnist(replace(cfg, path=None))
    assert read is None and why.startswith("no local copy")
