"""How many Gatys L-BFGS iterations is a style network worth? Measured on the evaluation photos.

    python scripts/eval_quality.py [--models a.safetensors ...] [--photos chicago.jpg ...]
                                   [--size 512] [--after 50 100 300]

For each style model (default: the shipped ones) and photo, at `--size` px long side: the
network's total loss under its style's own loss config (conf/style/<style>.yaml, painting at
the same long side), and the loss the Gatys baseline reaches with that config after N iterations
from noise and from the photo. "Worth" is the first iteration at which Gatys gets below the
network (">N" when it never does within the run). Johnson et al. report their networks match 50
to 100 iterations. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import (
    add_model_and_photo_args,
    build_loss,
    devices,
    machine,
    models_and_photos,
    use_shared_data,
)

from fastnst.baseline import GatysOptions
from fastnst.baseline import stylize as gatys
from fastnst.images import read_image, resize_long_side
from fastnst.model_files import load_model
from fastnst.paintings import load_painting


def worth(curve: list[float], target: float) -> str:
    """First iteration whose loss is at or below `target`, as text ('>N' if none)."""
    hit = next((i for i, value in enumerate(curve) if value <= target), None)
    return f">{len(curve) - 1}" if hit is None else str(hit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_and_photo_args(parser)
    parser.add_argument("--size", type=int, default=512, help="long side, pixels")
    parser.add_argument("--after", type=int, nargs="+", default=[50, 100, 300])
    parser.add_argument("--inits", nargs="+", default=["noise", "content"])
    args = parser.parse_args()
    use_shared_data()
    device = devices()[-1]
    models, names = models_and_photos(parser, args)
    after = sorted(args.after)
    print(machine())
    print(f"\n{args.size} px long side, {len(names)} photos, device {device.type}\n")
    header = " | ".join(f"{init} {n}" for init in args.inits for n in after)
    print(f"| style | photo | network | {header} | worth ({', '.join(args.inits)}) |")
    print("|---|---|---|" + "---|" * (len(after) * len(args.inits)) + "---|")
    summary: dict[str, list[str]] = {}
    curves: dict[tuple, list[float]] = {}  # one Gatys run serves models of one loss
    styles = [load_model(model)[1]["style"] for model in models]
    for model in models:
        net, meta = load_model(model, device)
        style = meta["style"]
        # Two models of one style (a retrained one against the shipped one) are told apart.
        label = style if styles.count(style) == 1 else f"{style} ({model.parent.name})"
        loss = build_loss(style, device, meta)
        painting = load_painting(style, max_size=args.size)
        for name in names:
            photo = resize_long_side(read_image(args.eval_dir / name), args.size).to(device)
            loss.set_style([resize_long_side(painting, args.size).to(device)])
            with torch.no_grad():
                network = loss(net(photo), content=photo)["total"].item()
            cells, worths = [], []
            weights = (loss.content_weight, loss.style_weight, loss.tv_weight,
                       loss.pixel_weight, str(loss.content_layers), str(loss.style_layers))
            for init in args.inits:
                key = (style, name, init, weights)
                if key not in curves:
                    start = time.perf_counter()
                    result = gatys(
                        photo.cpu(),
                        [painting],
                        loss,
                        GatysOptions(size=args.size, iterations=after[-1], init=init),
                        progress=False,
                    )
                    curves[key] = [h["total"] for h in result.losses[0]]
                    print(f"  ({style}, {name}, init {init}: {time.perf_counter() - start:.0f}"
                          " s)", flush=True)
                curve = curves[key]
                cells += [f"{curve[n]:.3g}" for n in after]
                worths.append(worth(curve, network))
            summary.setdefault(label, []).extend(worths)
            print(f"| {label} | {name} | {network:.3g} | {' | '.join(cells)} |"
                  f" {', '.join(worths)} |", flush=True)
    print("\n| style | Gatys iterations the network is worth (median over photos and inits) |")
    print("|---|---|")
    for style, values in summary.items():
        numeric = [int(v.lstrip(">")) for v in values]
        print(f"| {style} | {statistics.median(numeric):.0f}"
              f"{' (some runs never reached it)' if any(v.startswith('>') for v in values) else ''}"
              " |")


if __name__ == "__main__":
    main()
