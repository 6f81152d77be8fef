"""The LightningModule that trains a universal style transfer decoder (fastnst.universal).

Without paintings it learns to turn VGG19's features at one layer back into the photo, from
photos alone (Li et al. 2017): the loss is the pixel error plus the feature error at every
VGG19 `relu<b>_1` down to the decoder's layer, each feature term normalised by its target's
mean square (so that the layers weigh alike whatever their scale).

With paintings it learns to paint (as AdaIN's decoder does, Huang & Belongie 2017, with WCT's
transform): each photo's features are whitened and coloured with those of a crop of a random
painting, its hues turned at random, and the decoder's image is judged by the Gatys yardstick
(content at relu4_2 against the photo, Gram style against the crop; fastnst.quality). The VGG19
encoder is fixed and never checkpointed.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fastnst.color import rotate_hue
from fastnst.images import grid, write_image
from fastnst.losses import gram
from fastnst.training.data import random_crop
from fastnst.training.module import (
    FINAL_LOSS_STEPS,
    NonFiniteLossError,
    keep_trained_weights,
    lr_factor,
)
from fastnst.universal import DECODER_LAYERS, Decoder, moments, transfer
from fastnst.vgg import VGGFeatures


class DecoderModule(pl.LightningModule):
    """Trains `Decoder(layer)`; batches are `(photos, unreadable files passed over)`."""

    def __init__(self, layer: str, weights: str | None = None, lr: float = 1e-4,
                 warmup_steps: int = 100, final_lr: float = 0.1, feature_weight: float = 1.0,
                 val_photos: list[torch.Tensor] | None = None, sample_every: int = 0,
                 sample_dir: Path | None = None, paintings: list[torch.Tensor] | None = None,
                 style_weight: float = 1.0, hue_jitter: float = 0.0, seed: int = 0,
                 transform: str = "wct") -> None:
        super().__init__()
        self.decoder = Decoder(layer, transform)
        self.taps = DECODER_LAYERS[:DECODER_LAYERS.index(layer) + 1]
        self.paintings = paintings or []
        self.hue_jitter, self.seed = hue_jitter, seed
        if self.paintings:  # one VGG19 for the transform and the yardstick
            from fastnst.quality import gatys_yardstick

            self.loss = gatys_yardstick(style_weight, weights)
            self.encoder = self.loss.vgg
        else:
            self.encoder = VGGFeatures(self.taps, weights)
        self.layer, self.lr, self.warmup_steps, self.final_lr = layer, lr, warmup_steps, final_lr
        self.feature_weight = feature_weight
        self.val_photos = val_photos or []
        self.sample_every, self.sample_dir = sample_every, sample_dir
        self.strict_loading = False  # checkpoints hold no encoder weights
        self.skipped_images = 0
        self.recent: deque[dict[str, torch.Tensor]] = deque(maxlen=FINAL_LOSS_STEPS)

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        """The photos `(N, 3, H, W)`, encoded to the decoder's layer and decoded (with paintings:
        coloured with the first painting's features first)."""
        features = self.encoder(photos, [self.layer])[self.layer]
        if self.paintings:
            style = self.encoder(self.paintings[0].to(photos), [self.layer])[self.layer]
            features = self.coloured(features, style.expand(len(features), -1, -1, -1))
        return self.decoder(features)

    def coloured(self, features: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Each of `features` `(N, C, h, w)` whitened and coloured with the same item of
        `style` `(N, C, h', w')` (exact roots: fastnst.universal.exact_covariance_roots), or
        given its channels' statistics for an AdaIN decoder."""
        diagonal = self.decoder.transform == "adain"
        out = [transfer(f.flatten(1), moments(f.flatten(1), exact=True, diagonal=diagonal),
                        moments(s.flatten(1), exact=True, diagonal=diagonal)).view_as(f)
               for f, s in zip(features, style, strict=True)]
        return torch.stack(out)

    def painting_crops(self, count: int, size: int) -> torch.Tensor:
        """`count` random `size` squares of the paintings `(count, 3, size, size)`, at the
        paintings' own scale, flipped half of the time and their hues turned by a random angle
        `hue_jitter` of the time; the same for the same step (a resumed run repeats them)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_step)
        crops = []
        for _ in range(count):
            painting = self.paintings[int(torch.randint(len(self.paintings), (1,), generator=g))]
            crop = random_crop(painting, size, g, short_side=max(size, min(painting.shape[-2:])))
            if float(torch.rand(1, generator=g)) < self.hue_jitter:
                crop = rotate_hue(crop, float(torch.rand(1, generator=g)) * 360.0 - 180.0)
            crops.append(crop)
        return torch.cat(crops)

    def terms(self, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"pixel", "features", "total"}` of the reconstruction of `photos`; with paintings
        `{"content", "style", "total"}` of them painted."""
        if self.paintings:
            return self.painting_terms(photos)
        with torch.no_grad():
            targets = self.encoder(photos, self.taps)
        out = self.decoder(targets[self.layer])
        feats = self.encoder(out, self.taps)
        features = sum(F.mse_loss(feats[t], targets[t]) / targets[t].pow(2).mean().clamp_min(1e-8)
                       for t in self.taps) / len(self.taps)
        pixel = F.mse_loss(out, photos)
        return {"pixel": pixel, "features": features,
                "total": pixel + self.feature_weight * features}

    def painting_terms(self, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        """The yardstick's content and (weighted) style terms of `photos` painted, each with a
        crop of a random painting (painting_crops)."""
        with torch.no_grad():
            crops = self.painting_crops(len(photos), photos.shape[-1]).to(photos)
            style = self.encoder(crops, self.loss.style_layers)
            self.loss.use_grams({k: gram(v) for k, v in style.items()})
            content = self.encoder(photos, [self.layer, *self.loss.content_layers])
            features = self.coloured(content[self.layer], style[self.layer])
        out = self.decoder(features).clamp(0, 1)
        terms = self.loss(out, content_targets=content)
        return {"content": terms["content"], "style": terms["style"],
                "total": terms["content"] + terms["style"]}

    def training_step(self, batch: tuple[torch.Tensor, int], batch_idx: int) -> torch.Tensor:
        photos, skipped = batch
        self.skipped_images += int(skipped)
        terms = self.terms(photos)
        if not torch.isfinite(terms["total"]):
            raise NonFiniteLossError(f"the loss is {terms['total'].item()} at step"
                                     f" {self.global_step}")
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, on_step=True)
        self.log("loss", terms["total"].detach(), prog_bar=True, logger=False)
        self.recent.append({k: v.detach() for k, v in terms.items()})
        return terms["total"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.sample_every and self.global_step % self.sample_every == 0:
            self.write_samples()

    @torch.no_grad()
    def write_samples(self) -> None:
        """The validation photos above, their reconstructions below (rank 0 only)."""
        if not self.val_photos or self.sample_dir is None or not self.trainer.is_global_zero:
            return
        photos = [p.to(self.device) for p in self.val_photos]
        rows = [[p.cpu() for p in photos], [self(p).clamp(0, 1).cpu() for p in photos]]
        write_image(grid(rows), self.sample_dir / f"step_{self.global_step:06d}.png")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.decoder.parameters(), lr=self.lr)
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps else 0
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, self.warmup_steps, total, self.final_lr))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule,
                                                         "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep_trained_weights(checkpoint, ("encoder.", "loss."), self.global_step)
        checkpoint["fastnst"] = {"skipped_images": self.skipped_images}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_images = int(checkpoint.get("fastnst", {}).get("skipped_images", 0))

    def final_losses(self) -> dict[str, float]:
        """Mean loss terms over the last (up to FINAL_LOSS_STEPS) steps."""
        if not self.recent:
            return {}
        return {k: float(torch.stack([r[k] for r in self.recent]).mean())
                for k in self.recent[0]}
