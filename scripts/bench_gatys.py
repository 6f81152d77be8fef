"""Benchmark the Gatys baseline: seconds per L-BFGS iteration, and the loss after N iterations.

    python scripts/bench_gatys.py   # reads ../shared, or FASTNST_VGG19 and FASTNST_STYLE_DIR

Prints two Markdown tables. The loss uses each style's own config (conf/style/<name>.yaml).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import EVAL_DIR, build_loss, machine, use_shared_data
from common import devices as available_devices

from fastnst.baseline import GatysOptions, stylize
from fastnst.images import read_image
from fastnst.paintings import load_painting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+", default=["chicago.jpg", "golden_gate.jpg",
                                                        "kodim23.jpg"])
    parser.add_argument("--styles", nargs="+", default=["starry_night", "the_scream"])
    parser.add_argument("--timing-sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--timing-iterations", type=int, default=10)
    parser.add_argument("--curve-size", type=int, default=256, help="long side for loss curves")
    parser.add_argument("--after", type=int, nargs="+", default=[50, 100, 300, 500])
    parser.add_argument("--init", default="content", choices=["content", "noise"])
    args = parser.parse_args()
    use_shared_data()

    devices = available_devices()
    print(machine())

    photo = read_image(args.eval_dir / args.photos[0])
    painting = load_painting(args.styles[0])
    print("\n| device | size (long side) | s / L-BFGS iteration |\n|---|---|---|")
    for device in devices:
        loss = build_loss(args.styles[0], device)
        for size in args.timing_sizes:
            stylize(
                photo, [painting], loss, GatysOptions(size=size, iterations=2), progress=False
            )  # warm-up
            r = stylize(
                photo,
                [painting],
                loss,
                GatysOptions(size=size, iterations=args.timing_iterations),
                progress=False,
            )
            print(f"| {device.type} | {size} | {r.seconds / r.iterations:.3f} |", flush=True)

    device = devices[-1]
    after = sorted(args.after)
    print(f"\nTotal loss after N L-BFGS iterations ({args.curve_size} px, init {args.init},"
          f" {device.type}):\n")
    print("| photo | style | start | " + " | ".join(f"{n}" for n in after) + " | seconds |")
    print("|---|---|---|" + "---|" * len(after) + "---|")
    for style in args.styles:
        loss = build_loss(style, device)
        painting = load_painting(style)
        for name in args.photos:
            photo = read_image(args.eval_dir / name)
            r = stylize(
                photo,
                [painting],
                loss,
                GatysOptions(size=args.curve_size, iterations=after[-1], init=args.init),
                progress=False,
            )
            curve = r.losses[0]
            cells = " | ".join(f"{curve[n]['total']:.4g}" for n in after)
            print(f"| {name} | {style} | {curve[0]['total']:.4g} | {cells} | {r.seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
