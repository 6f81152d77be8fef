"""The LightningModule that trains a TransformerNet against the perceptual loss of one style.

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
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import grad_norm

from fastnst.errors import FastnstError
from fastnst.images import grid, write_image
from fastnst.losses import PerceptualLoss
from fastnst.transformer import TransformerConfig, TransformerNet

FINAL_LOSS_STEPS = 50  # the final loss is the mean of this many last steps: one step is noisy
# State-dict keys of the loss network and the teacher, left out of checkpoints: both are fixed
# and rebuilt from their own files.
FIXED_PREFIXES = ("loss.", "teacher.")


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
    johnson model's weights), the convolutions are shared."""
    if train_only not in TRAIN_ONLY:
        raise ValueError(f"train_only must be one of {', '.join(TRAIN_ONLY)}, not {train_only!r}")
    for module in net.modules():
        is_norm = isinstance(module, torch.nn.InstanceNorm2d)
        for p in module.parameters(recurse=False):
            p.requires_grad_(train_only == "all" or is_norm)
    return [p for p in net.parameters() if p.requires_grad]


class NonFiniteLossError(FastnstError, RuntimeError):
    """The loss or the weights became NaN or inf; training cannot go on from here."""


class StyleTransferModule(pl.LightningModule):
    """Johnson et al.'s training: a TransformerNet minimising `loss` against `painting`.

    lr: Adam's peak learning rate; warmup_steps: linear warm-up; final_lr: the learning rate's
    factor at the last step (cosine decay over the trainer's max_steps); val_photos: fixed
    `(1, 3, H, W)` photos stylized every `sample_every` steps (0: never); sample_dir: where their
    grids go; init: weights to start from (a state dict of the same architecture; None: random);
    train_only: "all" or "norm" (see `trainable`); teacher: a trained network whose outputs
    are the content targets instead of the photos (distillation, `python -m fastnst.distill`).
    """

    def __init__(self, config: TransformerConfig, loss: PerceptualLoss, painting: torch.Tensor,
                 lr: float = 1e-3, warmup_steps: int = 100, final_lr: float = 0.1,
                 val_photos: Sequence[torch.Tensor] = (), sample_every: int = 100,
                 sample_dir: str | Path | None = None,
                 init: dict[str, torch.Tensor] | None = None, train_only: str = "all",
                 teacher: TransformerNet | None = None) -> None:
        super().__init__()
        self.net = TransformerNet(config)
        if init is not None:
            self.net.load_state_dict(init)
        self.train_only = train_only
        trainable(self.net, train_only)  # fails early on a bad value
        self.loss = loss
        self.teacher = None if teacher is None else teacher.eval().requires_grad_(False)
        self.painting = painting  # a plain attribute: not in checkpoints
        self.lr, self.warmup_steps, self.final_lr = lr, warmup_steps, final_lr
        self.val_photos = list(val_photos)
        self.sample_every = sample_every
        self.sample_dir = None if sample_dir is None else Path(sample_dir)
        self.strict_loading = False  # checkpoints hold no loss-network or teacher weights
        self.skipped_images = 0
        self.recent: deque[dict[str, torch.Tensor]] = deque(maxlen=FINAL_LOSS_STEPS)
        self._last_batch_end: float | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def on_fit_start(self) -> None:
        self.loss.set_style([self.painting.to(self.device)])

    @torch.no_grad()
    def targets(self, photos: torch.Tensor) -> torch.Tensor:
        """What the network's output is compared with as content: the photos, or the teacher's
        stylized photos when distilling."""
        return photos if self.teacher is None else self.teacher(photos)

    def training_step(self, batch: tuple[torch.Tensor, int], batch_idx: int) -> torch.Tensor:
        images, skipped = batch
        self.skipped_images += int(skipped)
        terms = self.loss(self.net(images), content=self.targets(images))
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
        outs, teacher_outs, totals = [], [], []
        for photo in self.val_photos:
            photo = photo.to(self.device)
            out, target = self.net(photo), self.targets(photo)
            outs.append(out.float().cpu())
            teacher_outs.append(target.float().cpu())
            totals.append({k: v.item() for k, v in self.loss(out, content=target).items()})
        means = {f"val/{k}": sum(t[k] for t in totals) / len(totals) for k in totals[0]}
        for logger in self.loggers if log else ():
            logger.log_metrics(means, step=self.global_step)  # exactly this step, rank 0 only
        rows = [[p.cpu() for p in self.val_photos], *([teacher_outs] if self.teacher else []),
                outs]  # photos, the teacher's results when distilling, this network's
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
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(FIXED_PREFIXES)]:
            del state[key]
        bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
        if bad:  # never let a NaN overwrite the last good checkpoint
            raise NonFiniteLossError(f"the weights hold NaN or inf at step {self.global_step}"
                                     f" ({bad[0]})")
        checkpoint["fastnst"] = {"skipped_images": self.skipped_images}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_images = int(checkpoint.get("fastnst", {}).get("skipped_images", 0))
