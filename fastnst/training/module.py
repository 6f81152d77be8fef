"""The LightningModule that trains a TransformerNet against the perceptual loss of its styles.

A one-style network trains one StyleTask; a multi-style network (conditional instance norm)
trains several, one per step in turn (the step number picks it, so a resumed run continues the
same sequence), each with its own painting, style weight and teacher.

Logs the weighted loss terms and images/s every step, and every `sample_every` steps stylizes the
fixed validation photos: their losses are logged as `val/*`, and a grid (photos above, results
below) goes to TensorBoard and to `<sample_dir>/step_NNNNNN.png`. The VGG loss network is never
written into checkpoints: it is fixed, big (80 MB), and rebuilt from its weights file. A NaN or
inf loss stops training (NonFiniteLossError) before it reaches the weights, and no checkpoint
with non-finite weights is ever written.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import grad_norm

from fastnst.errors import FastnstError
from fastnst.images import grid, write_image
from fastnst.losses import PerceptualLoss
from fastnst.transformer import StyleNorm, TransformerConfig, TransformerNet

FINAL_LOSS_STEPS = 50  # the final loss is the mean of this many last steps: one step is noisy
# State-dict keys of the loss network and the teacher, left out of checkpoints: both are fixed
# and rebuilt from their own files.
FIXED_PREFIXES = ("loss.", "teachers.")


def lr_factor(step: int, warmup: int, total: int, final: float) -> float:
    """Learning-rate multiplier: linear warm-up over `warmup` steps, then cosine decay to `final`
    at step `total` (total <= 0: no decay)."""
    if step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    t = min(1.0, (step - warmup) / (total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))


TRAIN_ONLY = ("all", "norm")  # which weights train: all, or the instance-norm scales and shifts


def trainable(net: TransformerNet, train_only: str = "all") -> list[torch.nn.Parameter]:
    """The parameters that train under `train_only` ("all" or "norm"); the others are frozen.

    "norm" is the conditional-instance-norm view of a style (Dumoulin et al. 2017, as in
    Magenta and Turi Create): a style lives in the norms' scales and shifts (0.2% of the
    johnson model's weights), the convolutions are shared. In a multi-style network these are
    the per-style rows (StyleNorm); a step trains only the rows of its style's mix, so adding a
    style with "norm" leaves the other styles exactly as they were."""
    if train_only not in TRAIN_ONLY:
        raise ValueError(f"train_only must be one of {', '.join(TRAIN_ONLY)}, not {train_only!r}")
    for module in net.modules():
        is_norm = isinstance(module, (torch.nn.InstanceNorm2d, StyleNorm))
        for p in module.parameters(recurse=False):
            p.requires_grad_(train_only == "all" or is_norm)
    return [p for p in net.parameters() if p.requires_grad]


@dataclass
class StyleTask:
    """A style a run trains: its painting `(1, 3, H, W)`, its style weight (None: the loss's),
    the teacher whose results are its content targets (distillation; None: the photos), and its
    place in a multi-style network's mix (None: a one-style network)."""

    painting: torch.Tensor
    style_weight: float | None = None
    teacher: torch.nn.Module | None = None  # a TransformerNet, or a PaintingTeacher
    index: int | None = None


class NonFiniteLossError(FastnstError, RuntimeError):
    """The loss or the weights became NaN or inf; training cannot go on from here."""


def keep_trained_weights(checkpoint: dict[str, Any], fixed: tuple[str, ...], step: int) -> None:
    """Drop from a Lightning checkpoint's state dict the fixed networks (keys starting with
    `fixed`: the loss network, teachers); NonFiniteLossError if a weight left is NaN or inf,
    so that a NaN never overwrites the last good checkpoint."""
    state = checkpoint["state_dict"]
    for key in [k for k in state if k.startswith(fixed)]:
        del state[key]
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise NonFiniteLossError(f"the weights hold NaN or inf at step {step} ({bad[0]})")


class StyleTransferModule(pl.LightningModule):
    """Johnson et al.'s training: a TransformerNet minimising `loss` against its `tasks`' styles
    (StyleTask: one for a one-style network).

    lr: Adam's peak learning rate; warmup_steps: linear warm-up; final_lr: the learning rate's
    factor at the last step (cosine decay over the trainer's max_steps); val_photos: fixed
    `(1, 3, H, W)` photos stylized every `sample_every` steps (0: never); sample_dir: where their
    grids go; init: weights to start from (a state dict of the same architecture; None: random);
    train_only: "all" or "norm" (see `trainable`); order: the tasks' indices in one cycle of
    steps (default: each once, in turn). A task's teacher is a trained network whose
    outputs are the content targets instead of the photos (distillation, `python -m
    fastnst.distill`).
    """

    def __init__(self, config: TransformerConfig, loss: PerceptualLoss,
                 tasks: Sequence[StyleTask],
                 lr: float = 1e-3, warmup_steps: int = 100, final_lr: float = 0.1,
                 val_photos: Sequence[torch.Tensor] = (), sample_every: int = 100,
                 sample_dir: str | Path | None = None,
                 init: dict[str, torch.Tensor] | None = None, train_only: str = "all",
                 order: Sequence[int] | None = None) -> None:
        super().__init__()
        self.net = TransformerNet(config)
        if init is not None:
            self.net.load_state_dict(init)
        self.train_only = train_only
        trainable(self.net, train_only)  # fails early on a bad value
        self.loss = loss
        self.tasks = list(tasks)
        self.order = list(range(len(self.tasks)) if order is None else order)
        if not self.order or any(not 0 <= k < len(self.tasks) for k in self.order):
            raise ValueError(f"order {self.order} must list indices of the {len(self.tasks)}"
                             " tasks")
        if not self.tasks or any((t.index is None) != (not config.styles) for t in self.tasks):
            raise ValueError("a multi-style network trains tasks with a mix index, a one-style"
                             " network one task without")
        # Registered (they follow the module to its device), left out of checkpoints.
        self.teachers = torch.nn.ModuleList(t.teacher.eval().requires_grad_(False)
                                            for t in self.tasks if t.teacher is not None)
        self.grams: list[dict[str, torch.Tensor]] = []  # each task's Gram targets
        self.lr, self.warmup_steps, self.final_lr = lr, warmup_steps, final_lr
        self.val_photos = list(val_photos)
        self.sample_every = sample_every
        self.sample_dir = None if sample_dir is None else Path(sample_dir)
        self.strict_loading = False  # checkpoints hold no loss-network or teacher weights
        self.skipped_images = 0
        self.seconds_before = 0.0  # training time of the runs this one resumes, s
        self._fit_started: float | None = None
        self.recent: deque[dict[str, torch.Tensor]] = deque(maxlen=FINAL_LOSS_STEPS)
        self._last_batch_end: float | None = None

    def forward(self, images: torch.Tensor, task: StyleTask | None = None) -> torch.Tensor:
        """The network's results for `images` in `task`'s style (default: the first task's)."""
        task = task or self.tasks[0]
        if task.index is None:
            return self.net(images)
        return self.net(images, self.net.one_style(task.index, images.device))

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        self.grams = [self.loss.grams([t.painting.to(self.device)]) for t in self.tasks]

    def trained_seconds(self) -> float:
        """Wall-clock seconds of training so far, those of the runs this one resumed included."""
        now = 0.0 if self._fit_started is None else time.perf_counter() - self._fit_started
        return self.seconds_before + now

    def task_at(self, step: int) -> int:
        """Which task step `step` trains: those of `order` in turn (default: each once)."""
        return self.order[step % len(self.order)]

    @torch.no_grad()
    def targets(self, photos: torch.Tensor, task: StyleTask) -> torch.Tensor:
        """What the network's output is compared with as content: the photos, or the teacher's
        stylized photos when distilling."""
        return photos if task.teacher is None else task.teacher(photos)

    def terms(self, images: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        """The weighted loss terms of task `k` on `images`."""
        task = self.tasks[k]
        self.loss.use_grams(self.grams[k])
        return self.loss(self(images, task), content=self.targets(images, task),
                         style_weight=task.style_weight)

    def training_step(self, batch: tuple[torch.Tensor, int], batch_idx: int) -> torch.Tensor:
        images, skipped = batch
        self.skipped_images += int(skipped)
        terms = self.terms(images, self.task_at(self.global_step))
        if not torch.isfinite(terms["total"]):  # before backward: the weights are still good
            raise NonFiniteLossError(
                f"the loss is {terms['total'].item()} at step {self.global_step} ("
                + ", ".join(f"{k} {v.item():.4g}" for k, v in terms.items() if k != "total")
                + ")")
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True)
        self.log("loss", terms["total"].detach(), prog_bar=True, logger=False)
        self.log("train/skipped_images", float(self.skipped_images), on_step=True)
        self.recent.append({k: v.detach() for k, v in terms.items()})  # no GPU sync per step
        return terms["total"]

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Before clipping: shows how often `gradient_clip_val` bites.
        norm = grad_norm(self.net, norm_type=2).get("grad_2.0_norm_total")
        if norm is not None:
            self.log("train/grad_norm", norm, on_step=True)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last_batch_end is not None:
            images = batch[0].shape[0] * self.trainer.world_size
            self.log("train/images_per_s", images / (now - self._last_batch_end), on_step=True,
                     prog_bar=True)
        if self.sample_every and self.global_step % self.sample_every == 0:
            self.write_samples()
        self._last_batch_end = time.perf_counter()  # images/s leaves the samples out

    def on_train_end(self) -> None:
        if self.sample_every and self.global_step % self.sample_every:  # else already written
            self.write_samples(log=False)  # Lightning allows no logging here

    @torch.no_grad()
    def write_samples(self, log: bool = True) -> None:
        """Stylize the validation photos; log their losses and write their grid (rank 0 only)."""
        if not self.val_photos or not self.trainer.is_global_zero:
            return
        rows: list[list[torch.Tensor]] = [[p.cpu() for p in self.val_photos]]
        totals = []
        for task, grams in zip(self.tasks, self.grams, strict=True):
            self.loss.use_grams(grams)
            outs, teacher_outs = [], []
            for photo in self.val_photos:
                photo = photo.to(self.device)
                out, target = self(photo, task), self.targets(photo, task)
                outs.append(out.float().cpu())
                teacher_outs.append(target.float().cpu())
                totals.append({name: v.item() for name, v in self.loss(
                    out, content=target, style_weight=task.style_weight).items()})
            # The teacher's results when distilling, then this network's, per task.
            rows += [*([teacher_outs] if task.teacher is not None else []), outs]
        means = {f"val/{k}": sum(t[k] for t in totals) / len(totals) for k in totals[0]}
        for logger in self.loggers if log else ():
            logger.log_metrics(means, step=self.global_step)  # exactly this step, rank 0 only
        image = grid(rows)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", image[0], self.global_step)
        if self.sample_dir is not None:
            write_image(image, self.sample_dir / f"step_{self.global_step:06d}.png")

    def final_losses(self) -> dict[str, float]:
        """Mean weighted loss terms over the last (up to FINAL_LOSS_STEPS) training steps."""
        if not self.recent:
            return {}
        return {k: float(sum(r[k].item() for r in self.recent) / len(self.recent))
                for k in self.recent[0]}

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.Adam(trainable(self.net, self.train_only), lr=self.lr)
        total, warmup, final = self.trainer.max_steps, self.warmup_steps, self.final_lr
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, warmup, total, final))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep_trained_weights(checkpoint, FIXED_PREFIXES, self.global_step)
        checkpoint["fastnst"] = {"skipped_images": self.skipped_images,
                                 "seconds": self.trained_seconds()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("fastnst", {})
        self.skipped_images = int(saved.get("skipped_images", 0))
        self.seconds_before = float(saved.get("seconds", 0.0))
