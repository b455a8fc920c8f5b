"""Numbers for samples, measured by the judge (`ebm.judge.LeNet5`).

fld              Frechet distance between the judge's 84-d features of the samples and of the
                 whole test split (FID with LeNet in place of Inception): lower is better.
fld_floor        the same for real train digits (as many as the samples): what real data scores.
fld_ceiling      the same for U(-1, 1) noise images: what no model at all scores.
class_entropy    entropy of the predicted-class histogram / log 10: 1 = every class equally
                 often, 0 = a single class (mode collapse).
confidence       mean max-probability; recognisable: fraction with max-probability >= 0.9.
modes_covered    classes that get at least 2% of the samples (10 = all).

The Frechet distance depends on the number of samples (it is biased upwards for small N),
so the floor and the ceiling are computed at the N of the samples they stand beside.
"""
from typing import TypedDict

import warnings

import numpy as np
import torch
from scipy import linalg

RECOGNISABLE = 0.9      # max-probability at which a sample counts as a recognisable digit
MODE_SHARE = 0.02       # share of samples at which a class counts as covered


@torch.no_grad()
def embed(judge, images, batch_size=500):
    """images float (N, 1, 28, 28) in [-1, 1], any device -> (features (N, 84) float64, probs (N, 10))."""
    device = next(judge.parameters()).device
    judge.eval()
    features, probs = [], []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start:start + batch_size]).to(device, torch.float32)
        f = judge.features(x)
        features.append(f.double().cpu())
        probs.append(torch.softmax(judge.fc3(f).double(), dim=1).cpu())
    if not features:
        return np.zeros((0, 84)), np.zeros((0, 10))
    return torch.cat(features).numpy(), torch.cat(probs).numpy()


def frechet_distance(features_a, features_b):
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (rows = samples)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Dead ReLU units make the covariances singular and sqrtm warn; its result stays accurate
    # (checked against an eigendecomposition of S_a^1/2 S_b S_a^1/2 to 1e-6), so the warning is muted.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():      # a product sqrtm cannot take: nudge both, as pytorch-fid does
            eps = 1e-6 * np.eye(len(cov_a))
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)                  # drop the tiny imaginary parts of numerical error
    diff = mu_a - mu_b
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    return float(max(distance, 0.0))


def class_metrics(probs):
    """Class histogram, its normalised entropy, confidence and coverage of (N, 10) probabilities."""
    probs = np.asarray(probs, np.float64)
    counts = np.bincount(probs.argmax(1), minlength=10) if len(probs) else np.zeros(10, np.int64)
    share = counts / max(len(probs), 1)
    nonzero = share[share > 0]
    max_prob = probs.max(1) if len(probs) else np.zeros(0)
    return {
        "class_entropy": float(max(-(nonzero * np.log(nonzero)).sum() / np.log(10), 0.0)),
        "confidence": float(max_prob.mean()) if len(probs) else float("nan"),
        "recognisable": float((max_prob >= RECOGNISABLE).mean()) if len(probs) else float("nan"),
        "modes_covered": int((share >= MODE_SHARE).sum()),
        "class_counts": [int(c) for c in counts],
    }


class References(TypedDict):
    test_features: np.ndarray   # (len(test), 84) features of the whole test split
    floor: float                # FLD of n train digits vs the test split
    ceiling: float              # FLD of n U(-1, 1) noise images vs the test split
    n: int                      # samples behind the floor and the ceiling


def references(judge, digits, n, seed):
    """The test features and the floor and ceiling at N = n (the floor at min(n, len(train)))."""
    from ebm.data import to_unit_range

    generator = torch.Generator().manual_seed(seed)
    test_features, _ = embed(judge, to_unit_range(digits["x_test"]))
    n_floor = min(n, len(digits["x_train"]))
    picks = torch.randperm(len(digits["x_train"]), generator=generator)[:n_floor].numpy()
    train_features, _ = embed(judge, to_unit_range(digits["x_train"][np.sort(picks)]))
    noise = torch.rand((n, 1, 28, 28), generator=generator) * 2 - 1
    noise_features, _ = embed(judge, noise)
    return References(test_features=test_features, floor=frechet_distance(train_features, test_features),
                      ceiling=frechet_distance(noise_features, test_features), n=n)


def sample_quality(judge, samples, refs):
    """{"fld", "fld_floor", "fld_ceiling", **class_metrics} of samples (N, 1, 28, 28) in [-1, 1]."""
    features, probs = embed(judge, samples)
    return {"fld": frechet_distance(features, refs["test_features"]),
            "fld_floor": refs["floor"], "fld_ceiling": refs["ceiling"], **class_metrics(probs)}
