"""The figures agree with a person's eye on samples the EBM drew (labels/, docs/labelling.md).

The judge is the judge stage's (conftest.py), trained on the calibration part only; the
held-out part (another training seed's grids) measures it. Per grid, the share the judge reads
as a digit, noise_share and blob_share are each within GRID_SHARE_TOLERANCE of the person's;
per tile, read vs not read and the digit class agree on at least TILE_AGREEMENT.
"""

import numpy as np
import pytest

from ebm.labels import (
    GRID_SHARE_TOLERANCE,
    KINDS,
    TILE_AGREEMENT,
    agreement,
    figures_of,
    load_labelled,
)
from pipeline_repo import ROOT


@pytest.fixture(scope="module")
def labelled():
    return load_labelled(ROOT / "labels")


@pytest.fixture(scope="module")
def held_out(labelled, stage_judge):
    tiles, labels = labelled
    keep = (labels["part"] == "held_out").to_numpy()
    return agreement(labels[keep], figures_of(stage_judge, tiles[keep]))


def test_the_set_is_split_by_run_and_large_enough(labelled):
    tiles, labels = labelled
    assert tiles.dtype == np.uint8 and tiles.shape[1:] == (28, 28) and len(tiles) >= 640
    assert set(labels["kind"]) <= set(KINDS)
    assert (labels.groupby("run")["part"].nunique() == 1).all()  # a run's tiles are all in one part
    assert {"calibration", "held_out"} <= set(labels["part"])


# Measured once, after the method was fixed on the calibration part (docs/labelling.md): the
# per-tile agreement holds on the held-out part (seed 47), the per-grid shares do not yet (read
# off by up to 0.15 on three grids, blob by 0.19 on exp 3's; 8 of 12 grids within 0.1). strict:
# the day they all hold, this fails and the mark must go.
@pytest.mark.xfail(strict=True, reason="issue 32: held-out per-grid shares not yet within 0.1")
def test_each_held_out_grid_share_is_near_the_persons(held_out):
    per_grid, _ = held_out
    far = {}
    for share in ("read", "noise", "blob"):
        gap = (per_grid[share] - per_grid[f"person_{share}"]).abs()
        if (gap > GRID_SHARE_TOLERANCE).any():
            far[share] = per_grid.loc[
                gap > GRID_SHARE_TOLERANCE, ["grid", f"person_{share}", share]
            ]
    assert not far, (
        f"grids where a figure is more than {GRID_SHARE_TOLERANCE} off the person: {far}"
    )


def test_held_out_tiles_agree_with_the_person(held_out):
    _, per_tile = held_out
    assert per_tile["read_agreement"] >= TILE_AGREEMENT, per_tile
    assert per_tile["class_agreement"] >= TILE_AGREEMENT, per_tile


def test_the_committed_runs_tiles_agree_with_the_person(labelled, stage_judge):
    """The second held-out set: the committed run's own final grids, read by eye after the
    figures were fixed (0.891 and 0.923 since seed 44 joined the calibration part)."""
    tiles, labels = labelled
    keep = (labels["part"] == "committed").to_numpy()
    _, per_tile = agreement(labels[keep], figures_of(stage_judge, tiles[keep]))
    assert per_tile["read_agreement"] >= TILE_AGREEMENT, per_tile
    assert per_tile["class_agreement"] >= TILE_AGREEMENT, per_tile
