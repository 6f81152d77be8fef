"""What the benchmark scripts share: the ../shared data beside the repository, and the machine."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

from fastnst.device import hardware_name
from fastnst.losses import PerceptualLoss
from fastnst.quality import configured_loss
from fastnst.shared_data import EVAL_DIR, TRAIN_DIR, use_shared_data
from fastnst.transformer import TransformerNet

__all__ = ["EVAL_DIR", "TRAIN_DIR", "use_shared_data"]  # the ../shared layout, for the scripts


DEVICE_TYPES = ("cpu", "cuda")


def devices(only: list[str] | None = None) -> list[torch.device]:
    """The CPU, and CUDA when present; `only` keeps just those types (from `DEVICE_TYPES`)."""
    found = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [d for d in found if only is None or d.type in only]


def machine() -> str:
    """One line: PyTorch version, CPU model and threads, GPU."""
    gpu = f"; GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"torch {torch.__version__}; CPU: {hardware_name(torch.device('cpu'))}{gpu}"


def build_loss(style: str, device: torch.device, meta: dict | None = None) -> PerceptualLoss:
    """The perceptual loss of `style` on `device`: the one the model whose metadata is `meta`
    was trained with, else the style's config (fastnst.quality.configured_loss)."""
    return configured_loss(style, (meta or {}).get("training", {}).get("loss")).to(device)


def model_names() -> list[str]:
    """The network architectures of `conf/model/` (`model=` choices)."""
    from importlib import resources

    return sorted(p.name.removesuffix(".yaml") for p in
                  (resources.files("fastnst.conf") / "model").iterdir() if p.name.endswith(".yaml"))


def train_config(*overrides: str) -> DictConfig:
    """`conf/train.yaml` composed with Hydra `overrides` (`model=johnson_slim`, ...)."""
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def model_spec(text: str) -> str:
    """An argparse type for `--models`: a `conf/model/` name, optionally with changed fields
    (`fast:blocks=8,channels=64`, as `model=fast model.blocks=8 model.channels=64`)."""
    name, _, fields = text.partition(":")
    if name not in model_names():
        raise argparse.ArgumentTypeError(f"{name!r}: not one of {', '.join(model_names())}")
    if fields and not all("=" in f for f in fields.split(",")):
        raise argparse.ArgumentTypeError(f"{text!r}: fields are name=value, comma-separated")
    return text


def build_network(model: str) -> TransformerNet:
    """A TransformerNet of the architecture `model` (a `model_spec`), random weights."""
    name, _, fields = model.partition(":")
    overrides = [f"model.{f}" for f in fields.split(",") if f]
    return TransformerNet(instantiate(train_config(f"model={name}", *overrides).model))


LABEL_HEIGHT = 28  # pixels of a caption row


def caption(text: str, width: int) -> torch.Tensor:
    """A white `(1, 3, LABEL_HEIGHT, width)` strip holding `text`."""
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(strip).permute(2, 0, 1)[None].float() / 255.0


def add_model_and_photo_args(parser: argparse.ArgumentParser) -> None:
    """--models (default: the shipped styles), --eval-dir and --photos (default: all)."""
    parser.add_argument("--models", nargs="+", type=Path,
                        help="style model files (default: the shipped styles)")
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+", help="file names in --eval-dir (default: all)")


def models_and_photos(parser: argparse.ArgumentParser, args: argparse.Namespace
                      ) -> tuple[list[Path], list[str]]:
    """The model files and photo names that `add_model_and_photo_args` options chose (the
    shipped one-style models by default: a multi-style model is judged by eval_multi.py)."""
    from fastnst.model_files import is_multi_style, shipped_models

    models = args.models or sorted(p for p in shipped_models().values() if not is_multi_style(p))
    if not models:
        parser.error("no shipped styles: give --models")
    names = args.photos or sorted(p.name for p in args.eval_dir.iterdir()
                                  if p.suffix.lower() in (".jpg", ".png"))
    return models, names
