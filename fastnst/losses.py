"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016): content, Gram style, total variation.

Gram matrices are normalised by C*H*W and compared by mean squared error, so a style weight
means the same thing at any image size (the convention of jcjohnson/neural-style).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.config_checks import FROM_CONFIG, Bound, option
from fastnst.vgg import VGGFeatures


@dataclass(frozen=True)
class StyleWeights:
    """A style's loss weights (conf/style/<name>.yaml), for training and the Gatys baseline."""

    content_weight: float = option(FROM_CONFIG, "weight of the content term", Bound(0, None))
    style_weight: float = option(FROM_CONFIG, "weight of the Gram style term", Bound(0, None))
    tv_weight: float = option(FROM_CONFIG, "weight of total variation", Bound(0, None))


@dataclass(frozen=True)
class LossOptions:
    """The loss group's bounded options (conf/loss/<name>.yaml: PerceptualLoss)."""

    pixel_weight: float = option(FROM_CONFIG, "mean squared RGB difference from the photo",
                                 Bound(0, None))
    pixel_pool: int = option(FROM_CONFIG, "the pixel term compares N x N block means",
                             Bound(1, 4096, integer=True))


def gram(features: torch.Tensor) -> torch.Tensor:
    """`(N, C, H, W)` features -> `(N, C, C)` Gram matrices divided by C*H*W, in float32."""
    n, c, h, w = features.shape
    f = features.float().reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of feature maps."""
    return F.mse_loss(features.float(), target.float())


def style_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float]) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices; targets `(1 or N, C, C)`."""
    terms = [w * F.mse_loss(gram(features[name]), targets[name].expand(
        features[name].shape[0], -1, -1)) for name, w in layer_weights.items()]
    return torch.stack(terms).sum()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels, both directions."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.float().pow(2).mean() + dx.float().pow(2).mean()


class PerceptualLoss(nn.Module):
    """content_weight * content + style_weight * style + tv_weight * TV + pixel_weight * pixel,
    on VGG19 features; `pixel` is the mean squared RGB difference from the content image, of
    `pixel_pool` x `pixel_pool` block means (1: pixel by pixel; 4: the layout only, not the
    strokes).

    Call `set_style` once with the painting(s); the Gram targets are kept as buffers and
    broadcast over any batch. Images are `(N, 3, H, W)` RGB in [0, 1].
    """

    def __init__(self, content_layers: Mapping[str, float], style_layers: Mapping[str, float],
                 content_weight: float = 1.0, style_weight: float = 20.0,
                 tv_weight: float = 0.0, weights: str | os.PathLike[str] | None = None,
                 pooling: str = "max", pixel_weight: float = 0.0, pixel_pool: int = 1) -> None:
        super().__init__()
        self.content_layers = {str(k): float(v) for k, v in content_layers.items()}
        self.style_layers = {str(k): float(v) for k, v in style_layers.items()}
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.pixel_weight = float(pixel_weight)
        if int(pixel_pool) < 1:
            raise ValueError(f"pixel_pool must be at least 1, not {pixel_pool}")
        self.pixel_pool = int(pixel_pool)
        self.vgg = VGGFeatures([*self.content_layers, *self.style_layers], weights, pooling)
        self.style_targets: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def set_style(self, images: Sequence[torch.Tensor],
                  blend: Sequence[float] | None = None) -> None:
        """Compute the Gram targets of one or several paintings, blended by `blend` weights."""
        self.use_grams(self.grams(images, blend))

    @torch.no_grad()
    def grams(self, images: Sequence[torch.Tensor], blend: Sequence[float] | None = None
              ) -> dict[str, torch.Tensor]:
        """The Gram targets of the paintings `images`, blended by `blend` weights (for
        `use_grams`; `set_style` is both)."""
        blend = [1.0] * len(images) if blend is None else [float(b) for b in blend]
        if len(blend) != len(images) or not images or sum(blend) <= 0:
            raise ValueError("set_style needs as many positive blend weights as paintings")
        targets: dict[str, torch.Tensor] = {}
        for image, weight in zip(images, blend, strict=True):
            feats = self.vgg(image.to(self.vgg.mean.device), layers=self.style_layers)
            for name in self.style_layers:
                g = gram(feats[name]).mean(0, keepdim=True) * (weight / sum(blend))
                targets[name] = targets[name] + g if name in targets else g
        return targets

    def use_grams(self, targets: Mapping[str, torch.Tensor]) -> None:
        """Make `targets` (from `grams`) the style the loss compares with."""
        for name, target in targets.items():
            self.register_buffer(f"gram_{name}", target, persistent=False)
        self.style_targets = dict(targets)

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content-layer features of `content`, to reuse across many evaluations."""
        return self.vgg(content, layers=self.content_layers)

    def forward(self, image: torch.Tensor, content: torch.Tensor | None = None,
                content_targets: Mapping[str, torch.Tensor] | None = None,
                style_weight: float | None = None) -> dict[str, torch.Tensor]:
        """Weighted loss terms `{"content", "style", "tv", "total"}` for `image`, and "pixel"
        when `pixel_weight` is set (it needs `content`).

        Give either the `content` images (same batch) or their precomputed `content_targets`.
        `style_weight` overrides the configured one (for schedules).
        """
        if not self.style_targets:
            raise RuntimeError("PerceptualLoss.set_style must be called before computing losses")
        if content_targets is None:
            if content is None:
                raise ValueError("give content or content_targets")
            content_targets = self.content_targets(content)
        feats = self.vgg(image)
        targets = {name: getattr(self, f"gram_{name}") for name in self.style_targets}
        c = torch.stack([w * content_loss(feats[n], content_targets[n])
                         for n, w in self.content_layers.items()]).sum()
        s = style_loss(feats, targets, self.style_layers)
        terms = {"content": self.content_weight * c,
                 "style": (self.style_weight if style_weight is None else style_weight) * s,
                 "tv": self.tv_weight * tv_loss(image)}
        if self.pixel_weight:
            if content is None:
                raise ValueError("pixel_weight needs the content images, not only their targets")
            pair = (image.float(), content.float())
            if self.pixel_pool > 1:
                pair = tuple(F.avg_pool2d(x, self.pixel_pool, ceil_mode=True) for x in pair)
            terms["pixel"] = self.pixel_weight * F.mse_loss(*pair)
        terms["total"] = torch.stack(list(terms.values())).sum()
        return terms
