"""The bounds of every numeric option, checked where a command starts: a value out of range is
one line naming the option, before anything is loaded or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fastnst.errors import UsageError
from fastnst.vgg import VGG_MIN_SIDE


class ConfigError(UsageError):
    """An option out of its range; the message names the option and the range."""


@dataclass(frozen=True)
class Bound:
    """`low <= value <= high` (None: unbounded on that side), an integer if `integer`; null
    allowed if `nullable`; `also`: other values that mean something (-1: no limit)."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    nullable: bool = False
    also: tuple[float, ...] = ()

    def problem(self, value: object) -> str | None:
        """What is wrong with `value`, in words; None if it is in bounds."""
        if value is None and self.nullable:
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and value in self.also:
            return None
        ok = number and math.isfinite(value) and (not self.integer or float(value).is_integer())
        ok = ok and (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)
        if ok:
            return None
        kind = "an integer" if self.integer else "a number"
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        extras = [*map(_number, self.also), *(["null"] if self.nullable else [])]
        return f"must be {kind} in [{low}, {high}]" + (f" or {' or '.join(extras)}"
                                                     if extras else "")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def unset(value: Any) -> bool:
    """Whether a config value means "none": null, empty, or the text "null" (a CLI override)."""
    return value in (None, "", "null")


# The loss weights of both commands (the style group and the loss group).
WEIGHT_BOUNDS = {key: Bound(0, None) for key in (
    "style.content_weight", "style.style_weight", "style.tv_weight", "loss.pixel_weight")}

TRAIN_BOUNDS: dict[str, Bound] = {
    **WEIGHT_BOUNDS,
    "style_size": Bound(VGG_MIN_SIDE, 4096, integer=True),
    "optim.lr": Bound(1e-9, 1.0),
    "optim.warmup_steps": Bound(0, None, integer=True),
    "optim.final_lr": Bound(0, 1),
    "optim.grad_clip": Bound(1e-12, None, nullable=True),
    "sample_every": Bound(1, None, integer=True),
    "checkpoint_every": Bound(1, None, integer=True),
    "data.crop_size": Bound(VGG_MIN_SIDE, 4096, integer=True),
    "data.short_side": Bound(VGG_MIN_SIDE, 16384, integer=True, nullable=True),
    "data.batch_size": Bound(1, 4096, integer=True),
    "data.workers": Bound(0, 256, integer=True),
    "data.val_count": Bound(0, 1000, integer=True),
    "data.val_size": Bound(VGG_MIN_SIDE, 4096, integer=True),
    "trainer.max_steps": Bound(1, None, integer=True, also=(-1,)),
    "style_factor": Bound(0, 1e6),
    "loss.pixel_pool": Bound(1, 4096, integer=True),
}

# The Gatys baseline's bounds are on its options: fastnst.baseline.GATYS_BOUNDS.


def option(default: Any, help: str, bound: Bound | None = None,
           choices: Sequence[str] = ()) -> Any:
    """A field of an options dataclass: its default, one line of help, its range or choices
    (checked by `check_options`, listed by `describe_options`)."""
    return field(default=default, metadata={"help": help, "bound": bound, "choices": choices})


def check_options(options: Any) -> None:
    """Raise ConfigError for the first field of the dataclass `options` outside its bound or
    choices."""
    for f in fields(options):
        value, bound, choices = (getattr(options, f.name), f.metadata.get("bound"),
                                 f.metadata.get("choices"))
        if bound is not None and (problem := bound.problem(value)):
            raise ConfigError(f"{f.name}={value!r}: {problem}")
        if choices and value not in choices:
            raise ConfigError(f"{f.name}={value!r}: must be one of {', '.join(choices)}")


def describe_options(cls: type) -> str:
    """One line per field of the options dataclass `cls`: `name=default  help`."""
    rows = [(f"{f.name}={_shown_default(f.default)}", f.metadata["help"])
            for f in fields(cls) if "help" in f.metadata]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"  {key:<{width}}  {text}" for key, text in rows)


def _shown_default(value: object) -> str:
    return {None: "null", True: "true", False: "false"}.get(value, str(value)) \
        if isinstance(value, (bool, type(None))) else str(value)


def check_config(cfg: DictConfig, bounds: Mapping[str, Bound]) -> None:
    """Raise ConfigError for the first option of `cfg` outside `bounds` (dotted keys; a key
    the config does not have is skipped)."""
    for key, bound in bounds.items():
        if OmegaConf.select(cfg, key, default="<absent>") == "<absent>":
            continue
        value = OmegaConf.select(cfg, key)
        if problem := bound.problem(value):
            raise ConfigError(f"{key}={value!r}: {problem}")


def check_overrides(args: list[str]) -> None:
    """Refuse, before Hydra reads them, command-line arguments it would answer with a grammar
    error or a traceback: a bare word (`photo.jpg` for `content=photo.jpg`; `~key`, which
    deletes a key, is let through), an unknown style name (with the closest ones), and
    `style=image` without a painting."""
    import difflib

    from fastnst.paintings import IMAGE_STYLE, is_image_path, style_names

    takes_value = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name",
                   "-cn", "--config-dir", "-cd", "--info", "-i", "--experimental-rerun"}
    previous = ""
    for arg in args:
        flag_value = previous in takes_value
        previous = arg
        if arg.startswith("-") or flag_value:  # Hydra's own flags: --help, --cfg job, -m
            continue
        key, sep, value = arg.partition("=")
        if not sep and not arg.startswith("~"):  # ~key deletes a key: Hydra takes no value
            raise ConfigError(f"{arg!r}: arguments are key=value overrides, for example"
                              f" content={arg} or style={arg}")
        if key.lstrip("+~") != "style" or is_image_path(value):
            continue
        if value == IMAGE_STYLE:
            if not any(a.startswith("style.image=") for a in args):
                raise ConfigError("style=image needs the painting: give"
                                  " style=path/to/painting.jpg")
        elif value not in style_names():
            close = difflib.get_close_matches(value, style_names(), n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"style={value}: unknown style; {hint}known styles:"
                              f" {', '.join(style_names())}; or give the path of a painting")


def prepare_overrides(prog: str) -> None:
    """For a Hydra entry point, before Hydra runs: refuse mistaken arguments in `sys.argv`
    (check_overrides: one line, exit status 2) and rewrite `style=<painting path>` into the
    generic image style (paintings.expand_style_path)."""
    import sys

    from fastnst.console import shown
    from fastnst.paintings import expand_style_path

    try:
        check_overrides(sys.argv[1:])
    except ConfigError as e:
        print(f"{prog}: error: {shown(e)}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], *expand_style_path(sys.argv[1:])]


def bounded(low: float | None, high: float | None = None, integer: bool = True
            ) -> Callable[[str], float]:
    """An argparse `type=` for a number in `[low, high]` (argparse names the option)."""
    bound = Bound(low, high, integer=integer)

    def parse(text: str) -> float:
        try:
            value: float = int(text) if integer else float(text)
        except ValueError:
            value = math.nan  # "must be an integer in ..."
        if problem := bound.problem(value):
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return value

    return parse
