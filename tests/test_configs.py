"""Every config combination composes, passes its bounds and builds what it names."""

from __future__ import annotations

import inspect

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from fastnst.baseline import GATYS_BOUNDS
from fastnst.config_checks import TRAIN_BOUNDS, check_config
from fastnst.paintings import style_names
from fastnst.transformer import TransformerConfig

TRAINER_ARGS = set(inspect.signature(pl.Trainer.__init__).parameters)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
@pytest.mark.parametrize("model", ["johnson", "johnson_slim"])
def test_every_trainer_model_and_style_composes(trainer, model):
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        for style in style_names():
            cfg = compose("train", [f"trainer={trainer}", f"model={model}", f"style={style}"])
            check_config(cfg, TRAIN_BOUNDS)
            assert isinstance(instantiate(cfg.model), TransformerConfig)
            assert set(cfg.trainer) <= TRAINER_ARGS, set(cfg.trainer) - TRAINER_ARGS
            assert cfg.loss.style_weight == cfg.style.style_weight > 0
            data = instantiate(cfg.data)
            assert data.crop_size <= (cfg.data.short_side or data.crop_size)
        image = compose("train", ["style=image", "style.image=x.jpg", "style.name=x"])
        check_config(image, TRAIN_BOUNDS)


def test_the_gatys_config_composes_with_every_style():
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        for style in style_names():
            check_config(compose("gatys", [f"style={style}"]), GATYS_BOUNDS)
