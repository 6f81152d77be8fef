"""The Gatys et al. (2016) baseline: optimise one image's pixels against the perceptual loss
with L-BFGS (or Adam), optionally coarse to fine. Its command line is fastnst.gatys.

    result = stylize(photo, [painting], loss, GatysOptions(size=256, iterations=100))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from fastnst.color import keep_colors, luminance, match_luminance
from fastnst.config_checks import SEED_BOUND, Bound, bounds_of, check_options, option
from fastnst.errors import FastnstError
from fastnst.images import resize, resize_long_side
from fastnst.losses import LossOptions, PerceptualLoss, StyleWeights
from fastnst.vgg import VGG_MIN_SIDE

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # Adam's step is in [0, 1] pixel units


@dataclass
class GatysOptions:
    """How one photo is optimised. They are also the command line's options (conf/gatys.yaml
    builds on GatysConfig): a new option is a field here and its use in `stylize`."""

    size: int = option(512, "long side of the result, pixels",
                        Bound(VGG_MIN_SIDE, 16384, integer=True))
    levels: int = option(1, "coarse to fine: 3 with size=1024 runs 256 -> 512 -> 1024",
                          Bound(1, 10, integer=True))
    iterations: int = option(300, "per level", Bound(1, 1_000_000, integer=True))
    optimizer: str = option("lbfgs", "lbfgs | adam", choices=OPTIMIZERS)
    lr: float | None = option(None, "step size; null: 1.0 for L-BFGS, 0.02 for Adam",
                                  Bound(1e-12, None, nullable=True))
    init: str = option("content", "the starting image: content | noise | style", choices=INITS)
    style_scale: float = option(1.0, "painting long side relative to the result's",
                                 Bound(0.01, 16))
    preserve_color: bool = option(False, "transfer luminance only, keep the photo's colours")
    style_weight_end: float = option(1.0, "style weight factor at the last iteration (linear"
                                      " from 1; 1 = constant)", Bound(0, None))
    average: int = option(0, "the result is the mean of the last N iterates (0: the last one)",
                           Bound(0, None, integer=True))
    seed: int = option(0, "seed of the noise start", SEED_BOUND)

    def __post_init__(self) -> None:
        check_options(self)

    @classmethod
    def from_config(cls, cfg: Any) -> GatysOptions:
        """The options of a composed `conf/gatys.yaml` (checked: ConfigError)."""
        return cls(**{f.name: cfg[f.name] for f in fields(cls)})


@dataclass
class GatysConfig(GatysOptions):
    """The schema of `conf/gatys.yaml`: the options, and what the command line adds."""

    content: str | None = option(None, "the photo (required)")
    output: str | None = option(None, "result file; null: <photo stem>_<style>.png here")
    # Any, not dict[str, float] | None: OmegaConf cannot override a typed null dict.
    blend: Any = option(None, "more styles, e.g. blend={the_scream: 0.5}; the main style weighs 1")
    save_every: int = option(0, "also write <output>.<size>px.iterNNNN.png every N iterations"
                             " (0: never)", Bound(0, None, integer=True))
    overwrite: bool = option(False, "replace an existing output and snapshots (never an input)")
    device: str = option("auto", "auto | cpu | cuda")
    progress: bool = option(True, "show a progress bar")
    style: Any = None  # the style group: conf/style/
    loss: Any = None  # the loss group: conf/loss/


# Every numeric option of the command line and its range (checked where it starts).
GATYS_BOUNDS: dict[str, Bound] = {**bounds_of(StyleWeights, "style."),
                                   **bounds_of(LossOptions, "loss."), **bounds_of(GatysConfig)}


class DivergedError(FastnstError, RuntimeError):
    """The optimisation ended with NaN or inf in the image."""


@dataclass
class GatysResult:
    """The stylized image `(1, 3, H, W)` in [0, 1] and how the optimisation went."""

    image: torch.Tensor
    # losses[level][i]: weighted loss terms after i iterations at that level (i = 0..iterations).
    losses: list[list[dict[str, float]]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    seconds: float = 0.0  # optimisation time, all levels, without loading and setup
    iterations: int = 0  # iterations run, all levels


class GatysInterrupted(KeyboardInterrupt):
    """Ctrl-C during the optimisation: `result.image` is the image so far, after `done` of the
    level's iterations at `size` px; `output` is where `run` wrote it."""

    def __init__(self, result: GatysResult, size: int, done: int) -> None:
        super().__init__(f"interrupted after {done} iterations at {size} px")
        self.result, self.size, self.done = result, size, done
        self.output: Path | None = None


class _Stopped(Exception):
    def __init__(self, image: torch.Tensor, done: int) -> None:
        self.image, self.done = image, done


def level_sizes(size: int, levels: int) -> list[int]:
    """Long sides of the coarse-to-fine levels, halving down: (512, 3) -> [128, 256, 512]."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, not {levels}")
    return [max(VGG_MIN_SIDE, round(size / 2 ** (levels - 1 - i))) for i in range(levels)]


def style_weight_factor(iteration: int, iterations: int, end: float) -> float:
    """Linear schedule of the style weight: factor 1 at the first iteration, `end` at the last."""
    if iterations <= 1:
        return 1.0
    return 1.0 + (end - 1.0) * iteration / (iterations - 1)


def stylize(content: torch.Tensor, styles: Sequence[torch.Tensor], loss: PerceptualLoss,
            options: GatysOptions | None = None, *, blend: Sequence[float] | None = None,
            on_iteration: Callable[[int, int, torch.Tensor], None] | None = None,
            progress: bool = True) -> GatysResult:
    """Stylize `content` (`(1, 3, H, W)`, [0, 1]) with `styles` blended by `blend` (weights,
    one per style; default: equal), as `options` say (default: GatysOptions()).

    on_iteration(size, iteration, image) is called after every iteration. Ctrl-C raises
    GatysInterrupted, which holds the result so far.
    """
    o = options or GatysOptions()
    device = loss.vgg.mean.device
    generator = torch.Generator(device="cpu").manual_seed(o.seed)
    content = content.to(device)
    result = GatysResult(image=content, sizes=level_sizes(o.size, o.levels))
    x: torch.Tensor | None = None
    for level_size in result.sizes:
        c = resize_long_side(content, level_size)
        level_styles = [resize_long_side(s.to(device),
                                         max(VGG_MIN_SIDE, round(level_size * o.style_scale)))
                        for s in styles]
        if o.preserve_color:
            level_styles = [match_luminance(s, c) for s in level_styles]
            c = luminance(c)
        loss.set_style(level_styles, blend)
        targets = loss.content_targets(c)
        if x is None:
            x = _initial_image(o.init, c, level_styles[0], generator)
        else:
            x = resize(x, tuple(c.shape[-2:]))
        start = time.perf_counter()
        try:
            x, history = _optimize(x, loss, targets, o, desc=f"gatys {level_size}px",
                                   progress=progress, on_iteration=(
                                       lambda i, img, s=level_size: on_iteration(s, i, img))
                                   if on_iteration else None)
        except _Stopped as stop:
            result.seconds += time.perf_counter() - start
            result.iterations += stop.done
            result.image = _finish(stop.image, content, o.preserve_color)
            raise GatysInterrupted(result, level_size, stop.done) from None
        if device.type == "cuda":
            torch.cuda.synchronize()
        result.seconds += time.perf_counter() - start
        result.iterations += o.iterations
        result.losses.append(history)
    assert x is not None
    result.image = _finish(x, content, o.preserve_color)
    return result


def _finish(x: torch.Tensor, content: torch.Tensor, preserve_color: bool) -> torch.Tensor:
    """The optimised pixels as the result image: clamped, with the photo's colours if asked."""
    out = x.detach().clamp(0, 1)
    if preserve_color:
        out = keep_colors(resize(content, tuple(out.shape[-2:])), out)
    return out


def _initial_image(init: str, content: torch.Tensor, style: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    if init == "content":
        return content.clone()
    if init == "noise":
        return torch.rand(content.shape, generator=generator).to(content)
    return resize(style, tuple(content.shape[-2:]))


def _optimize(x: torch.Tensor, loss: PerceptualLoss, targets: Mapping[str, torch.Tensor],
              o: GatysOptions, desc: str, progress: bool,
              on_iteration: Callable[[int, torch.Tensor], None] | None
              ) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Run `o.iterations` optimiser steps on the pixels of `x`; return the image and the loss
    history."""
    from tqdm import tqdm

    x = x.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    iterations, average = o.iterations, o.average
    step_size = DEFAULT_LR[o.optimizer] if o.lr is None else o.lr
    if o.optimizer == "lbfgs":
        # One function evaluation per iteration, no line search: the classic neural-style setup.
        # Pixels are clamped to [0, 1] after every step. Measured (chicago, 256 px, 100 steps):
        # this converges as fast as unconstrained L-BFGS, whose image loses 40% when clamped.
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=step_size, max_iter=1, history_size=100, tolerance_grad=-1.0,
            tolerance_change=-1.0)
    else:
        opt = torch.optim.Adam([x], lr=step_size)
    history: list[dict[str, float]] = []
    mean: torch.Tensor | None = None
    bar = tqdm(range(iterations), desc=desc, disable=not progress, leave=False, unit="it")
    done = 0
    try:
        for i in bar:
            style_weight = loss.style_weight * style_weight_factor(i, iterations,
                                                                   o.style_weight_end)

            def closure(style_weight: float = style_weight) -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                terms = loss(x, content_targets=targets, style_weight=style_weight)
                terms["total"].backward()
                history.append({k: v.item() for k, v in terms.items()})
                return terms["total"]

            opt.step(closure)
            with torch.no_grad():
                x.clamp_(0, 1)
                if i >= iterations - average:
                    mean = x.detach().clone() if mean is None else mean + x.detach()
            done = i + 1
            bar.set_postfix({k: f"{v:.3g}" for k, v in history[-1].items()})
            if on_iteration is not None:
                on_iteration(done, x.detach())
    except KeyboardInterrupt:  # the pixels are whole after every step: keep them
        bar.close()
        raise _Stopped(x.detach().clone(), done) from None
    out = x.detach() if mean is None else mean / min(average, iterations)
    with torch.no_grad():
        final_weight = loss.style_weight * style_weight_factor(iterations - 1, iterations,
                                                               o.style_weight_end)
        terms = loss(out, content_targets=targets, style_weight=final_weight)
    history.append({k: v.item() for k, v in terms.items()})
    return out, history
