"""Suggest a style weight per style, so that every style pulls as hard against the photo.

    python scripts/style_weights.py [--styles mosaic candy path/to/painting.jpg ...]
                                    [--photos-dir ../shared/data/train] [--count 8] [--size 256]
                                    [--balance 2]

The rule (fastnst.quality.balanced_style_weight): weight = balance x G / S, where S is the
unweighted style loss of an unchanged photo against the painting and G the content loss of a
flat grey image, both at `--size` px and averaged over the photos. Styles differ by more than
10x in S, so one weight over-stylizes some and barely touches others; with this rule the style
term of an unchanged photo is `balance` times what erasing the photo costs, for every style. A
balance of 2 was measured best for a 3-minute the_scream network (docs/training_recipes.md): at
13 (the old weights) the networks erased the photo, at 4 they kept only its outlines. The photos
are training photos (every N-th file), never the evaluation set. Prints Markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import TRAIN_DIR, machine, use_shared_data

from fastnst.images import read_image, resize_long_side
from fastnst.paintings import load_painting, style_config, style_names
from fastnst.quality import BALANCE, balanced_style_weight, gatys_yardstick
from fastnst.training.data import find_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", nargs="+", help="style names or image paths (default: all)")
    parser.add_argument("--photos-dir", type=Path, default=TRAIN_DIR)
    parser.add_argument("--count", type=int, default=8, help="photos, spread over the folder")
    parser.add_argument("--size", type=int, default=256, help="long side of photo and style, px")
    parser.add_argument("--balance", type=float, default=BALANCE)
    args = parser.parse_args()
    use_shared_data()
    files = find_images(args.photos_dir)
    files = files[:: max(1, len(files) // args.count)][: args.count]
    photos = [resize_long_side(read_image(f), args.size) for f in files]
    loss = gatys_yardstick()
    print(machine())
    print(f"\n{len(photos)} photos from {args.photos_dir} at {args.size} px; balance"
          f" {args.balance:g}\n")
    print("| style | S (style loss of the photo) | G (content loss of grey) | configured |"
          " suggested |")
    print("|---|---|---|---|---|")
    for style in args.styles or style_names():
        loss.set_style([load_painting(style, max_size=args.size)])
        weight, s, g = balanced_style_weight(loss, photos, args.balance)
        configured = style_config(style).style_weight if style in style_names() else "-"
        print(f"| {style} | {s:.3g} | {g:.3g} | {configured} | {weight:.2g} |", flush=True)


if __name__ == "__main__":
    main()
