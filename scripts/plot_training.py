"""Plot a training run's loss curves (train and validation, content and style) to a PNG.

    python scripts/plot_training.py outputs/train/starry_night/<run> [-o curve.png]

Reads the run's `csv/metrics.csv`; needs matplotlib (`pip install -e ".[dev]"`). Also prints the
validation losses as a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib.pyplot as plt

from fastnst.files import atomic_path


def read_metrics(run: Path) -> dict[str, dict[int, float]]:
    """`{metric: {step: value}}` from `<run>/csv/metrics.csv`."""
    series: dict[str, dict[int, float]] = {}
    with open(run / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value and key not in ("step", "epoch"):
                    series.setdefault(key, {})[int(row["step"])] = float(value)
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of fastnst.train")
    parser.add_argument("-o", "--output", type=Path, help="default: <run>/loss_curve.png")
    args = parser.parse_args()
    metrics = read_metrics(args.run)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, split in zip(axes, ("train", "val"), strict=True):
        for term in ("total", "style", "content"):
            points = metrics.get(f"{split}/{term}", {})
            if points:
                ax.plot(list(points), list(points.values()), label=term,
                        marker="o" if split == "val" else None, markersize=3)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title({"train": "training batches", "val": "validation photos"}[split])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{args.run.name}: weighted loss terms")
    output = args.output or args.run / "loss_curve.png"
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=100)
    print(f"wrote {output}")
    val = metrics.get("val/total", {})
    if val:
        print("\n| step | val total | val content | val style |\n|---|---|---|---|")
        for step, total in val.items():
            print(f"| {step} | {total:.4g} | {metrics['val/content'][step]:.4g} |"
                  f" {metrics['val/style'][step]:.4g} |")


if __name__ == "__main__":
    main()
