"""Build labels/<part>/tiles.npz and labels.csv from the labeller's sheets (labels/raw/*.txt).

One raw file per run: a header line `run <name> <part> <directory>`, then one line per grid:
`<grid path under directory> <stage> <epoch> <step> : <64 labels>`, each label a digit or one
letter of ebm.labels.SHORT (n noise, b blob, s speck, o other, u unclear).
A grid no longer on disk (the run's directory was a scratch copy) keeps the tiles it was cut
into before, from labels/<part>/tiles.npz, so a run can move between parts or gain grids.
Usage: python tools/build_labels.py   (from the repository root)
"""

from pathlib import Path

import numpy as np
import pandas as pd

from ebm.labels import SHORT, cut_grid, load_labelled


def tiles_cut_before():
    """(run, grid) -> the grid's tiles as labels/ holds them now (index order)."""
    if not any(Path("labels").glob("*/labels.csv")):
        return {}
    tiles, labels = load_labelled("labels")
    return {
        key: tiles[rows.sort_values("index")["tile"].to_numpy()]
        for key, rows in labels.groupby(["run", "grid"])
    }


def parse(path, before):
    lines = [line.split("#")[0].strip() for line in Path(path).read_text().splitlines()]
    lines = [line for line in lines if line]
    _, run, part, directory = lines[0].split()
    for line in lines[1:]:
        where, marks = line.split(":")
        grid, stage, epoch, step = where.split()
        marks = marks.split()
        if (Path(directory) / grid).is_file():
            tiles = cut_grid(Path(directory) / grid)
        elif (run, grid) in before:
            tiles = before[(run, grid)]
        else:
            raise SystemExit(f"{path}: {Path(directory) / grid} is missing and was never cut")
        if len(marks) != len(tiles):
            raise SystemExit(f"{path}: {grid} has {len(tiles)} tiles and {len(marks)} labels")
        for index, (tile, mark) in enumerate(zip(tiles, marks)):
            label = mark if mark.isdigit() else SHORT[mark]
            yield (
                tile,
                {
                    "run": run,
                    "part": part,
                    "stage": stage,
                    "epoch": int(epoch),
                    "step": int(step),
                    "grid": grid,
                    "index": index,
                    "label": label,
                },
            )


def main():
    parts, before = {}, tiles_cut_before()
    for raw in sorted(Path("labels/raw").glob("*.txt")):
        for tile, row in parse(raw, before):
            tiles, rows = parts.setdefault(row["part"], ([], []))
            tiles.append(tile)
            rows.append(row)
    for part, (tiles, rows) in parts.items():
        where = Path("labels") / part
        where.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(where / "tiles.npz", tiles=np.stack(tiles).astype(np.uint8))
        pd.DataFrame(rows).rename_axis("tile").reset_index().to_csv(
            where / "labels.csv", index=False
        )
        print(f"labels/{part}: {len(rows)} tiles")


if __name__ == "__main__":
    main()
