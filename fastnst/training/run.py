"""A training run, from its composed config to the model file: `run` (python -m fastnst.train
and python -m fastnst.distill call it; see fastnst.train for the run folder's layout)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from fastnst.console import shown
from fastnst.errors import FastnstError
from fastnst.files import atomic_path
from fastnst.training.checkpoints import (
    CHECKPOINTS,
    LAST,
    check_checkpoint,
    last_good,
    resume_checkpoint,
)
from fastnst.transformer import TransformerNet

log = logging.getLogger(__name__)


def instantiate(node: Any) -> Any:
    """Hydra's instantiate, except that a FastnstError raised by the target (a model= or loss=
    value out of range) reaches the user as itself, not wrapped in Hydra's error."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node)
    except InstantiationException as e:
        if isinstance(e.__cause__, FastnstError):
            raise e.__cause__ from None
        raise


def run(cfg: DictConfig) -> Path | None:
    """Train as configured by `conf/train.yaml`; return the model file (None on ranks > 0)."""
    from hydra.core.hydra_config import HydraConfig

    from fastnst.config_checks import ConfigError, check_config
    from fastnst.device import hardware_name
    from fastnst.model_files import MODEL_SUFFIX, save_model, style_label
    from fastnst.training.module import NonFiniteLossError, StyleTransferModule
    from fastnst.training.options import TrainOptions
    from fastnst.training.tasks import network, plan
    from fastnst.training.trainer import build_trainer

    # The VGG loss network is frozen in eval mode on purpose, and the data resume at the
    # checkpoint's step by construction (fastnst.training.data.SampleOrder).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended")
    # Not the user's to act on: Lightning's own deprecation notices and its cloud-logger advert.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())
    check_config(cfg, TrainOptions)
    if cfg.data.short_side is not None and cfg.data.short_side < cfg.data.crop_size:
        raise ConfigError(f"data.short_side={cfg.data.short_side} is smaller than"
                          f" data.crop_size={cfg.data.crop_size}: the crops would not fit")
    name = style_label(cfg.name)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    given = [o.lstrip("+~").split("=")[0] for o in HydraConfig.get().overrides.task]
    config, styles = network(cfg, instantiate(cfg.model),
                             model_given=any(k.split(".")[0] == "model" for k in given))
    ckpt_path = resume_checkpoint(cfg.resume, run_dir)
    output = model_output(cfg, name, ckpt_path)  # checked now, not after the training
    # Read once and checked before anything heavy loads; Lightning is given what was checked.
    vetted = check_checkpoint(ckpt_path, TransformerNet.skeleton(config)) if ckpt_path else None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = instantiate(cfg.data)
    data.setup()  # a missing or empty folder fails here, before anything heavy
    val = data.val_images()
    work = plan(cfg, config, styles)  # the init weights: a resumed run then overwrites them
    module = StyleTransferModule(
        work.config, instantiate(cfg.loss), work.tasks, lr=cfg.optim.lr,
        warmup_steps=cfg.optim.warmup_steps, final_lr=cfg.optim.final_lr,
        val_photos=[photo for _, photo in val], sample_every=cfg.sample_every,
        sample_dir=run_dir / "samples", init=work.init, train_only=cfg.train_only,
        order=work.order)
    teacher = any(t.teacher is not None for t in work.tasks)
    trainer = build_trainer(cfg, run_dir)
    if vetted is not None:
        trainer.strategy.checkpoint_io.vetted = (ckpt_path, vetted)
    precision = str(trainer.precision)
    if trainer.is_global_zero:
        log.info("run folder %s; %s, %s precision, %s at %d px, from %s%s%s", run_dir,
                 cfg.trainer.get("accelerator"), precision,
                 f"styles {', '.join(work.styles)}" if work.styles else f"style {cfg.style.name}",
                 cfg.style_size, f"init={cfg.init}" if work.init else "random weights",
                 f"; distilling {'their models' if work.styles else cfg.teacher}" if teacher
                 else "",
                 f"; resuming from {ckpt_path}" if ckpt_path else "")
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as e:
        last = run_dir / CHECKPOINTS / LAST
        advice = f"lower optim.lr or optim.grad_clip and go on from it with resume={last}"
        raise NonFiniteLossError(f"{e}; training stopped. {last_good(last, advice)}") from None
    seconds = module.trained_seconds()  # with the resumed runs' time
    trainer.save_checkpoint(run_dir / CHECKPOINTS / LAST, weights_only=False)
    if not trainer.is_global_zero:
        return None
    losses = module.final_losses()
    config = OmegaConf.to_container(  # without the `hydra` node that tests compose in
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    path = save_model(module.net, run_dir / f"{name}{MODEL_SUFFIX}", name,
                      extra={"training": config, "steps": trainer.global_step,
                             "losses": losses, "seconds": round(seconds, 1),
                             "skipped_images": module.skipped_images,
                             "processes": trainer.world_size,
                             "precision": precision,
                             "hardware": hardware_name(trainer.strategy.root_device)},
                      styles=work.styles)
    if output is not None:
        with atomic_path(output, replace=cfg.overwrite) as tmp:
            shutil.copyfile(path, tmp)
    print(f"wrote {shown(path)} after {trainer.global_step} steps in {seconds / 60:.1f} min;"
          f" loss {losses.get('total', float('nan')):.4g} (the mean of the last"
          f" {len(module.recent)} steps; the progress bar shows one step);"
          f" {module.skipped_images} unreadable images skipped")
    return path


def model_output(cfg: DictConfig, name: str, checkpoint: str | None,
                 inputs: Sequence[str | os.PathLike[str]] = ()) -> Path | None:
    """The file `output=` asks for, checked before the training: a `.safetensors` file, or
    `<name>.safetensors` in a folder (one that exists, or a name ending in `/` or without a
    suffix). ConfigError for another suffix; WriteError for one of the run's inputs (`init=`,
    `teacher=`, the resumed checkpoint, the other `inputs`: paintings, a decoder) or what
    cannot be written; OutputExists for a file that exists, unless `overwrite=true`. None
    without `output=`. Every training command (train, distill, train_decoder) checks here."""
    from fastnst.config_checks import ConfigError, unset
    from fastnst.files import check_name_length, check_output
    from fastnst.model_files import MODEL_SUFFIX
    from fastnst.styles import model_path

    if unset(cfg.output) or not str(cfg.output):
        return None
    spec = str(cfg.output)
    check_name_length(spec)
    out = Path(spec).expanduser()
    if out.is_dir() or spec.endswith(("/", os.sep)) or not out.suffix:
        out = out / f"{name}{MODEL_SUFFIX}"
    elif out.suffix.lower() != MODEL_SUFFIX:
        raise ConfigError(f"output={shown(spec)}: a model is written as {MODEL_SUFFIX}; give such"
                          " a file, or a folder (fastnst-export makes .onnx from the model)")
    read = [*inputs, *([checkpoint] if checkpoint else [])]
    for key in ("init", "teacher"):
        with contextlib.suppress(FastnstError):  # a name that is no model fails later, in full
            if not unset(cfg.get(key)):
                read.append(model_path(str(cfg[key]), f"{key}="))
    check_output(out, read, overwrite=cfg.overwrite, overwrite_with="overwrite=true")
    return out


def remove_if_untouched(run_dir: Path) -> None:
    """Remove the run folder of a run that failed before training wrote anything: it holds only
    what Hydra writes at the start (`.hydra/` with its three files, and `train.log`)."""
    hydra_files = {"config.yaml", "hydra.yaml", "overrides.yaml"}
    try:
        if set(os.listdir(run_dir)) - {".hydra", "train.log"} or \
                set(os.listdir(run_dir / ".hydra")) - hydra_files:
            return
        for name in hydra_files:
            (run_dir / ".hydra" / name).unlink(missing_ok=True)
        (run_dir / ".hydra").rmdir()
        (run_dir / "train.log").unlink(missing_ok=True)
        run_dir.rmdir()
        if [p.name for p in run_dir.parents][1:3] == ["train", "outputs"]:  # the default layout
            for folder in list(run_dir.parents)[:3]:  # outputs/train/<style>, .../train, outputs
                folder.rmdir()  # only if empty: OSError otherwise, and the loop ends
    except OSError:  # anything unexpected: leave it
        pass


