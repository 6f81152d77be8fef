"""The per-image baseline of Gatys et al. (2016): optimise one image's pixels against the
perceptual loss with L-BFGS (or Adam), optionally coarse to fine.

    python -m fastnst.gatys content=photo.jpg style=starry_night output=out.png size=512
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from fastnst.color import keep_colors, luminance, match_luminance
from fastnst.console import prepare_console, shown
from fastnst.images import (
    ImageError,
    check_image_output,
    read_image,
    resize,
    resize_long_side,
    write_image,
)
from fastnst.losses import PerceptualLoss
from fastnst.vgg import VGG_MIN_SIDE

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # Adam's step is in [0, 1] pixel units


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


def stylize(content: torch.Tensor, styles: Sequence[torch.Tensor], loss: PerceptualLoss, *,
            blend: Sequence[float] | None = None, size: int = 512, levels: int = 1,
            iterations: int = 300, optimizer: str = "lbfgs", lr: float | None = None,
            init: str = "content", style_scale: float = 1.0, preserve_color: bool = False,
            style_weight_end: float = 1.0, average: int = 0, seed: int = 0,
            on_iteration: Callable[[int, int, torch.Tensor], None] | None = None,
            progress: bool = True) -> GatysResult:
    """Stylize `content` (`(1, 3, H, W)`, [0, 1]) with the blended `styles`.

    size: long side of the result (pixels); levels: coarse-to-fine levels, each half the size of
    the next and initialised from the last; iterations: per level; init: content | noise | style;
    style_scale: painting long side relative to the level's size; preserve_color: transfer
    luminance only and keep the photo's colours; style_weight_end: the style weight's factor at
    the last iteration (linear from 1; 1 = constant); average: return the mean of the last
    `average` iterates (0 = the last iterate); on_iteration(size, iteration, image) is called
    after every iteration. Ctrl-C raises GatysInterrupted, which holds the result so far.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {optimizer!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, not {init!r}")
    device = loss.vgg.mean.device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    content = content.to(device)
    result = GatysResult(image=content, sizes=level_sizes(size, levels))
    x: torch.Tensor | None = None
    for level_size in result.sizes:
        c = resize_long_side(content, level_size)
        level_styles = [resize_long_side(s.to(device),
                                         max(VGG_MIN_SIDE, round(level_size * style_scale)))
                        for s in styles]
        if preserve_color:
            level_styles = [match_luminance(s, c) for s in level_styles]
            c = luminance(c)
        loss.set_style(level_styles, blend)
        targets = loss.content_targets(c)
        if x is None:
            x = _initial_image(init, c, level_styles[0], generator)
        else:
            x = resize(x, tuple(c.shape[-2:]))
        start = time.perf_counter()
        try:
            x, history = _optimize(x, loss, targets, iterations, optimizer, lr,
                                   style_weight_end, average, desc=f"gatys {level_size}px",
                                   progress=progress, on_iteration=(
                                       lambda i, img, s=level_size: on_iteration(s, i, img))
                                   if on_iteration else None)
        except _Stopped as stop:
            result.seconds += time.perf_counter() - start
            result.iterations += stop.done
            result.image = _finish(stop.image, content, preserve_color)
            raise GatysInterrupted(result, level_size, stop.done) from None
        if device.type == "cuda":
            torch.cuda.synchronize()
        result.seconds += time.perf_counter() - start
        result.iterations += iterations
        result.losses.append(history)
    assert x is not None
    result.image = _finish(x, content, preserve_color)
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
              iterations: int, optimizer: str, lr: float | None, style_weight_end: float,
              average: int, desc: str, progress: bool,
              on_iteration: Callable[[int, torch.Tensor], None] | None
              ) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Run `iterations` optimiser steps on the pixels of `x`; return the image and loss history."""
    from tqdm import tqdm

    x = x.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    step_size = DEFAULT_LR[optimizer] if lr is None else lr
    if optimizer == "lbfgs":
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
                                                                   style_weight_end)

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
                                                               style_weight_end)
        terms = loss(out, content_targets=targets, style_weight=final_weight)
    history.append({k: v.item() for k, v in terms.items()})
    return out, history


def run(cfg: DictConfig) -> Path:
    """Run the baseline as configured by `conf/gatys.yaml`; return the output path."""
    import hydra

    from fastnst.config_checks import GATYS_BOUNDS, Bound, ConfigError, check_config
    from fastnst.device import resolve_device
    from fastnst.model_files import style_label
    from fastnst.paintings import load_painting, read_painting

    if not cfg.content:
        raise ValueError("no content image: give content=PHOTO")
    check_config(cfg, GATYS_BOUNDS)
    for spec, weight in (cfg.blend or {}).items():
        if problem := Bound(0, None).problem(weight):
            raise ConfigError(f"blend.{spec}={weight!r}: {problem}")
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    content_path = Path(cfg.content)
    output = Path(cfg.output or f"{content_path.stem}_{style_label(cfg.style.name)}.png")
    check_image_output(output)  # before the optimisation, not after it
    content = read_image(content_path, max_size=cfg.size)  # the result's size: decode no more
    h, w = content.shape[-2:]
    smallest = round(min(h, w) * level_sizes(cfg.size, cfg.levels)[0] / max(h, w))
    if smallest < VGG_MIN_SIDE:
        raise ImageError(content_path, f"{w}x{h} px is too small: at size={cfg.size} and"
                                       f" levels={cfg.levels} its short side would be {smallest}"
                                       f" px, and the VGG19 loss needs at least {VGG_MIN_SIDE}")
    style_max = max(VGG_MIN_SIDE, round(cfg.size * cfg.style_scale))
    styles = [read_painting(cfg.style, max_size=style_max)]
    weights = [1.0]
    for spec, weight in (cfg.blend or {}).items():
        styles.append(load_painting(str(spec), max_size=style_max))
        weights.append(float(weight))
    loss = hydra.utils.instantiate(cfg.loss).to(device)

    def save_intermediate(level_size: int, iteration: int, image: torch.Tensor) -> None:
        if cfg.save_every and iteration % cfg.save_every == 0 and image.isfinite().all():
            img = image.clamp(0, 1)
            if cfg.preserve_color:
                img = keep_colors(resize(content.to(img.device), tuple(img.shape[-2:])), img)
            write_image(img, output.with_name(f"{output.stem}.{level_size}px.iter{iteration:04d}"
                                              f"{output.suffix}"))

    try:
        result = stylize(content, styles, loss, blend=weights, size=cfg.size, levels=cfg.levels,
                         iterations=cfg.iterations, optimizer=cfg.optimizer, lr=cfg.lr,
                         init=cfg.init, style_scale=cfg.style_scale,
                         preserve_color=cfg.preserve_color,
                         style_weight_end=cfg.style_weight_end, average=cfg.average,
                         seed=cfg.seed, on_iteration=save_intermediate, progress=cfg.progress)
    except GatysInterrupted as stop:  # keep the work done so far, if it has not diverged
        if stop.result.image.isfinite().all():
            stop.output = write_image(stop.result.image, output)
        raise
    if not result.image.isfinite().all():
        raise RuntimeError(f"{output}: the optimisation diverged (NaN or inf in the image);"
                           " nothing written; try a lower lr= or optimizer=adam")
    write_image(result.image, output)
    final = result.losses[-1][-1]
    h, w = result.image.shape[-2:]
    print(f"wrote {output} ({w}x{h}) in {result.seconds:.1f} s"
          f" ({result.seconds / max(1, result.iterations):.3f} s/iteration on {device});"
          f" loss {final['total']:.4g} = content {final['content']:.4g}"
          f" + style {final['style']:.4g} + tv {final['tv']:.4g}")
    return output


def main() -> None:
    """Console entry point: `fastnst-gatys` / `python -m fastnst.gatys` (Hydra overrides)."""
    prepare_console()
    import hydra

    from fastnst.config_checks import prepare_overrides
    from fastnst.paintings import StyleError
    from fastnst.vgg import VGGWeightsError

    prepare_overrides("fastnst-gatys")

    @hydra.main(version_base="1.3", config_path="pkg://fastnst.conf", config_name="gatys")
    def _main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except (ImageError, StyleError, VGGWeightsError, ValueError, RuntimeError,
                OSError) as e:
            print(f"fastnst-gatys: error: {shown(e)}", file=sys.stderr)
            sys.exit(1)
        except GatysInterrupted as stop:
            where = (f"the result so far is in {shown(stop.output)}" if stop.output else
                     "the result so far had diverged (NaN); nothing written")
            print(f"fastnst-gatys: interrupted after {stop.done} of {cfg.iterations} iterations"
                  f" at {stop.size} px; {where}", file=sys.stderr)
            sys.exit(130)
        except KeyboardInterrupt:
            print("fastnst-gatys: interrupted before the optimisation; nothing written",
                  file=sys.stderr)
            sys.exit(130)

    _main()


if __name__ == "__main__":
    main()
