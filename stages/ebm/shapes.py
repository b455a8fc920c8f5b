"""What a sample looks like in pixels: noise, blob, speck, or none of them.

The kinds and their thresholds follow a person's reading of the EBM's own samples
(labels/, protocol in docs/labelling.md): each threshold was set on the calibration part
(seeds 43, 44 and 45's grids; VISIBLE on seed 44's) and on the synthetic controls
(`ebm.controls`), never on the held-out parts. The tests are exclusive and taken in this order:

speck   at most SPECK_INK pixels a person sees (brighter than VISIBLE): a nearly empty frame.
noise   texture: at least NOISE_ISOLATED of the ink pixels stand alone (at most one of their
        four neighbours inked), or of the visible pixels (a lattice of faint dots has almost no
        pixel above mid-grey), or the roughness (mean |difference| of neighbouring pixels) is
        at least NOISE_ROUGHNESS. Uniform noise and +-1 speckle meet both; the calibration
        tiles a person called noise have a median isolated share of 0.40 and roughness of 0.38,
        where strokes and blobs keep their ink together (digits' isolated share 0.21 at the 95th
        percentile, roughness 0.19).
blob    a patch thicker than a stroke that the judge does not read as a digit. The ink is first
        closed into a solid shape (Gaussian sigma 1 of the ink mask, above 0.5: the EBM's
        blobs are dithered, with holes a pixel wide). Its mean half-width (the mean distance of
        its pixels to the background) is at least BLOB_HALF_WIDTH, and its largest patch is
        compact: its deepest pixel at least BLOB_COMPACTNESS of the radius of a disc of the same
        area (BLOB_COMPACTNESS when the judge's likeliest class is "not a digit"; a patch it takes
        for some digit, even unsure, must be disc-like: BLOB_COMPACTNESS_DIGIT). A stroke's
        half-width stays near 1.3 however long it is (calibration digits 1.52 and `unclear`
        scrawls 1.54 at the 95th percentile, blobs 1.75 at the median); thickened digits are as
        wide, and their shape keeps them out. A white page (solid ink over more than BLOB_AREA
        of the frame) is no blob.

`probs` are the judge's digit probabilities per image (`ebm.quality.embed`); without them no
image counts as read, and every image as "not a digit".
"""

import numpy as np
import torch
from scipy import ndimage

SPECK_INK = 12  # visible pixels: "about a dozen pixels of ink or fewer" (docs/labelling.md)
# a fifth of the way from black to white: the faintest pixel a person counts. Seed 44's faint
# lattices (noise to the person) show 23-26 such pixels and 7-12 above mid-grey; seed 45's
# sparser ones (speck) 8-13; at -0.8 the barely-lit halo of seed 45's lattice counted as well
VISIBLE = -0.6
# calibration (seeds 43-45; the larger of the ink's and the visible pixels' shares): noise 0.40
# at the median; blobs 0.35, unclear 0.31 and digits 0.21 at the 95th
NOISE_ISOLATED = 0.4
# uniform noise 0.67, +-1 speckle 1.0; digits 0.19 at the 95th; seed 45's dithered blocks 0.33
# at the median (0.3 called them noise), exp 2's textures 0.44-0.46
NOISE_ROUGHNESS = 0.35
# calibration: digits 1.52, unclear 1.54 at the 95th percentile; blobs 1.40 at the 5th, 1.75 at
# the median (1.45-1.55 tried; 1.5 came closest to the person per grid)
BLOB_HALF_WIDTH = 1.5
# calibration blobs 0.66 at the median, seed 45's 0.55 at the 10th; 0.45 came closest to the
# person per grid on both calibration seeds (docs/labelling.md)
BLOB_COMPACTNESS = 0.45
# thickened control digits the judge is unsure of: 0.5 left 5.4% of them blobs (0.05 allowed),
# 0.7 1.2%; discs 0.85 and more
BLOB_COMPACTNESS_DIGIT = 0.7
# of the frame at most: a white page is `other`, a block that runs off the frame a blob
BLOB_AREA = 0.9
SOLID_SIGMA = 1.0  # pixels: the closing that fills dithered holes


def ink_mask(images, above=0.0):
    """(N, H, W) pixels brighter than `above`: the ink (above mid-grey), or with VISIBLE what a
    person sees."""
    return (torch.as_tensor(images).float()[:, 0] > above).cpu().numpy()


def roughness(images):
    """(N, 1, H, W) in [-1, 1] -> (N,) mean |difference| of horizontal and vertical neighbours."""
    x = torch.as_tensor(images).float()
    across = (x[..., :, 1:] - x[..., :, :-1]).abs().mean((1, 2, 3))
    down = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
    return ((across + down) / 2).numpy()


def isolated_share(images, masks=None):
    """(N,) share of ink pixels with at most one of their four neighbours inked (0 without ink);
    with `masks` (N, H, W), the same of the masks' pixels and neighbours."""
    ink = np.pad(ink_mask(images) if masks is None else masks, ((0, 0), (1, 1), (1, 1)))
    neighbours = (
        ink[:, :-2, 1:-1].astype(int) + ink[:, 2:, 1:-1] + ink[:, 1:-1, :-2] + ink[:, 1:-1, 2:]
    )
    inner = ink[:, 1:-1, 1:-1]
    return ((neighbours <= 1) & inner).sum((1, 2)) / np.maximum(inner.sum((1, 2)), 1)


def solid(mask):
    """One ink mask (H, W) closed into a solid shape: dithered holes filled, lone pixels gone."""
    return ndimage.gaussian_filter(mask.astype(float), SOLID_SIGMA, mode="constant") > 0.5


def thickness(images):
    """(N, 1, H, W) -> (N,) mean half-width of the solid ink, (N,) compactness of its largest
    patch (depth of its deepest pixel over the radius of a disc of its area) and (N,) the share of
    the frame the solid ink covers. The frame counts as background: ink that runs off the edge
    ends there."""
    masks = ink_mask(images)
    half_width, compact, area = np.zeros(len(masks)), np.zeros(len(masks)), np.zeros(len(masks))
    for i, mask in enumerate(masks):
        shape = solid(mask)
        if not shape.any():
            continue
        depth = ndimage.distance_transform_edt(np.pad(shape, 1))[1:-1, 1:-1]
        half_width[i], area[i] = depth[shape].mean(), shape.mean()
        patches, _ = ndimage.label(shape)
        largest = patches == (np.argmax(np.bincount(patches.ravel())[1:]) + 1)
        deepest = ndimage.distance_transform_edt(np.pad(largest, 1)).max()
        compact[i] = deepest / np.sqrt(largest.sum() / np.pi)
    return half_width, compact, area


def kinds(images, probs=None):
    """(N,) 'speck', 'noise', 'blob' or '' (none of them) per image. probs: (N, 10) the judge's
    digit probabilities (a read image is never a blob)."""
    from ebm.quality import RECOGNISABLE  # here: ebm.quality imports this module

    n = len(images)
    probs = np.zeros((n, 10)) if probs is None else np.asarray(probs)
    read = probs.max(1) >= RECOGNISABLE
    not_a_digit = 1 - probs.sum(1) > probs.max(1)  # the eleventh class is the likeliest
    visible = ink_mask(images, above=VISIBLE)
    speck = visible.sum((1, 2)) <= SPECK_INK
    isolated = np.maximum(isolated_share(images), isolated_share(images, visible))
    noise = ~speck & ((isolated >= NOISE_ISOLATED) | (roughness(images) >= NOISE_ROUGHNESS))
    half_width, compact, area = thickness(images)
    compact_enough = compact >= np.where(not_a_digit, BLOB_COMPACTNESS, BLOB_COMPACTNESS_DIGIT)
    blob = (
        ~speck
        & ~noise
        & ~read
        & (half_width >= BLOB_HALF_WIDTH)
        & compact_enough
        & (area <= BLOB_AREA)
    )
    return np.where(speck, "speck", np.where(noise, "noise", np.where(blob, "blob", "")))


def is_noise(images):
    return kinds(images) == "noise"


def is_blob(images, probs=None):
    return kinds(images, probs) == "blob"


def shape_figures(images, probs=None):
    """The share of images that are noise, blobs and specks, and the mean roughness."""
    if not len(images):
        return {
            "noise_share": float("nan"),
            "blob_share": float("nan"),
            "speck_share": float("nan"),
            "roughness": float("nan"),
        }
    kind = kinds(images, probs)
    return {
        "noise_share": float((kind == "noise").mean()),
        "blob_share": float((kind == "blob").mean()),
        "speck_share": float((kind == "speck").mean()),
        "roughness": float(roughness(images).mean()),
    }
