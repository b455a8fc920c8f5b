"""Images that are no digit, for the judge's eleventh class (`ebm.judge.NOT_A_DIGIT`).

The textbook non-digits: uniform noise, +-1 speckle of any density, smooth grey noise, soft or
sharp ellipses and constant greys. Every image is float64 (1, 28, 28) in [-1, 1], drawn from
the generator it is given; the controls (`ebm.controls`) use their own. What the EBM itself
draws that is no digit comes to the judge from samples a person read (`ebm.labels`): synthetic
look-alikes of it (blotchy noise, ragged blobs, blocks, crosses, clumped specks) were tried
and did not bring the judge closer to the person (docs/labelling.md).
"""

import torch
from torch.nn import functional as F

SIZE = 28


def _rand(generator, *shape):
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def blur(x, sigma):
    """Gaussian blur of (N, 1, H, W) with one sigma per image (a separable 15-tap kernel)."""
    taps = torch.arange(-7, 8, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (N, 15)
    n = len(x)
    rows = F.conv2d(
        F.pad(x.transpose(0, 1), (7, 7, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=n
    )
    both = F.conv2d(F.pad(rows, (0, 0, 7, 7), mode="replicate"), kernel[:, None, :, None], groups=n)
    return both.transpose(0, 1)


def _grid():
    return torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float64),
        torch.arange(SIZE, dtype=torch.float64),
        indexing="ij",
    )


def ellipses(n, generator):
    """One to three white ellipses on black, each edge soft or sharp at random."""
    yy, xx = _grid()
    out = torch.full((n, SIZE, SIZE), -1.0, dtype=torch.float64)
    for k in range(3):
        centre = 4 + _rand(generator, n, 2) * (SIZE - 8)
        radii = 2 + _rand(generator, n, 2) * 9
        sharp = 1 + _rand(generator, n) * 9
        dist = ((yy - centre[:, 0, None, None]) / radii[:, 0, None, None]) ** 2 + (
            (xx - centre[:, 1, None, None]) / radii[:, 1, None, None]
        ) ** 2
        shape = torch.tanh((1 - dist.sqrt()) * sharp[:, None, None])
        used = (torch.rand(n, generator=generator) < (1.0 if k == 0 else 0.4))[:, None, None]
        out = torch.where(used, torch.maximum(out, shape), out)
    return out[:, None]


def non_digits(n, generator):
    """n images of class NOT_A_DIGIT: uniform noise, +-1 speckle of any density, smooth noise,
    ellipses and constant greys, in equal shares, each with random strength."""
    if n == 0:
        return torch.empty((0, 1, SIZE, SIZE), dtype=torch.float64)
    kind = torch.randint(0, 5, (n,), generator=generator)
    level = _rand(generator, n, 1, 1, 1)
    uniform = _rand(generator, n, 1, SIZE, SIZE) * 2 - 1
    speckle = torch.where(_rand(generator, n, 1, SIZE, SIZE) < level, 1.0, -1.0)
    smooth = blur(uniform, 1.5 + 2.5 * _rand(generator, n))
    smooth = smooth / smooth.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-6)
    constant = (level * 2 - 1).expand(n, 1, SIZE, SIZE)
    options = torch.stack(
        [uniform * (0.3 + 0.7 * level), speckle, smooth, ellipses(n, generator), constant]
    )
    return options[kind, torch.arange(n)]
