"""Each style of a multi-style model against its own networks, and a blend strip.

    python scripts/eval_multi.py [--model models/multi.safetensors] [--photos chicago.jpg ...]
                                 [--size 256] [--strip starry_night great_wave --picture s.jpg]

For every style of the model, on the evaluation photos at `--size` px: the structure figure
(luminance SSIM at 64 px, photo vs result) and the style and content losses (the Gatys
baseline's definitions, unweighted) of the style's shipped network (the teacher), its shipped
fast network, and the multi-style model with that style's one-hot mix. The bar is eval_fast.py's
(structure within 0.05 and style loss within 25% of the teacher's); the last column also judges
the multi-style model against the fast network with the same margins. `--strip A B` writes a
picture of two photos blended from style A (0) to style B (1) in steps of 0.25.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import EVAL_DIR, caption, machine, use_shared_data
from eval_fast import STRUCTURE_MARGIN, STYLE_MARGIN

from fastnst.images import grid, read_image, resize_long_side, write_image
from fastnst.model_files import FAST_SUFFIX, load_model
from fastnst.paintings import read_painting, style_config
from fastnst.quality import PAINTING_SIDE, Scores, gatys_yardstick, judge
from fastnst.style_mix import MULTI_MODEL
from fastnst.styles import find_model


def within(ours: Scores, theirs: Scores) -> bool:
    """The bar: structure at most STRUCTURE_MARGIN below, style at most STYLE_MARGIN times."""
    return (ours.structure >= theirs.structure - STRUCTURE_MARGIN
            and ours.style <= STYLE_MARGIN * theirs.style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a multi-style model (default: the shipped)")
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+", help="file names in --eval-dir (default: all)")
    parser.add_argument("--size", type=int, default=256, help="photo long side, pixels")
    parser.add_argument("--strip", nargs=2, metavar=("A", "B"), help="two styles to blend")
    parser.add_argument("--strip-photos", nargs="+", default=["chicago.jpg", "kodim23.jpg"])
    parser.add_argument("--picture", type=Path, default=Path("outputs/blend_strip.jpg"))
    args = parser.parse_args()
    use_shared_data()
    path = args.model or find_model(MULTI_MODEL)
    net, meta = load_model(path)
    styles = meta["styles"]
    names = args.photos or sorted(p.name for p in args.eval_dir.iterdir()
                                  if p.suffix.lower() in (".jpg", ".png"))
    photos = [resize_long_side(read_image(args.eval_dir / n), args.size) for n in names]
    print(machine())
    print(f"\n{path.name}: {len(styles)} styles, {sum(p.numel() for p in net.parameters()):,}"
          f" parameters, {path.stat().st_size / 1e6:.2f} MB; {len(names)} photos at"
          f" {args.size} px. Structure, then style loss (Gatys definitions, unweighted)\n")
    print("| style | teacher | fast network | multi-style model | multi vs teacher (bar) |"
          " multi vs fast network |")
    print("|---|---|---|---|---|---|")
    loss = gatys_yardstick()
    passed = {"teacher": 0, "fast": 0}
    for i, style in enumerate(styles):
        loss.set_style([resize_long_side(read_painting(style_config(style),
                                                       max_size=PAINTING_SIDE), PAINTING_SIDE)])
        mix = net.one_style(i)
        networks = {"teacher": load_model(find_model(style))[0],
                    "fast": load_model(find_model(style + FAST_SUFFIX))[0],
                    "multi": lambda x, m=mix: net(x, m)}
        scores = {}
        for key, network in networks.items():
            with torch.inference_mode():
                scores[key] = Scores.mean([judge(loss, network(p), p) for p in photos])
        m = scores["multi"]
        verdicts = {k: within(m, scores[k]) for k in passed}
        for k, ok in verdicts.items():
            passed[k] += ok
        cells = [f"{s.structure:.2f}, {s.style:.3g}" for s in scores.values()]
        cells += [f"{m.style / scores[k].style:.2f}x, {'pass' if ok else 'FAIL'}"
                  for k, ok in verdicts.items()]
        print(f"| {style} | {' | '.join(cells)} |", flush=True)
    print(f"\nwithin the bar of the teacher: {passed['teacher']} of {len(styles)}; of the fast"
          f" network: {passed['fast']} of {len(styles)}")
    if args.strip:
        a, b = args.strip
        steps = [0.0, 0.25, 0.5, 0.75, 1.0]
        rows = [[caption(f"{a} {1 - t:.0%} / {b} {t:.0%}", args.size) for t in steps]]
        for name in args.strip_photos:
            photo = resize_long_side(read_image(args.eval_dir / name), args.size)
            mixes = [torch.tensor([1 - t if s == a else t if s == b else 0.0 for s in styles])
                     for t in steps]
            with torch.inference_mode():
                rows.append([net(photo, mix) for mix in mixes])
        write_image(grid(rows), args.picture, quality=88)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
