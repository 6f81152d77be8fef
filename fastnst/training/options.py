"""The options of a training run that have bounds, declared as every fastnst option is
(config_checks.option): their values are in the YAML configs (conf/train.yaml and its groups,
which trainer= and loss= swap), their help and ranges here. `check_config(cfg, TrainOptions)`
checks a composed config before anything loads; tests/test_configs.py checks that every key
declared here is in the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastnst.config_checks import FROM_CONFIG, SEED_BOUND, Bound, group, option
from fastnst.losses import LossOptions, StyleWeights
from fastnst.vgg import VGG_MIN_SIDE


@dataclass(frozen=True)
class OptimOptions:
    """`optim:` in conf/train.yaml."""

    lr: float = option(FROM_CONFIG, "Adam's peak learning rate", Bound(1e-9, 1.0))
    warmup_steps: int = option(FROM_CONFIG, "linear warm-up, steps", Bound(0, None, integer=True))
    final_lr: float = option(FROM_CONFIG, "learning-rate factor at max_steps (cosine decay)",
                             Bound(0, 1))
    grad_clip: float | None = option(FROM_CONFIG, "gradient norm clip (null: none)",
                                     Bound(1e-12, None, nullable=True))


@dataclass(frozen=True)
class DataOptions:
    """The data group (conf/data/folder.yaml: fastnst.training.data.PhotoDataModule)."""

    crop_size: int = option(FROM_CONFIG, "side of the square training crops, pixels",
                            Bound(VGG_MIN_SIDE, 4096, integer=True))
    short_side: int | None = option(FROM_CONFIG, "photos are scaled to this short side before"
                                    " cropping; null: crop_size",
                                    Bound(VGG_MIN_SIDE, 16384, integer=True, nullable=True))
    batch_size: int = option(FROM_CONFIG, "crops per step", Bound(1, 4096, integer=True))
    workers: int = option(FROM_CONFIG, "loader processes", Bound(0, 256, integer=True))
    val_count: int = option(FROM_CONFIG, "validation photos stylized at every sample step",
                            Bound(0, 1000, integer=True))
    val_size: int = option(FROM_CONFIG, "their long side, pixels",
                           Bound(VGG_MIN_SIDE, 4096, integer=True))


@dataclass(frozen=True)
class TrainerOptions:
    """The Lightning Trainer's arguments that fastnst bounds (the trainer group)."""

    max_steps: int = option(FROM_CONFIG, "training steps (-1: until max_time)",
                            Bound(1, None, integer=True, also=(-1,)))


@dataclass(frozen=True)
class TrainOptions:
    """conf/train.yaml (and distill.yaml, which builds on it)."""

    seed: int = option(FROM_CONFIG, "the seed of the weights, photos and crops", SEED_BOUND)
    style_size: int = option(FROM_CONFIG, "long side of the painting, pixels: the strokes' size",
                             Bound(VGG_MIN_SIDE, 4096, integer=True))
    sample_every: int = option(FROM_CONFIG, "stylize the validation photos every N steps",
                               Bound(1, None, integer=True))
    checkpoint_every: int = option(FROM_CONFIG, "a checkpoint every N steps",
                                   Bound(1, None, integer=True))
    style_factor: float = option(FROM_CONFIG, "multi-style: each style's weight times this",
                                 Bound(0, 1e6))
    optim: OptimOptions = group(OptimOptions)
    data: DataOptions = group(DataOptions)
    trainer: TrainerOptions = group(TrainerOptions)
    loss: LossOptions = group(LossOptions)
    style: StyleWeights = group(StyleWeights)
