"""How every option is declared and checked: a dataclass field made by `option` (default, help,
`Bound` or choices). The stylize options (and their command-line flags, `add_options`), the
Gatys baseline's and training's are declared so. Values are checked where a command starts: a
value out of range is one line naming the option, before anything is loaded or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fastnst.errors import UsageError


class ConfigError(UsageError):
    """An option out of its range; the message names the option and the range."""


@dataclass(frozen=True)
class Bound:
    """`low <= value <= high` (None: unbounded on that side; `below_high`: `value < high`), an
    int if `integer` (2.0 is not); null allowed if `nullable`; `also`: other values that mean
    something (-1: no limit)."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    nullable: bool = False
    also: tuple[float, ...] = ()
    below_high: bool = False

    def problem(self, value: object) -> str | None:
        """What is wrong with `value`, in words; None if it is in bounds."""
        if value is None and self.nullable:
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and value in self.also:
            return None
        # An integer option takes integers only: 2.0 would reach a DataLoader or range() as a
        # float, and a 23-digit seed is refused by its range.
        ok = number and math.isfinite(value) and (not self.integer or isinstance(value, int))
        ok = ok and (self.low is None or value >= self.low) and (
            self.high is None or value < self.high or (value == self.high
                                                       and not self.below_high))
        if ok:
            return None
        kind = "an integer" if self.integer else "a number"
        low = "-inf" if self.low is None else _number(self.low)
        high = "inf" if self.high is None else _number(self.high)
        extras = [*map(_number, self.also), *(["null"] if self.nullable else [])]
        end = ")" if self.below_high else "]"
        return f"must be {kind} in [{low}, {high}{end}" + (f" or {' or '.join(extras)}"
                                                         if extras else "")


SEED_BOUND = Bound(0, 2**32 - 1, integer=True)  # what torch, numpy and random all take


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def unset(value: Any) -> bool:
    """Whether a config value means "none": null, empty, or the text "null" (a CLI override)."""
    return value in (None, "", "null")


def option(default: Any, help: str, bound: Bound | None = None,
           choices: Sequence[str] = ()) -> Any:
    """A field of an options dataclass: its default (FROM_CONFIG: a YAML config group holds
    it), one line of help, its range or choices. The one way fastnst declares an option: the
    Gatys baseline, the stylize options (and their command-line flags, `add_options`) and
    training's (fastnst.training.options) are all such fields, checked by `check_options` or
    `check_config`, listed by `describe_options`."""
    return field(default=default, metadata={"help": help, "bound": bound, "choices": choices})


FROM_CONFIG: Any = None  # a declared option whose value a YAML config group sets


def group(cls: type) -> Any:
    """A field of an options dataclass that holds the options of `cls` under its name
    (`data.crop_size`: the field `crop_size` of the group `data`)."""
    return field(default=None, metadata={"group": cls})


def bounds_of(cls: type, prefix: str = "") -> dict[str, Bound]:
    """`{dotted key: Bound}` of every bounded option of the dataclass `cls`, its groups'
    included."""
    bounds: dict[str, Bound] = {}
    for f in fields(cls):
        if (inner := f.metadata.get("group")) is not None:
            bounds |= bounds_of(inner, f"{prefix}{f.name}.")
        elif (bound := f.metadata.get("bound")) is not None:
            bounds[prefix + f.name] = bound
    return bounds


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


def check_config(cfg: DictConfig, schema: type | Mapping[str, Bound]) -> None:
    """Raise ConfigError for the first option of `cfg` outside its bound: those the options
    dataclass `schema` declares (bounds_of), or a `{dotted key: Bound}` mapping; a key the
    config does not have is skipped."""
    bounds = bounds_of(schema) if isinstance(schema, type) else schema
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
    return argument_type(Bound(low, high, integer=integer))


def argument_type(bound: Bound) -> Callable[[str], float]:
    """An argparse `type=` for a number within `bound` (argparse names the option)."""
    plain = Bound(bound.low, bound.high, bound.integer, also=bound.also,
                  below_high=bound.below_high)  # a flag that is given has a value

    def parse(text: str) -> float:
        try:
            value: float = int(text) if bound.integer else float(text)
        except ValueError:
            value = math.nan  # "must be an integer in ..."
        if problem := plain.problem(value):
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return value

    return parse


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """A flag per field of the options dataclass `cls` (`max_size`: `--max-size`), typed and
    bounded by its declaration, its help and default shown; `options_from_args` builds it."""
    for f in fields(cls):
        flag, text = "--" + f.name.replace("_", "-"), f.metadata["help"]
        if isinstance(f.default, bool):
            parser.add_argument(flag, action="store_true", help=text)
            continue
        bound, choices = f.metadata.get("bound"), f.metadata.get("choices")
        kind: Any = argument_type(bound) if bound else str
        default = "" if f.default is None else f" (default: {f.default})"
        parser.add_argument(flag, type=None if choices else kind, choices=choices or None,
                            default=f.default, help=text + default)


def options_from_args(cls: type, args: argparse.Namespace, parser: argparse.ArgumentParser
                      ) -> Any:
    """The options dataclass `cls` from parsed flags (add_options); a value the dataclass
    refuses is the parser's usage error (exit status 2)."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
    except ConfigError as e:
        parser.error(str(e))
