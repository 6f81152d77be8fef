"""Suggest a style weight per style, so that every style pulls about as hard against the content.

    python scripts/style_weights.py [--styles mosaic candy path/to/painting.jpg ...]
                                    [--photos chicago.jpg amber.jpg] [--size 256] [--target 6.7e6]

Styles differ by more than 10x in how far a photo's VGG Gram matrices are from theirs (the
unweighted style loss of the photo itself, S), so one style weight over-stylizes some and barely
touches others. The suggestion is `target / S`, S averaged over the photos: the weighted style
loss of an unchanged photo is then `target` for every style. The default target comes from
mosaic, whose network kept the photo's structure from step 100 with weight 2 (S = 3.2e6) and lost
it entirely with weight 5 and 20 (content loss above that of a flat grey image). Prints Markdown.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from common import SHARED, machine, use_shared_data
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from fastnst.images import read_image, resize_long_side
from fastnst.style_images import load_style_image, style_config, style_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", nargs="+", help="style names or image paths (default: all)")
    parser.add_argument("--eval-dir", type=Path, default=SHARED / "data" / "eval")
    parser.add_argument("--photos", nargs="+", default=["chicago.jpg", "amber.jpg"])
    parser.add_argument("--size", type=int, default=256, help="long side of photo and style, px")
    parser.add_argument("--target", type=float, default=6.7e6,
                        help="weighted style loss of an unchanged photo")
    args = parser.parse_args()
    use_shared_data()
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        loss = instantiate(compose(config_name="gatys").loss)
    photos = [resize_long_side(read_image(args.eval_dir / n), args.size) for n in args.photos]
    print(machine())
    print(f"\nphotos {', '.join(args.photos)} at {args.size} px; target {args.target:.3g}\n")
    print("| style | S (unweighted style loss of the photo) | configured weight | suggested |")
    print("|---|---|---|---|")
    for style in args.styles or style_names():
        loss.set_style([load_style_image(style, max_size=args.size)])
        with torch.no_grad():
            s = statistics.mean(float(loss(p, content=p, style_weight=1.0)["style"])
                                for p in photos)
        configured = (style_config(style).style_weight if style in style_names() else "-")
        print(f"| {style} | {s:.3g} | {configured} | {args.target / s:.2g} |", flush=True)


if __name__ == "__main__":
    main()
