"""Print how far the judge and the shape tests agree with the labelled samples, per part.

    python tools/label_agreement.py [JUDGE.pt] [PART ...]   # default: checkpoints/judge/judge.pt,
                                                              every part

One markdown table per part (per grid: the person's share read / noise / blob against the
figures'), then the per-tile agreement; docs/experiments.md quotes them.
"""

import sys

from ebm.judge import load_judge
from ebm.labels import agreement, figures_of, load_labelled


def main():
    args = sys.argv[1:]
    path = args.pop(0) if args and args[0].endswith(".pt") else "checkpoints/judge/judge.pt"
    judge = load_judge(path)
    tiles, labels = load_labelled("labels")
    for part in args or list(dict.fromkeys(labels["part"])):
        keep = (labels["part"] == part).to_numpy()
        per_grid, per_tile = agreement(labels[keep], figures_of(judge, tiles[keep]))
        print(f"\n{part} ({per_tile['tiles']} tiles)\n")
        print("| run | grid | person read | read | person noise | noise | person blob | blob |")
        print("|---|---|---|---|---|---|---|---|")
        for row in per_grid.itertuples():
            grid = row.grid.replace("plots/samples/", "").replace("plots/generate/", "generate/")
            print(
                f"| {row.run} | {grid} | {row.person_read:.2f} | {row.read:.2f} | "
                f"{row.person_noise:.2f} | {row.noise:.2f} | {row.person_blob:.2f} | "
                f"{row.blob:.2f} |"
            )
        print(
            f"\nper tile: read vs not read {per_tile['read_agreement']:.3f}; class "
            f"{per_tile['class_agreement']:.3f} of {per_tile['both_read']} tiles both read"
        )


if __name__ == "__main__":
    main()
