"""Distil a style's trained network into a fast one: `python -m fastnst.distill style=starry_night`.

The fast network (`model=fast`) learns to reproduce the teacher's results (`teacher=`, default:
the shipped model of the same style) on the training photos, through a pixel term and shallow
VGG19 features (`loss=distill`). It is a training run like any other (conf/distill.yaml builds
on conf/train.yaml): resumable, with samples and logs; it writes `<style>-fast.safetensors`.

A painting given by path with no `teacher=` (`style=path/to/painting.jpg`) has no model to
copy: conf/distill_painting.yaml then starts from the shipped fast network of the nearest
painting and learns from the painting's universal results and its style loss.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fastnst.train import main as train_main


def config_for(overrides: Sequence[str]) -> str:
    """The config a distillation with these Hydra `overrides` runs: `distill_painting` for a
    painting given by path and no `teacher=`, else `distill`."""
    from fastnst.paintings import is_image_path

    keys = {arg.partition("=")[0].lstrip("+~"): arg.partition("=")[2] for arg in overrides}
    painting = "style" in keys and is_image_path(keys["style"])
    return "distill_painting" if painting and "teacher" not in keys else "distill"


def main() -> None:
    """Console entry point: `fastnst-distill` / `python -m fastnst.distill` (Hydra overrides)."""
    train_main(config_name=config_for(sys.argv[1:]), prog="fastnst-distill")


if __name__ == "__main__":
    main()
