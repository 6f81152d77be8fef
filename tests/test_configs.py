"""Every config combination composes, passes its bounds and builds what it names."""

from __future__ import annotations

import inspect

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from fastnst.baseline import GATYS_BOUNDS
from fastnst.config_checks import check_config
from fastnst.paintings import style_names
from fastnst.training.options import TrainOptions
from fastnst.transformer import TransformerConfig

TRAINER_ARGS = set(inspect.signature(pl.Trainer.__init__).parameters)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
@pytest.mark.parametrize("model", ["johnson", "johnson_slim"])
def test_every_trainer_model_and_style_composes(trainer, model):
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        for style in style_names():
            cfg = compose("train", [f"trainer={trainer}", f"model={model}", f"style={style}"])
            check_config(cfg, TrainOptions)
            assert isinstance(instantiate(cfg.model), TransformerConfig)
            assert set(cfg.trainer) <= TRAINER_ARGS, set(cfg.trainer) - TRAINER_ARGS
            assert cfg.loss.style_weight == cfg.style.style_weight > 0
            data = instantiate(cfg.data)
            assert data.crop_size <= (cfg.data.short_side or data.crop_size)
        image = compose("train", ["style=image", "style.image=x.jpg", "style.name=x"])
        check_config(image, TrainOptions)


def test_the_gatys_config_composes_with_every_style():
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        for style in style_names():
            check_config(compose("gatys", [f"style={style}"]), GATYS_BOUNDS)


def test_every_declared_training_option_is_in_the_configs():
    """training/options.py declares the bounds; the YAML holds the values: no key drifts."""
    from omegaconf import OmegaConf

    from fastnst.config_checks import bounds_of

    with initialize_config_module("fastnst.conf", version_base="1.3"):
        for name in ("train", "distill"):
            cfg = compose(name)
            missing = [k for k in bounds_of(TrainOptions)
                       if OmegaConf.select(cfg, k, default="<absent>") == "<absent>"]
            assert not missing, (name, missing)
