"""The Gatys baseline's command line (the optimisation itself is fastnst.baseline):

    python -m fastnst.gatys content=photo.jpg style=starry_night output=out.png size=512
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.baseline import (
    GATYS_BOUNDS,
    DivergedError,
    GatysConfig,
    GatysInterrupted,
    GatysOptions,
    level_sizes,
    stylize,
)
from fastnst.color import keep_colors
from fastnst.config_checks import Bound, ConfigError, check_config, describe_options
from fastnst.console import prepare_console, shown
from fastnst.errors import UsageError, exit_on_error
from fastnst.files import OutputExists, check_name_length, check_output, fit_name
from fastnst.images import ImageError, check_image_output, read_image, resize, write_image
from fastnst.vgg import VGG_MIN_SIDE

HELP = """python -m fastnst.gatys content=PHOTO [key=value ...]: the Gatys et al. baseline, the
photo's pixels optimised with L-BFGS against the VGG19 content and style losses.

Examples:
  python -m fastnst.gatys content=photo.jpg style=starry_night
  python -m fastnst.gatys content=photo.jpg style=path/to/painting.jpg size=256 iterations=100
  python -m fastnst.gatys content=photo.jpg style=udnie blend={{the_scream: 0.5}}
  python -m fastnst.gatys content=photo.jpg style=mosaic preserve_color=true levels=3 size=1024

Arguments are Hydra overrides, key=value. Options and their defaults (docs/gatys.md):
{options}
  style=starry_night   a style from conf/style/ ({styles}), or the path of any painting
  style.style_weight=  style.content_weight=  style.tv_weight=   the loss weights of the style
  loss.*               the loss network's layers and weights (conf/loss/vgg19.yaml)
"""


def run(cfg: DictConfig) -> Path:
    """Run the baseline as configured by `conf/gatys.yaml`; return the output path."""
    import hydra

    from fastnst.device import resolve_device
    from fastnst.model_files import style_label
    from fastnst.paintings import painting_file

    if not cfg.content:
        raise UsageError("no photo: give content=PHOTO")
    check_config(cfg, GATYS_BOUNDS)
    options = GatysOptions.from_config(cfg)
    if cfg.blend is not None and not OmegaConf.is_dict(cfg.blend):  # blend=5, blend=[udnie]
        given = OmegaConf.to_container(cfg.blend) if OmegaConf.is_config(cfg.blend) else cfg.blend
        raise ConfigError(f"blend={shown(given)}: give styles and their weights, e.g."
                          " blend={the_scream: 0.5}")
    for spec, weight in (cfg.blend or {}).items():
        if problem := Bound(0, None).problem(weight):
            raise ConfigError(f"blend.{spec}={weight!r}: {problem}")
    torch.manual_seed(options.seed)
    device = resolve_device(cfg.device)
    content_path = Path(cfg.content)
    if cfg.output:
        check_name_length(cfg.output)
    output = Path(cfg.output or fit_name(content_path.stem, f"_{style_label(cfg.style.name)}.png"))
    check_image_output(output)  # before the optimisation, not after it
    content = read_image(content_path, max_size=options.size)  # the result's size: decode no more
    paintings = [painting_file(cfg.style), *(painting_file(str(s)) for s in cfg.blend or {})]
    check_output(output, [content_path, *paintings], cfg.overwrite, "overwrite=true")  # inputs
    snapshots = Snapshots(output, level_sizes(options.size, options.levels), options.iterations,
                          cfg.save_every)
    snapshots.check(cfg.overwrite)
    h, w = content.shape[-2:]
    smallest = round(min(h, w) * level_sizes(options.size, options.levels)[0] / max(h, w))
    if smallest < VGG_MIN_SIDE:
        raise ImageError(content_path, f"{w}x{h} px is too small: at size={options.size} and"
                                       f" levels={options.levels} its short side would be"
                                       f" {smallest} px, and the VGG19 loss needs at least"
                                       f" {VGG_MIN_SIDE}")
    style_max = max(VGG_MIN_SIDE, round(options.size * options.style_scale))
    styles = [read_image(path, max_size=style_max) for path in paintings]
    weights = [1.0, *(float(weight) for weight in (cfg.blend or {}).values())]
    loss = hydra.utils.instantiate(cfg.loss).to(device)

    def save_intermediate(level_size: int, iteration: int, image: torch.Tensor) -> None:
        if snapshots.due(iteration) and image.isfinite().all():
            img = image.clamp(0, 1)
            if options.preserve_color:
                img = keep_colors(resize(content.to(img.device), tuple(img.shape[-2:])), img)
            snapshots.write(img, level_size, iteration, cfg.overwrite)

    try:
        result = stylize(content, styles, loss, options, blend=weights,
                         on_iteration=save_intermediate, progress=cfg.progress)
    except GatysInterrupted as stop:  # keep the work done so far, if it has not diverged
        if stop.result.image.isfinite().all():
            stop.output = write_image(stop.result.image, output, replace=cfg.overwrite)
        raise
    if not result.image.isfinite().all():
        raise DivergedError(f"{output}: the optimisation diverged (NaN or inf in the image);"
                            " nothing written; try a lower lr= or optimizer=adam")
    write_image(result.image, output, replace=cfg.overwrite)
    final = result.losses[-1][-1]
    h, w = result.image.shape[-2:]
    print(f"wrote {shown(output)} ({w}x{h}) in {result.seconds:.1f} s"
          f" ({result.seconds / max(1, result.iterations):.3f} s/iteration on {device});"
          f" loss {final['total']:.4g} = content {final['content']:.4g}"
          f" + style {final['style']:.4g} + tv {final['tv']:.4g}")
    return output


class Snapshots:
    """The `save_every` snapshots of a run: `<output stem>.<size>px.iterNNNN<output suffix>`
    beside the output, created exclusively (an existing file is kept unless overwrite=true)."""

    def __init__(self, output: Path, sizes: list[int], iterations: int, every: int) -> None:
        self.output, self.sizes, self.iterations, self.every = output, sizes, iterations, every

    def path(self, size: int, iteration: int) -> Path:
        out = self.output
        return out.with_name(fit_name(out.stem, f".{size}px.iter{iteration:04d}{out.suffix}"))

    def due(self, iteration: int) -> bool:
        return bool(self.every) and iteration % self.every == 0

    def check(self, overwrite: bool) -> None:
        """OutputExists (before the optimisation) when a snapshot this run would write exists:
        the folder is listed once, however many snapshots are due."""
        if not self.every or overwrite:
            return
        out = self.output
        pattern = re.compile(rf"{re.escape(out.stem)}\.(\d+)px\.iter(\d+){re.escape(out.suffix)}")
        try:
            names = os.listdir(out.parent if str(out.parent) else os.curdir)
        except OSError:  # a folder to be: nothing in it yet
            return
        for name in names:
            match = pattern.fullmatch(name)
            if match and int(match.group(1)) in self.sizes and self.due(
                    iteration := int(match.group(2))) and 0 < iteration <= self.iterations:
                raise OutputExists(errno.EEXIST, f"{shown(out.parent / name)}: a snapshot this"
                                   " run would write exists; kept (overwrite=true replaces it,"
                                   " or give another output=)")

    def write(self, image: torch.Tensor, size: int, iteration: int, overwrite: bool) -> None:
        """Write one snapshot; one that appeared meanwhile is kept, with a warning."""
        path = self.path(size, iteration)
        try:
            write_image(image, path, replace=overwrite)
        except FileExistsError:
            print(f"fastnst-gatys: {shown(path)}: exists (written meanwhile); kept",
                  file=sys.stderr)


def main() -> None:
    """Console entry point: `fastnst-gatys` / `python -m fastnst.gatys` (Hydra overrides)."""
    prepare_console()
    import hydra

    from fastnst.config_checks import prepare_overrides
    from fastnst.paintings import style_names

    if {"--help", "-h"} & set(sys.argv[1:]):
        print(HELP.format(options=describe_options(GatysConfig), styles=", ".join(style_names())))
        return
    prepare_overrides("fastnst-gatys")

    @hydra.main(version_base="1.3", config_path="pkg://fastnst.conf", config_name="gatys")
    def _main(cfg: DictConfig) -> None:
        try:
            with exit_on_error("fastnst-gatys"):
                run(cfg)
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
