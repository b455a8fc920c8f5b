"""Sample grids as PNG files (written atomically)."""
import math

import torch
from PIL import Image

from ebm.io import atomic_path


def to_uint8(x):
    """[-1, 1] floats -> uint8 in [0, 255] (N, 1, 28, 28); small enough to keep in a checkpoint."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_grid(images, nrow=8, padding=2, pad_value=0.5):
    """torchvision.utils.make_grid for (N, 1, H, W) floats, channel 0 only: the same pixels,
    without importing torchvision (seconds per stage process)."""
    n, _, h, w = images.shape
    if n == 1:                  # as torchvision: one image is returned as it is, unpadded
        return images[0, 0].clone()
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full((rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value))
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[top:top + h, left:left + w] = images[k, 0]
    return grid


def save_grid(path, images_uint8, nrow=8):
    grid = make_grid(images_uint8.float() / 255.0, nrow=nrow, padding=2, pad_value=0.5)
    array = (grid * 255).round().to(torch.uint8).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="L").save(tmp, format="PNG")
