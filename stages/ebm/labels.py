"""The samples a person labelled by eye (labels/, protocol in docs/labelling.md), and how far
the judge and the shape tests agree with them.

One folder per part (calibration, held_out, committed; split by run), each with tiles.npz
(the tiles as uint8 (N, 28, 28)) and labels.csv (one row per tile: where it was cut from (run,
stage, epoch, step, grid, index), its part, and what the person read: a digit 0-9, or noise /
blob / speck / other / unclear). The judge trains on labels/calibration only, so labelling
more held-out grids leaves it, and every stage after it, as it is.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ebm.data import to_unit_range
from ebm.images import PAD

NOT_DIGIT_KINDS = ("noise", "blob", "speck", "other")
KINDS = ("digit",) + NOT_DIGIT_KINDS + ("unclear",)
PARTS = ("calibration", "held_out", "committed")  # one folder each under labels/
# how a labeller types them
SHORT = {"n": "noise", "b": "blob", "s": "speck", "o": "other", "u": "unclear"}
# The agreement the figures must reach on a held-out part (issue #32; docs/labelling.md).
GRID_SHARE_TOLERANCE = 0.1  # per grid, each share within this of the person's
TILE_AGREEMENT = 0.85  # per tile: read vs not read, and the class of tiles both read


def cut_grid(path, size=28):
    """A grid PNG written by ebm.images.save_grid -> (N, size, size) uint8 tiles, row by row."""
    grid = np.asarray(Image.open(path).convert("L"))
    rows, cols = (grid.shape[0] - PAD) // (size + PAD), (grid.shape[1] - PAD) // (size + PAD)
    return np.stack(
        [
            grid[
                PAD + r * (size + PAD) : PAD + r * (size + PAD) + size,
                PAD + c * (size + PAD) : PAD + c * (size + PAD) + size,
            ]
            for r in range(rows)
            for c in range(cols)
        ]
    )


def kind_of(label):
    """'3' -> 'digit'; 'blob' -> 'blob'."""
    return "digit" if str(label).isdigit() else str(label)


def load_part(root, part):
    """One part's (tiles, labels) from root/<part>/: tiles.npz and labels.csv, whose `tile`
    column is the tile's row in the npz."""
    where = Path(root) / part
    tiles = np.load(where / "tiles.npz")["tiles"]
    labels = pd.read_csv(where / "labels.csv", dtype={"label": str})
    if len(labels) != len(tiles) or (labels["tile"].to_numpy() != np.arange(len(tiles))).any():
        raise ValueError(
            f"{where}: labels.csv does not list tiles.npz's {len(tiles)} tiles in order"
        )
    if (labels["part"] != part).any():
        raise ValueError(f"{where}/labels.csv: rows of another part than {part!r}")
    unknown = sorted(set(labels["label"]) - set(map(str, range(10))) - set(KINDS))
    if unknown:
        raise ValueError(f"{where}/labels.csv: unknown labels {unknown}")
    return tiles, labels


def load_labelled(root="labels", parts=PARTS):
    """(tiles uint8 (N, 28, 28), labels DataFrame with a `kind` column) of every part present,
    in PARTS order; `tile` is renumbered to the row in the returned tiles."""
    found = [
        load_part(root, part) for part in parts if (Path(root) / part / "labels.csv").is_file()
    ]
    if not found:
        raise ValueError(f"{root}: no labelled part ({', '.join(parts)})")
    tiles = np.concatenate([t for t, _ in found])
    labels = pd.concat([lab for _, lab in found], ignore_index=True)
    labels["tile"] = np.arange(len(labels))
    return tiles, labels.assign(kind=labels["label"].map(kind_of))


def judge_examples(root="labels", part="calibration", runs=None):
    """The part's tiles as the judge trains on them: (x float64 (N, 1, 28, 28) in [-1, 1], y) with
    y the digit a person read, or NOT_A_DIGIT for every tile not read (unclear ones included:
    the judge's "read" means as sure as a person's). runs: only these runs' tiles."""
    from ebm.judge import NOT_A_DIGIT

    tiles, labels = load_labelled(root, parts=(part,))
    if runs is not None:
        keep = labels["run"].isin(runs).to_numpy()
        tiles, labels = tiles[keep], labels[keep]
    read = labels["kind"] == "digit"
    y = np.where(read, labels["label"].where(read, "0").astype(int), NOT_A_DIGIT)
    return to_unit_range(tiles).double(), torch.as_tensor(y)


def figures_of(judge, tiles):
    """What the figures say of each tile: DataFrame with read (the judge is sure of a digit),
    read_class, noise and blob (ebm.shapes)."""
    from ebm.quality import RECOGNISABLE, embed
    from ebm.shapes import kinds

    x = to_unit_range(tiles)
    _, probs = embed(judge, x)
    read = probs.max(1) >= RECOGNISABLE
    kind = kinds(x, probs)
    return pd.DataFrame(
        {
            "read": read,
            "read_class": probs.argmax(1),
            "noise": kind == "noise",
            "blob": kind == "blob",
        }
    )


def reading_of_grid(grid, labelled, judge):
    """What a person read on one grid beside what the figures say of the same tiles. labelled:
    (tiles, labels) as `load_labelled` returns them. dict(tiles, person_read, person_noise,
    person_blob, person_kinds (kind -> count), read, noise, blob), or None when that grid has no
    labels, or {"stale": True} when the grid's pixels are no longer the ones labelled (the run
    was repeated since)."""
    tiles, labels = labelled
    mine = (labels["grid"] == Path(grid).as_posix()).to_numpy()
    if not mine.any():
        return None
    tiles, labels = tiles[mine], labels[mine]
    if not Path(grid).is_file() or not np.array_equal(
        cut_grid(grid)[labels["index"].to_numpy()], tiles
    ):
        return {"stale": True}
    figures = figures_of(judge, tiles)
    kind = labels["kind"]
    return {
        "tiles": len(labels),
        "person_read": float((kind == "digit").mean()),
        "person_noise": float((kind == "noise").mean()),
        "person_blob": float((kind == "blob").mean()),
        "person_kinds": {k: int((kind == k).sum()) for k in KINDS if (kind == k).any()},
        "read": float(figures["read"].mean()),
        "noise": float(figures["noise"].mean()),
        "blob": float(figures["blob"].mean()),
    }


def agreement(labels, figures):
    """Per grid: the person's and the figures' shares (read, noise, blob), side by side; and the
    per-tile agreement over all the rows given."""
    both = pd.concat([labels.reset_index(drop=True), figures.reset_index(drop=True)], axis=1)
    both["person_read"] = both["kind"] == "digit"
    both["person_noise"] = both["kind"] == "noise"
    both["person_blob"] = both["kind"] == "blob"
    per_grid = (
        both.groupby(["part", "run", "grid"], sort=False)
        .agg(
            tiles=("tile", "size"),
            person_read=("person_read", "mean"),
            read=("read", "mean"),
            person_noise=("person_noise", "mean"),
            noise=("noise", "mean"),
            person_blob=("person_blob", "mean"),
            blob=("blob", "mean"),
        )
        .reset_index()
    )
    per_grid["worst_gap"] = np.max(
        [(per_grid[f"person_{k}"] - per_grid[k]).abs() for k in ("read", "noise", "blob")], axis=0
    )
    read_both = both[both["person_read"] & both["read"]]
    per_tile = {
        "tiles": len(both),
        "read_agreement": float((both["person_read"] == both["read"]).mean()),
        "both_read": len(read_both),
        "class_agreement": float((read_both["label"].astype(int) == read_both["read_class"]).mean())
        if len(read_both)
        else float("nan"),
    }
    return per_grid, per_tile
