"""A gallery image: evaluation photos (rows) stylized by each style model (columns), and beside
them the Gatys baseline's result for the first photo with both timings.

    python scripts/make_gallery.py [--models a.safetensors ...] [--photos chicago.jpg ...]
                                   [--size 512] [--gatys-iterations 100 | 0]
                                   [-o outputs/gallery.jpg] [--preview docs/gallery.jpg]

Only results are drawn (the photos and paintings themselves are not ours to republish); each
column is labelled with its style and the seconds per photo it took on this machine. The full
gallery is regenerated, not committed; `--preview` also writes a copy with `--preview-size` px
cells, light enough for the repository.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import EVAL_DIR, build_loss, caption, machine, use_shared_data

from fastnst.baseline import GatysOptions
from fastnst.baseline import stylize as gatys
from fastnst.images import grid, read_image, resize_long_side, write_image
from fastnst.model_files import FAST_SUFFIX, is_multi_style, read_metadata, shipped_models
from fastnst.paintings import load_painting
from fastnst.styles import load_style
from fastnst.stylizer import stylize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path,
                        help="default: the shipped full networks, one a style")
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+",
                        default=["chicago.jpg", "golden_gate.jpg", "kodim23.jpg", "amber.jpg"])
    parser.add_argument("--size", type=int, default=512, help="long side of each cell, pixels")
    parser.add_argument("--gatys-iterations", type=int, default=100, help="0: no Gatys column")
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/gallery.jpg"))
    parser.add_argument("--preview", type=Path, help="also write a downscaled copy here")
    parser.add_argument("--preview-size", type=int, default=200, help="its cell size, pixels")
    parser.add_argument("--crops", action="store_true", help="a last row: the middle of the"
                        " first photo's result, --preview-size px of it, at 100%% in the preview")
    args = parser.parse_args()
    use_shared_data()
    models = args.models or sorted(  # the full networks: one column a style
        p for name, p in shipped_models().items()
        if not is_multi_style(p) and not name.endswith(FAST_SUFFIX))
    if not models:
        parser.error("no shipped styles: give --models")
    print(machine())
    photos = [resize_long_side(read_image(args.eval_dir / n), args.size) for n in args.photos]
    columns: list[list[torch.Tensor]] = []
    for model in models:
        backend = load_style(str(model), device="cpu")
        start = time.perf_counter()
        outs = [stylize(backend, p) for p in photos]
        seconds = (time.perf_counter() - start) / len(photos)
        print(f"{backend.style}: {seconds:.2f} s a photo")
        crop = [_middle(outs[0], args.preview_size, args.size)] if args.crops else []
        columns.append([caption(f"{backend.style}, {seconds:.1f} s", args.size), *outs, *crop])
    if args.gatys_iterations:
        style = load_style(str(models[0]), device="cpu").style
        result = gatys(
            photos[0],
            [load_painting(style, max_size=args.size)],
            build_loss(style, torch.device("cpu"), read_metadata(models[0])),
            GatysOptions(size=args.size, iterations=args.gatys_iterations),
            progress=True,
        )
        print(f"Gatys {style}, {args.gatys_iterations} L-BFGS iterations: {result.seconds:.0f} s")
        columns.append([caption(f"Gatys {style}, {result.seconds:.0f} s", args.size),
                        result.image])
    rows = [[col[r] if r < len(col) else torch.ones(1, 3, 1, 1) for col in columns]
            for r in range(max(len(col) for col in columns))]
    image = grid(rows)
    write_image(image, args.output, quality=90)
    print(f"wrote {args.output} ({image.shape[-1]}x{image.shape[-2]})")
    if args.preview:
        small = resize_long_side(image, round(max(image.shape[-2:]) * args.preview_size
                                              / args.size))
        write_image(small, args.preview, quality=85)
        print(f"wrote {args.preview} ({small.shape[-1]}x{small.shape[-2]})")


def _middle(image: torch.Tensor, side: int, cell: int) -> torch.Tensor:
    """The `side` x `side` pixels in the middle of `image`, enlarged (nearest) to `cell` px: the
    preview, at `side` px a cell, shows them at 100%."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    part = image[..., top:top + side, left:left + side]
    return torch.nn.functional.interpolate(part, scale_factor=cell / side, mode="nearest")


if __name__ == "__main__":
    main()
