"""What a sample looks like in pixels, without the judge: noise, blob, or neither.

Two per-image tests, each with one threshold set on images whose answer a person knows
(`ebm.controls`; the figures measured on them are in docs/experiments.md):

noise   roughness: the mean absolute difference between neighbouring pixels. Uniform noise
        scores 0.67, +-1 speckle 1.0 (a sparse 10% speckle 0.36); a digit's ink changes only
        at its edges: real test digits 0.14 at the median, 0.18 at the 95th percentile, and the
        same thickened and binarised. Noise: roughness >= NOISE_ROUGHNESS.
blob    a compact shape thicker than any stroke. Of the largest connected patch of ink
        (pixels > 0), the depth of its deepest pixel (distance to the background, the frame
        counting as background) against the radius of a disc of the same area: a filled disc
        scores 1, a stroke of any width much less, because its area grows with its length and
        its depth does not. Gaussian and sharp discs of digit size score 0.85 or more in 95 of
        100; real digits 0.51 at the 95th percentile, digits thickened by a pixel and binarised
        0.65 (0.76 at the 99th, 1.3% of them above BLOB_COMPACTNESS). A blob also needs a depth
        of at least BLOB_DEPTH pixels, so a speck is not one, and at most BLOB_AREA of the
        frame, so a white page is not one.
"""
import numpy as np
import torch
from scipy import ndimage

NOISE_ROUGHNESS = 0.25  # between real digits' 95th percentile (0.18) and sparse speckle's 5th (0.30)
BLOB_COMPACTNESS = 0.75  # between thickened digits' 99th percentile (0.76) and discs' 5th (0.85)
BLOB_DEPTH = 3.0         # pixels from the edge to the patch's centre: a stroke of real digits reaches 2
BLOB_AREA = 0.45         # of the frame at most: a disc of radius 10 (the largest control disc) covers 0.40,
                         # half a page 0.5


def roughness(images):
    """(N, 1, H, W) in [-1, 1] -> (N,) mean |difference| of horizontal and vertical neighbours."""
    x = torch.as_tensor(images).float()
    across = (x[..., :, 1:] - x[..., :, :-1]).abs().mean((1, 2, 3))
    down = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
    return ((across + down) / 2).numpy()


def compactness(images):
    """(N, 1, H, W) -> (N,) compactness, (N,) depth and (N,) area (share of the frame) of each
    image's largest patch of ink."""
    ink = (torch.as_tensor(images).float()[:, 0] > 0).cpu().numpy()
    compact, depth, area = np.zeros(len(ink)), np.zeros(len(ink)), np.zeros(len(ink))
    for i, mask in enumerate(ink):
        labels, count = ndimage.label(mask)
        if not count:
            continue
        largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        # one pixel of background around the frame: ink that runs off the edge ends there
        depth[i] = ndimage.distance_transform_edt(np.pad(largest, 1)).max()
        compact[i] = depth[i] / np.sqrt(largest.sum() / np.pi)
        area[i] = largest.mean()
    return compact, depth, area


def is_noise(images):
    return roughness(images) >= NOISE_ROUGHNESS


def is_blob(images):
    compact, depth, area = compactness(images)
    return (compact >= BLOB_COMPACTNESS) & (depth >= BLOB_DEPTH) & (area <= BLOB_AREA)


def shape_figures(images):
    """The share of images that are noise and that are blobs, and the mean roughness."""
    if not len(images):
        return {"noise_share": float("nan"), "blob_share": float("nan"), "roughness": float("nan")}
    return {"noise_share": float(is_noise(images).mean()), "blob_share": float(is_blob(images).mean()),
            "roughness": float(roughness(images).mean())}
