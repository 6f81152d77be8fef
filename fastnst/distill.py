"""Distil a style's trained network into a fast one: `python -m fastnst.distill style=starry_night`.

The fast network (`model=fast`) learns to reproduce the teacher's results (`teacher=`, default:
the shipped model of the same style) on the training photos, through a pixel term and shallow
VGG19 features (`loss=distill`). It is a training run like any other (conf/distill.yaml builds
on conf/train.yaml): resumable, with samples and logs; it writes `<style>-fast.safetensors`.
"""

from __future__ import annotations

from fastnst.train import main as train_main


def main() -> None:
    """Console entry point: `fastnst-distill` / `python -m fastnst.distill` (Hydra overrides)."""
    train_main(config_name="distill", prog="fastnst-distill")


if __name__ == "__main__":
    main()
