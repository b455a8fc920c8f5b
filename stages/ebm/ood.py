"""Telling digits from non-digits by their energy: out-of-distribution (OOD) sets and scores.

A model of p(x) proportional to exp(-E(x)) should give real digits lower energy than anything
else, so -E(x) is an OOD score with no classifier involved (IGEBM, Du & Mordatch 2019, sec. 4.5;
JEM, Grathwohl et al. 2020). Its baseline is a classifier's maximum softmax probability (MSP,
Hendrycks & Gimpel 2017), here the judge's. Both are scored as in those papers: the area under the
ROC curve (AUROC; 1 = every digit scores above every outlier, 0.5 = chance) and the false-positive
rate at 95% true positives (FPR95: the share of outliers accepted when 95% of digits are), with the
digits as positives. Elflein et al. 2021 find EBMs no consistent help for OOD detection; the
figures here say where this one helps and where it does not.

The sets: far-OOD (uniform noise, constant images), manipulated digits (inverted -x, upside down,
rotated 90 degrees), scikit-learn's 8x8 digits (UCI optdigits; other writers, another scanner)
scaled to 28x28 as a near-OOD set, and Fashion-MNIST (Xiao et al. 2017), MNIST's usual near-OOD set,
when a copy is at hand.

AUROC and the ROC curve come from scikit-learn (`roc_auc_score`, `roc_curve`); importing it costs
about 2 s once per stage on 2 cores, against the stage's minute. tests/test_abilities.py checks
both against a hand-computed case.
"""

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ebm import paths
from ebm.io import TooLate, within_deadline

TPR = 0.95  # FPR is read where this share of the digits is accepted


# ---- scores --------------------------------------------------------------------------


def auroc(inliers, outliers):
    """AUROC of a score that should be higher on `inliers` (the positives) than on `outliers`."""
    from sklearn.metrics import roc_auc_score

    labels, scores = _labelled(inliers, outliers)
    return float(roc_auc_score(labels, scores))


def fpr_at_tpr(inliers, outliers, tpr=TPR):
    """The share of outliers scoring at least the threshold that accepts `tpr` of the inliers
    (the ROC curve's first point with TPR >= tpr)."""
    from sklearn.metrics import roc_curve

    labels, scores = _labelled(inliers, outliers)
    fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fprs[np.searchsorted(tprs, tpr - 1e-12)])


def _labelled(inliers, outliers):
    inliers, outliers = np.asarray(inliers, np.float64), np.asarray(outliers, np.float64)
    return np.r_[np.ones(len(inliers)), np.zeros(len(outliers))], np.r_[inliers, outliers]


# ---- the sets ------------------------------------------------------------------------


def uniform_noise(n, generator):
    return torch.rand((n, 1, 28, 28), generator=generator) * 2 - 1


def constant_images(n, generator):
    """Every pixel of an image at one value, drawn uniformly from [-1, 1] per image."""
    return (torch.rand((n, 1, 1, 1), generator=generator) * 2 - 1).expand(n, 1, 28, 28).contiguous()


def manipulated(digits):
    """{name: digits changed}: inverted (-x), upside down (rows flipped), rotated 90 degrees."""
    return {
        "inverted": -digits,
        "upside_down": digits.flip(-2),
        "rotated_90": torch.rot90(digits, 1, (-2, -1)),
    }


def sklearn_digits(n):
    """scikit-learn's bundled 8x8 digits (values 0..16) as 28x28 images in [-1, 1]: scaled
    bilinearly to 20x20 and centred in the frame, as MNIST centres its digits in a 20x20 box."""
    from sklearn.datasets import load_digits

    images = torch.from_numpy(load_digits().images[:n]).float().unsqueeze(1) / 16.0  # [0, 1]
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    return F.pad(images * 2 - 1, [4, 4, 4, 4], value=-1.0)


def read_idx_images(path):
    """An IDX image file (MNIST's format; gzipped or not) -> uint8 (N, rows, cols)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise ValueError(f"{path}: not an IDX file of uint8 images (magic {raw[:4].hex()})")
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * rows * cols:
        raise ValueError(f"{path}: {len(raw) - 16} bytes of pixels, {n} x {rows} x {cols} expected")
    # writable, for torch
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols).copy()


def fashion_mnist(cfg, root=paths.FASHION):
    """(uint8 (N, 28, 28) test images, where they came from) or (None, why not): the local copy at
    cfg.path when set, else torchvision's download of the test split (cfg.download), within
    cfg.download_timeout_s per connection and ten times that in all."""
    if cfg.path is not None:
        return read_idx_images(cfg.path), cfg.path
    if not cfg.download:
        return (
            None,
            "no local copy (abilities.ood.fashion_mnist.path) and download off at this scale",
        )
    from torchvision.datasets import FashionMNIST

    test_only = type(
        "FashionMNIST",
        (FashionMNIST,),
        {"resources": [r for r in FashionMNIST.resources if r[0].startswith("t10k")]},
    )

    def download():
        return test_only(root=root, train=False, download=True).data.numpy()

    try:
        timeout_s = cfg.download_timeout_s
        return within_deadline(download, timeout_s, 10 * timeout_s), f"torchvision ({root})"
    except TooLate:
        why = "no answer in time"
    except Exception as err:  # noqa: BLE001  handed to the caller as the reason it is skipped
        why = " ".join(str(err).split())[:200]
    return None, f"torchvision could not download it ({why})"
