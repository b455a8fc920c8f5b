"""Restoring digits with the energy: completion of a hidden region, and denoising.

Completion follows IGEBM (Du & Mordatch 2019, sec. 4.3): the unknown pixels start as noise and
Langevin dynamics runs on the whole image while the known pixels are held fixed, so the chain
samples the hidden region given the visible one. Here the sampler puts the visible pixels back
after its noise and after its gradient step (`ebm.sampler.langevin(fixed=...)`), so they never
change and its gradient always sees them as they are.
Denoising runs a few low-noise Langevin steps from the noisy image: descent on E(x).

Baselines, all non-generative: for completion the hidden region at the background (-1), the
train-mean image's pixels there, and the train digit nearest by its visible pixels (its
pixels fill the hole); for denoising a 3x3 median filter. Images are (N, 1, 28, 28) in [-1, 1].
"""

import numpy as np
import torch

from ebm.sampler import langevin

SIZE = 28
INK_BOX = (4, 24)  # MNIST centres each digit's 20x20 box in the 28x28 frame: rows and columns 4..23


# ---- regions -------------------------------------------------------------------------


def hide(region, n, generator, square=12):
    """(n, 1, 28, 28) bool mask, True where a pixel is hidden. Regions: lower_half, right_half, and
    square: a `square`-sided square at a random place per digit, inside the central 20x20 box."""
    mask = torch.zeros((n, 1, SIZE, SIZE), dtype=torch.bool)
    if region == "lower_half":
        mask[:, :, SIZE // 2 :, :] = True
    elif region == "right_half":
        mask[:, :, :, SIZE // 2 :] = True
    elif region == "square":
        low, high = INK_BOX[0], INK_BOX[1] - square  # top-left corner range, inclusive
        corners = torch.randint(low, high + 1, (n, 2), generator=generator)
        for i, (top, left) in enumerate(corners.tolist()):
            mask[i, :, top : top + square, left : left + square] = True
    else:
        raise ValueError(f"unknown region {region!r}: lower_half | right_half | square")
    return mask


# ---- completion ----------------------------------------------------------------------


def complete(energy, x, hidden, chain, generator):
    """The EBM's completion: hidden pixels from U(-1, 1) (seeded), then Langevin with the visible
    pixels held at their values."""
    start = torch.where(hidden, torch.rand(x.shape, generator=generator) * 2 - 1, x)
    return langevin(energy, start, chain, fixed=~hidden)


def fill_background(x, hidden):
    return torch.where(hidden, torch.full_like(x, -1.0), x)


def fill_mean(x, hidden, train):
    return torch.where(hidden, train.mean(0, keepdim=True).expand_as(x), x)


def fill_nearest(x, hidden, train, chunk=5000):
    """Each digit's hidden pixels from the train digit nearest to it in Euclidean distance over its
    visible pixels only: sum_visible (x - t)^2 = |v x|^2 - 2 (v x).t + v.t^2, with v the visible
    mask."""
    visible = (~hidden).flatten(1).double()
    xs = x.flatten(1).double() * visible
    best, best_dist = (
        torch.zeros(len(x), dtype=torch.long),
        torch.full((len(x),), float("inf"), dtype=torch.float64),
    )
    for start in range(0, len(train), chunk):
        t = train[start : start + chunk].flatten(1).double()
        dist = (xs * xs).sum(1, keepdim=True) - 2 * xs @ t.T + visible @ (t * t).T
        value, index = dist.min(1)
        better = value < best_dist
        best[better], best_dist[better] = index[better] + start, value[better]
    return torch.where(hidden, train[best], x)


def hidden_mse(completed, original, hidden):
    """Mean squared error over the hidden pixels (of every digit together), on the [-1, 1] scale."""
    return float(((completed - original)[hidden] ** 2).mean())


# ---- denoising -----------------------------------------------------------------------


def add_noise(x, sigma, generator):
    """x + N(0, sigma^2) per pixel, clipped to [-1, 1] (the model's domain)."""
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(-1.0, 1.0)


def median3(x):
    """3x3 median filter per image, edges repeated (scipy.ndimage.median_filter, mode 'nearest')."""
    from scipy.ndimage import median_filter

    return torch.from_numpy(median_filter(x.numpy(), size=(1, 1, 3, 3), mode="nearest"))


def psnr(restored, original):
    """Mean over images of 10 log10(peak^2 / MSE), peak = 2 (the [-1, 1] range; the same as
    [0, 1] with peak 1)."""
    mse = ((restored - original) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(4.0 / mse)).mean())


def accuracy(probs, labels):
    """The judge's accuracy: probs (N, 10) digit-class probabilities (rows may sum to < 1),
    argmax as the label."""
    return float((np.asarray(probs).argmax(1) == np.asarray(labels)).mean())
