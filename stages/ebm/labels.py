"""The samples a person labelled by eye (labels/, protocol in docs/labelling.md).

tiles.npz holds the tiles as uint8 (N, 28, 28); labels.csv one row per tile: where it was cut
from (run, stage, epoch, step, grid, index), the part it belongs to (calibration or held-out,
split by run) and what the person read (a digit 0-9, or noise / blob / speck / other / unclear).
"""
import numpy as np
from PIL import Image

from ebm.images import PAD

NOT_DIGIT_KINDS = ("noise", "blob", "speck", "other")
KINDS = ("digit",) + NOT_DIGIT_KINDS + ("unclear",)


def cut_grid(path, size=28):
    """A grid PNG written by ebm.images.save_grid -> (N, size, size) uint8 tiles, row by row."""
    grid = np.asarray(Image.open(path).convert("L"))
    rows, cols = (grid.shape[0] - PAD) // (size + PAD), (grid.shape[1] - PAD) // (size + PAD)
    return np.stack([grid[PAD + r * (size + PAD):PAD + r * (size + PAD) + size,
                          PAD + c * (size + PAD):PAD + c * (size + PAD) + size]
                     for r in range(rows) for c in range(cols)])


def kind_of(label):
    """'3' -> 'digit'; 'blob' -> 'blob'."""
    return "digit" if label.isdigit() else label
