"""Train one fast style network: `python -m fastnst.train style=starry_night data.root=PHOTOS`.

Each run writes to its own folder (`outputs/train/<style>/<date_time>/`): the resolved config
(`.hydra/`), `train.log`, logs (`tensorboard/`, `csv/metrics.csv`), sample grids (`samples/`),
Lightning checkpoints (`checkpoints/`, every `checkpoint_every` steps and at the end; `last.ckpt`
the newest) and, at the end, the deployable model `<style>.safetensors`. `resume=true` continues
the newest run of the same style from its `last.ckpt`, at the same step, learning rate,
optimizer state and place in the data (fastnst.data.SampleOrder), so a killed and resumed run
ends with an unbroken run's weights. `init=` starts from a model instead of random weights (a
shipped style or a `.safetensors` file of the configured architecture): fine-tuning a shipped
style on your own photos is `style=starry_night init=starry_night data.root=MY_PHOTOS`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from fastnst.console import prepare_console, shown
from fastnst.files import atomic_path
from fastnst.transformer import TransformerConfig, TransformerNet

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file and renamed: never half-written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str],
                        storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class StopRequested(KeyboardInterrupt):
    """Raised by `StopOnCtrlC` at the end of a step, after a Ctrl-C asked for it."""


class StopOnCtrlC(pl.Callback):
    """Ctrl-C (or SIGTERM) ends the run at the end of the current step and writes `last.ckpt`
    there.

    The checkpoint is taken where Lightning takes its periodic ones (a step's
    `on_train_batch_end`), never mid-step: the weights, optimizer and loop counters agree, so a
    resumed run goes on at exactly that step. Under DDP the ranks agree on the step to stop at.
    A second Ctrl-C stops at once and writes nothing; the newest periodic checkpoint is then the
    one to resume from. Lightning ends the process with exit status 1 either way.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: a handler that prints can interrupt a print (reentrant call)
        os.write(2, b"\nfastnst-train: Ctrl-C: stopping at the end of this step"
                    b" (Ctrl-C again to stop at once, without a checkpoint)\n")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            # A signal the process ignores (SIGINT of a background job) stays ignored.
            self._previous = {s: signal.signal(s, self._on_signal)
                              for s in (signal.SIGINT, signal.SIGTERM)
                              if signal.getsignal(s) is not signal.SIG_IGN}

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: not a step boundary
        stop = self.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            raise StopRequested

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        try:
            self._save(trainer, exception)
        finally:  # after the save: Lightning ignores Ctrl-C while it shuts down
            self._restore()

    def _save(self, trainer: pl.Trainer, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        if isinstance(exception, StopRequested):
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, self.path)
            print(f"fastnst-train: interrupted at step {trainer.global_step}; checkpoint"
                  f" {self.path}; continue with resume=true", file=sys.stderr)
        else:
            print(f"fastnst-train: stopped mid-step at step {trainer.global_step}; nothing"
                  f" saved. {_last_good(self.path, 'continue with resume=true')}",
                  file=sys.stderr)


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


def resume_checkpoint(resume: bool | str | None, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None (resume false), the given path, or for `true` the
    newest `last.ckpt` among the other runs beside `run_dir`."""
    if resume in (None, False, "false", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        found = [p for p in run_dir.parent.glob(f"*/{CHECKPOINTS}/{LAST}")
                 if p.parents[1] != run_dir]
        if not found:
            raise FileNotFoundError(f"resume=true: no {CHECKPOINTS}/{LAST} under"
                                    f" {run_dir.parent}/*; nothing to resume")
        return max(found, key=lambda p: p.stat().st_mtime)
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint to resume from not found")
    return path


def check_checkpoint(path: Path, net: TransformerNet) -> None:
    """Refuse, in one line, a checkpoint that is not a Lightning checkpoint of `net`'s
    architecture. It is read with `weights_only=True`: a pickle that would run code is refused
    unexecuted."""
    from pickle import UnpicklingError

    from fastnst.model_files import nonfinite, tensor_specs, weight_problems

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise ValueError(f"{path}: refused: it holds Python objects besides tensors, and"
                         " loading them could run code") from None
    except Exception as e:  # torch.load fails in many ways on files that are not its own
        detail = (str(e).splitlines() or [""])[0][:200]
        raise ValueError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {detail})"
                         ) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise ValueError(f"{path}: not a Lightning training checkpoint (no state_dict and"
                         " global_step)")
    prefix = "net."
    weights = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items()
               if k.startswith(prefix)}
    problems = weight_problems(tensor_specs(weights), net)
    if not problems and (bad := nonfinite({k: v.float() for k, v in weights.items()})):
        problems = f"NaN or inf in {', '.join(bad[:3])}"
    if problems:
        raise ValueError(f"{path}: does not fit the configured model= ({problems})")


def initial_weights(init: str | None, config: TransformerConfig) -> dict[str, torch.Tensor] | None:
    """The weights `init=` names (a shipped style or a model file), checked against the
    configured architecture; None for random weights."""
    from fastnst.model_files import find_model, load_model

    if init in (None, "", "null"):
        return None
    path = find_model(str(init))
    net, _ = load_model(path)
    if net.config != config:
        raise ValueError(f"init={init}: {path} is a TransformerNet {net.config}, but model= is"
                         f" {config}; pick an init of the same architecture or change model=")
    return net.state_dict()


def _last_good(last: Path, advice: str) -> str:
    """Where a stopped run can go on from, in words: the checkpoint `last`, then `advice`."""
    if not last.is_file():
        return "No checkpoint was written before it."
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    return f"The last good checkpoint is {last} (step {step}); {advice}"


def run(cfg: DictConfig) -> Path | None:
    """Train as configured by `conf/train.yaml`; return the model file (None on ranks > 0)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from fastnst.config_checks import TRAIN_BOUNDS, ConfigError, check_config
    from fastnst.files import check_writable
    from fastnst.images import resize_long_side
    from fastnst.model_files import save_model, style_label
    from fastnst.module import NonFiniteLossError, StyleTransferModule
    from fastnst.paintings import read_painting

    # The VGG loss network is frozen in eval mode on purpose, and the data resume at the
    # checkpoint's step by construction (fastnst.data.SampleOrder).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r"You're resuming from a checkpoint that ended")
    # Not the user's to act on: Lightning's own deprecation notices and its cloud-logger advert.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage())
    check_config(cfg, TRAIN_BOUNDS)
    if cfg.data.short_side is not None and cfg.data.short_side < cfg.data.crop_size:
        raise ConfigError(f"data.short_side={cfg.data.short_side} is smaller than"
                          f" data.crop_size={cfg.data.crop_size}: the crops would not fit")
    name = style_label(cfg.style.name)
    if cfg.output:  # checked now, not after the training
        out = Path(cfg.output)
        check_writable(out / f"{name}.safetensors" if out.is_dir() else out)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    config = instantiate(cfg.model)
    ckpt_path = resume_checkpoint(cfg.resume, run_dir)
    if ckpt_path:  # before anything heavy loads
        check_checkpoint(ckpt_path, TransformerNet.skeleton(config))
    init = initial_weights(cfg.init, config)  # a resumed run then overwrites them
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = instantiate(cfg.data)
    data.setup()  # a missing or empty folder fails here, before anything heavy
    val = data.val_images()
    painting = resize_long_side(read_painting(cfg.style), cfg.style_size)
    module = StyleTransferModule(
        config, instantiate(cfg.loss), painting, lr=cfg.optim.lr,
        warmup_steps=cfg.optim.warmup_steps, final_lr=cfg.optim.final_lr,
        val_photos=[photo for _, photo in val], sample_every=cfg.sample_every,
        sample_dir=run_dir / "samples", init=init, train_only=cfg.train_only)
    trainer_args = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(trainer_args, dict)
    trainer_args["precision"] = resolve_precision(trainer_args.get("precision", "auto"),
                                                  str(trainer_args.get("accelerator", "auto")))
    checkpoints = ModelCheckpoint(dirpath=run_dir / CHECKPOINTS, filename="step{step:06d}",
                                  auto_insert_metric_name=False, save_top_k=-1, save_last=True,
                                  every_n_train_steps=cfg.checkpoint_every)
    trainer = pl.Trainer(**trainer_args, default_root_dir=run_dir,
                         callbacks=[checkpoints, LearningRateMonitor("step"),
                                    StopOnCtrlC(run_dir / CHECKPOINTS / LAST)],
                         logger=[TensorBoardLogger(run_dir, name="tensorboard", version=""),
                                 CSVLogger(run_dir, name="csv", version="")],
                         plugins=[AtomicCheckpointIO()], enable_model_summary=False,
                         use_distributed_sampler=False)  # SampleOrder shards by rank itself
    if trainer.is_global_zero and trainer_args.get("accelerator") == "cpu" \
            and torch.cuda.is_available():
        log.warning("a GPU is available: trainer=gpu trains at Johnson et al.'s full schedule")
    if trainer.is_global_zero:
        log.info("run folder %s; %s, %s precision, style %s at %d px, from %s%s", run_dir,
                 trainer_args.get("accelerator"), trainer_args["precision"], cfg.style.name,
                 cfg.style_size, f"init={cfg.init}" if init else "random weights",
                 f"; resuming from {ckpt_path}" if ckpt_path else "")
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as e:
        last = run_dir / CHECKPOINTS / LAST
        advice = f"lower optim.lr or optim.grad_clip and go on from it with resume={last}"
        raise NonFiniteLossError(f"{e}; training stopped. {_last_good(last, advice)}") from None
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(run_dir / CHECKPOINTS / LAST, weights_only=False)
    if not trainer.is_global_zero:
        return None
    losses = module.final_losses()
    config = OmegaConf.to_container(  # without the `hydra` node that tests compose in
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)
    path = save_model(module.net, run_dir / f"{name}.safetensors", name,
                      extra={"training": config, "steps": trainer.global_step,
                             "losses": losses, "seconds": round(seconds, 1),
                             "skipped_images": module.skipped_images,
                             "processes": trainer.world_size,
                             "precision": trainer_args["precision"]})
    if cfg.output:
        out = Path(cfg.output)
        out = out / path.name if out.is_dir() else out
        with atomic_path(out) as tmp:
            shutil.copyfile(path, tmp)
    print(f"wrote {path} after {trainer.global_step} steps in {seconds / 60:.1f} min;"
          f" loss {losses.get('total', float('nan')):.4g} (mean of the last steps);"
          f" {module.skipped_images} unreadable images skipped")
    return path


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


def main() -> None:
    """Console entry point: `fastnst-train` / `python -m fastnst.train` (Hydra overrides)."""
    prepare_console()
    import hydra

    from fastnst.config_checks import prepare_overrides
    from fastnst.data import DataError
    from fastnst.files import WriteError
    from fastnst.images import ImageError
    from fastnst.module import NonFiniteLossError
    from fastnst.paintings import StyleError
    from fastnst.vgg import VGGWeightsError

    prepare_overrides("fastnst-train")

    @hydra.main(version_base="1.3", config_path="pkg://fastnst.conf", config_name="train")
    def _main(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        try:
            run(cfg)
        except (DataError, ImageError, StyleError, VGGWeightsError, FileNotFoundError,
                ValueError, NonFiniteLossError, WriteError) as e:
            print(f"fastnst-train: error: {shown(e)}", file=sys.stderr)
            remove_if_untouched(Path(HydraConfig.get().runtime.output_dir))
            sys.exit(1)
        except KeyboardInterrupt:  # before or after the training loop (it handles its own)
            print("fastnst-train: interrupted; no model written (checkpoints, if any, are in"
                  " the run folder)", file=sys.stderr)
            sys.exit(130)

    _main()


if __name__ == "__main__":
    main()
