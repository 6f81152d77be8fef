"""How good is a stylized image: the Gatys yardstick and a structure figure, photo vs result.

Every network, whatever loss it was trained with, is judged by the same yardstick: the Gatys
baseline's own loss config (`conf/loss/vgg19.yaml`: content at relu4_2, Gram style at
relu1_1..relu5_1), unweighted. The structure figure says how much of the photo's layout survives.
The Gram distance alone can be lowered without a result looking more like its painting, so
results are also asked whether they are *their own painting's*: `identity` finds, among the
paintings evaluated, the nearest one by Gram distance and by `palette_distance` (the colours).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from fastnst.images import resize_long_side
from fastnst.losses import PerceptualLoss, gram

PAINTING_SIDE = 256  # pixels: the long side of the painting whose Grams the yardstick compares
STRUCTURE_SIDE = 64  # pixels: the long side at which structure is compared (coarse shapes only)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luminance weights of R, G, B
# Style term of an unchanged photo / content term of a flat grey image, for the per-style weights
# (balanced_style_weight): measured best of 2, 4 and 13 (docs/training_recipes.md).
BALANCE = 2.0


def configured_loss(style: str | None = None, trained: Mapping[str, Any] | None = None,
                    **weights: float) -> PerceptualLoss:
    """The perceptual loss as configured: `style`'s weights (`conf/style/<style>.yaml`, default
    the default style) on `conf/loss/vgg19.yaml`, or the `trained` loss config a model recorded
    (metadata `training.loss`: a model is judged by the weights it was trained with, even after
    its style's config changes). `weights` (content_weight=, style_weight=, ...) override."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    if trained:
        return instantiate(trained, **weights)
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=[f"style={style}"] if style else [])
    return instantiate(cfg.loss, **weights)


def gatys_yardstick(style_weight: float = 1.0, weights: str | None = None) -> PerceptualLoss:
    """The Gatys baseline's perceptual loss (the layers of `conf/loss/vgg19.yaml`) with content
    weight 1, style weight `style_weight` (1: the yardstick's own) and no TV, on the VGG19 file
    `weights` (None: fastnst.vgg's search): call `set_style` with the painting at PAINTING_SIDE
    px, then `judge`. Made without Hydra, so that it also runs inside a training run."""
    content, style = yardstick_layers()
    return PerceptualLoss(content, style, content_weight=1.0, style_weight=style_weight,
                          tv_weight=0.0, weights=weights)


def yardstick_layers() -> tuple[dict[str, float], dict[str, float]]:
    """The yardstick's `(content_layers, style_layers)` as `conf/loss/vgg19.yaml` lists them,
    read without Hydra (for code that runs inside a Hydra app)."""
    from importlib import resources

    from omegaconf import OmegaConf

    cfg = OmegaConf.create((resources.files("fastnst.conf") / "loss" / "vgg19.yaml").read_text())
    return (dict(OmegaConf.to_container(cfg.content_layers)),
            dict(OmegaConf.to_container(cfg.style_layers)))


@dataclass(frozen=True)
class Scores:
    """A result judged against its photo: Gatys content and style loss (lower is closer to the
    photo and to the painting) and `structure` (in [-1, 1], higher keeps more of the photo)."""

    content: float
    style: float
    structure: float

    @staticmethod
    def mean(scores: Sequence[Scores]) -> Scores:
        """The mean of each figure over `scores` (at least one)."""
        return Scores(*(statistics.mean(getattr(s, f.name) for s in scores)
                        for f in fields(Scores)))


@torch.no_grad()
def judge(loss: PerceptualLoss, result: torch.Tensor, photo: torch.Tensor) -> Scores:
    """Score `(1, 3, H, W)` `result` against `photo` and the style `loss` was set to (use
    `gatys_yardstick()`)."""
    terms = loss(result, content=photo)
    return Scores(float(terms["content"]), float(terms["style"]), structure(photo, result))


def _luminance(image: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) of two `(1, 1, H, W)` images in [0, 1], Gaussian window."""
    x = torch.arange(window, dtype=torch.float32) - window // 2
    g = torch.exp(-x.pow(2) / (2 * sigma**2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).view(1, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


@torch.no_grad()
def structure(photo: torch.Tensor, result: torch.Tensor) -> float:
    """Luminance SSIM of `(1, 3, H, W)` photo and result at a STRUCTURE_SIDE px long side, in
    [-1, 1]; 1 is the same layout. A flat grey result scores about 0.3 on typical photos.

    At this size strokes and texture vanish and only the shapes are compared; blur is rewarded,
    so read it beside the pictures and the losses."""
    small = [_luminance(resize_long_side(t.float().cpu(), STRUCTURE_SIDE)) for t in (photo, result)]
    return ssim(*small)


@torch.no_grad()
def balanced_style_weight(loss: PerceptualLoss, photos: Sequence[torch.Tensor],
                          balance: float = BALANCE) -> tuple[float, float, float]:
    """The style weight under which the style term of an unchanged photo is `balance` times the
    content term of a flat grey image: `(balance * G / S, S, G)`. S is the style loss of the
    `(1, 3, H, W)` photos themselves, G the content loss of grey in their place, both averaged
    over the photos; `loss` is `gatys_yardstick()` (unit weights) set to the painting."""
    s = statistics.mean(judge(loss, p, p).style for p in photos)
    g = statistics.mean(judge(loss, torch.full_like(p, 0.5), p).content for p in photos)
    return balance * g / s, s, g


PALETTE_SIDE = 256  # pixels: the long side at which palettes are compared
PALETTE_DIRECTIONS = 64  # random directions in Lab of the sliced distance
PALETTE_QUANTILES = 256  # points of each direction's distribution compared


@torch.no_grad()
def palette(image: torch.Tensor) -> torch.Tensor:
    """The palette of `(1, 3, H, W)` RGB in [0, 1]: the sorted projections of its CIE Lab pixels
    (at most PALETTE_SIDE px) onto PALETTE_DIRECTIONS fixed random unit directions, each taken at
    PALETTE_QUANTILES quantiles: `(PALETTE_DIRECTIONS, PALETTE_QUANTILES)`, for
    palette_distance."""
    from fastnst.color import rgb_to_lab

    small = image.float().cpu()
    if max(small.shape[-2:]) > PALETTE_SIDE:  # shrunk, never enlarged (that mixes colours)
        small = resize_long_side(small, PALETTE_SIDE)
    lab = rgb_to_lab(small)[0].flatten(1)  # (3, n)
    directions = torch.randn(PALETTE_DIRECTIONS, 3, generator=torch.Generator().manual_seed(0))
    directions = directions / directions.norm(dim=1, keepdim=True)
    levels = (torch.arange(PALETTE_QUANTILES, dtype=torch.float32) + 0.5) / PALETTE_QUANTILES
    return torch.quantile(directions @ lab, levels, dim=1).T.contiguous()


def palette_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Sliced Wasserstein (W1) distance between two palettes (`palette`), in Lab units: the mean
    over directions of the mean gap between the two sorted distributions. 0 for the same
    colours in any arrangement; about 2 is just visible, 20-40 between unlike paintings."""
    return float((a - b).abs().mean())


@torch.no_grad()
def style_grams(loss: PerceptualLoss, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Gram matrices of `(1, 3, H, W)` `image` at `loss`'s style layers (for
    gram_distance; a painting at PAINTING_SIDE px, a result viewed whole)."""
    feats = loss.vgg(image.to(loss.vgg.mean.device), layers=loss.style_layers)
    return {name: gram(feats[name]) for name in loss.style_layers}


def gram_distance(loss: PerceptualLoss, a: dict[str, torch.Tensor],
                  b: dict[str, torch.Tensor]) -> float:
    """The yardstick's style distance between two images' style_grams: what `judge` reports
    as `style` for a result (a) against its painting (b)."""
    return loss.style_weight * sum(w * float(F.mse_loss(a[n], b[n]))
                                   for n, w in loss.style_layers.items())


def identity(distances: Sequence[float], own: int) -> bool:
    """Whether the result whose distances to every evaluated painting are `distances` is
    nearest to its own painting, the one at index `own`."""
    return min(range(len(distances)), key=distances.__getitem__) == own
