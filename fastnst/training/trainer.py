"""The Lightning Trainer of a training run, built from the `trainer:` config group: precision,
checkpoints, logs and the Ctrl-C callback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.training.callbacks import StopOnCtrlC
from fastnst.training.checkpoints import CHECKPOINTS, LAST, AtomicCheckpointIO

log = logging.getLogger(__name__)


def resolve_precision(precision: str, accelerator: str) -> str:
    """Lightning precision for `auto`: bf16-mixed where bf16 is fast (CUDA with bf16, AMX CPUs),
    16-mixed on other GPUs, else 32-true. Other values are returned as given."""
    from fastnst.device import bf16_is_fast

    if str(precision) != "auto":
        return str(precision)
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if bf16_is_fast(torch.device("cuda" if cuda else "cpu")):
        return "bf16-mixed"
    return "16-mixed" if cuda else "32-true"


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    """The Trainer for `conf/train.yaml`'s `trainer:` group, writing into `run_dir`: checkpoints
    every `checkpoint_every` steps (atomically), TensorBoard and CSV logs, Ctrl-C handling.
    `trainer.precision` is resolved (`auto`: resolve_precision)."""
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    args: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    args["precision"] = resolve_precision(args.get("precision", "auto"),
                                          str(args.get("accelerator", "auto")))
    checkpoints = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, filename="step{step:06d}",
                                  auto_insert_metric_name=False, save_top_k=-1, save_last=True,
                                  every_n_train_steps=cfg.checkpoint_every)
    trainer = pl.Trainer(**args, default_root_dir=run_dir,
                         callbacks=[checkpoints, LearningRateMonitor("step"),
                                    StopOnCtrlC(run_dir / CHECKPOINTS / LAST)],
                         logger=[TensorBoardLogger(run_dir, name="tensorboard", version=""),
                                 CSVLogger(run_dir, name="csv", version="")],
                         plugins=[AtomicCheckpointIO()], enable_model_summary=False,
                         use_distributed_sampler=False)  # SampleOrder shards by rank itself
    if trainer.is_global_zero and args.get("accelerator") == "cpu" and torch.cuda.is_available():
        log.warning("a GPU is available: trainer=gpu trains at Johnson et al.'s full schedule")
    return trainer
