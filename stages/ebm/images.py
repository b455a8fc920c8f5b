"""Sample grids as PNG files (written atomically)."""
import torch
from PIL import Image
from torchvision.utils import make_grid

from ebm.io import atomic_path


def to_uint8(x):
    """[-1, 1] floats -> uint8 in [0, 255] (N, 1, 28, 28); small enough to keep in a checkpoint."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_grid(path, images_uint8, nrow=8):
    """(N, 1, H, W) uint8 -> a grayscale PNG grid, `nrow` images a row, on a mid-grey border.

    torchvision's save_image would write three identical RGB channels; one "L" channel is the
    same picture in a third of the bytes.
    """
    grid = make_grid(images_uint8.float() / 255.0, nrow=nrow, padding=2, pad_value=0.5)[0]
    array = (grid * 255).round().to(torch.uint8).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="L").save(tmp, format="PNG")
