"""Stylize a photo with an exported fastnst model, using only numpy, Pillow and ONNX Runtime.

    python scripts/onnx_demo.py starry_night.onnx photo.jpg stylized.png [--max-size 1024]
    python scripts/onnx_demo.py multi.onnx photo.jpg blend.png --mix starry_night:0.6,great_wave:0.4

This is all a product needs: no fastnst, no PyTorch. The model takes `image` (N, 3, H, W) float32
RGB in [0, 1] and returns `stylized`, the same; H and W at least the model's `min_side`. A
multi-style model (`fastnst-export --style multi`) also takes `style_weights`, one float32 per
style named in its `styles` metadata (a JSON list): one-hot for a style, any non-negative weights
for a blend (the graph normalises them to sum 1).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("photo")
    parser.add_argument("output")
    parser.add_argument("--max-size", type=int, default=1024, help="long side, pixels")
    parser.add_argument("--mix", help="a multi-style model's styles and weights: a:0.6,b:0.4"
                                      " (default: its first style)")
    args = parser.parse_args()

    # The fastest local accelerator ONNX Runtime has here, else the CPU.
    local = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider",
             "CPUExecutionProvider")
    providers = [p for p in local if p in ort.get_available_providers()]
    session = ort.InferenceSession(args.model, providers=providers)
    meta = session.get_modelmeta().custom_metadata_map
    # Plain raster formats only: some of Pillow's other decoders run programs (EPS).
    photo = Image.open(args.photo, formats=["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
    photo = ImageOps.exif_transpose(photo).convert("RGB")
    photo.thumbnail((args.max_size, args.max_size), Image.Resampling.LANCZOS)
    x = np.asarray(photo, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    h, w = x.shape[-2:]
    side = int(meta.get("min_side", 1))
    x = np.pad(x, ((0, 0), (0, 0), (0, max(0, side - h)), (0, max(0, side - w))), mode="edge")
    feeds = {"image": x}
    style = meta.get("style", "?")
    if "styles" in meta:  # a multi-style model: the weights of its styles, in its order
        styles = json.loads(meta["styles"])
        weights = np.zeros(len(styles), np.float32)
        for part in (args.mix or styles[0]).split(","):
            name, _, weight = part.partition(":")
            if name not in styles:
                parser.error(f"{name}: not one of the model's styles ({', '.join(styles)})")
            weights[styles.index(name)] = float(weight or 1)
        feeds[meta["style_input"]] = weights
        style = args.mix or styles[0]
    y = session.run(["stylized"], feeds)[0][..., :h, :w]
    pixels = (y[0].transpose(1, 2, 0).clip(0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(args.output)
    print(f"wrote {args.output} ({w}x{h}, style {style}, {session.get_providers()[0]})")


if __name__ == "__main__":
    main()
