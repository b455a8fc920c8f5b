"""Sample grids as PNG files (written atomically)."""

import math

import torch
from PIL import Image

from ebm.io import atomic_path

PAD, PAD_VALUE = 2, 128  # a 2-pixel mid-grey border around every image


def to_uint8(x):
    """[-1, 1] floats -> uint8 in [0, 255] (N, 1, 28, 28); small enough to keep in a checkpoint."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def tile(images_uint8, nrow=8):
    """(N, 1, H, W) uint8 -> one (rows * (H + 2) + 2, cols * (W + 2) + 2) uint8 grid, `nrow` images
    a row: the layout of torchvision's make_grid(padding=2, pad_value=0.5), which
    tests/test_module.py checks pixel for pixel. Not make_grid itself: importing torchvision
    costs 3.7 s, paid by every stage that saves a grid (13 of a journey's processes)."""
    n, _, h, w = images_uint8.shape
    if n == 1:
        return images_uint8[0, 0]  # make_grid's too: one image, no border
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full(
        (rows * (h + PAD) + PAD, cols * (w + PAD) + PAD), PAD_VALUE, dtype=torch.uint8
    )
    for i, image in enumerate(images_uint8):
        top, left = (i // cols) * (h + PAD) + PAD, (i % cols) * (w + PAD) + PAD
        grid[top : top + h, left : left + w] = image[0]
    return grid


def save_grid(path, images_uint8, nrow=8):
    """(N, 1, H, W) uint8 -> a grayscale PNG grid, `nrow` images a row, on a mid-grey border.
    One "L" channel: torchvision's save_image would write three identical RGB channels."""
    with atomic_path(path) as tmp:
        Image.fromarray(tile(images_uint8, nrow).numpy(), mode="L").save(tmp, format="PNG")
