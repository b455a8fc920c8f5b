"""Cut a 64-tile sample grid into its tiles and draw them enlarged and numbered, for labelling
by eye (docs/labelling.md). Usage: python tools/label_sheet.py GRID.png OUT_PREFIX [--zoom 5]
writes OUT_PREFIX_a.png (tiles 0-31) and OUT_PREFIX_b.png (tiles 32-63)."""

import argparse

from PIL import Image, ImageDraw

from ebm.labels import cut_grid


def sheet(tiles, first, zoom, cols=8):
    """Tiles first..first+31 of (N, 28, 28) uint8, each `zoom` times larger, its index above it."""
    size, label_h, gap = 28 * zoom, 14, 6
    chosen = tiles[first : first + 32]
    rows = -(-len(chosen) // cols)
    canvas = Image.new("L", (cols * (size + gap) + gap, rows * (size + label_h + gap) + gap), 90)
    draw = ImageDraw.Draw(canvas)
    for k, tile in enumerate(chosen):
        x = gap + (k % cols) * (size + gap)
        y = gap + (k // cols) * (size + label_h + gap)
        draw.text((x + 2, y), str(first + k), fill=255)
        canvas.paste(Image.fromarray(tile).resize((size, size), Image.NEAREST), (x, y + label_h))
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("grid")
    parser.add_argument("out_prefix")
    parser.add_argument("--zoom", type=int, default=5)
    args = parser.parse_args()
    tiles = cut_grid(args.grid)
    for half, first in (("a", 0), ("b", 32)):
        if first < len(tiles):
            sheet(tiles, first, args.zoom).save(f"{args.out_prefix}_{half}.png")


if __name__ == "__main__":
    main()
