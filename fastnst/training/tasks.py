"""What a training run trains: one style, several styles in one multi-style network, or a style
added to a multi-style model. Builds the StyleTasks (fastnst.training.module) from the config.

- one style: `style=` (its painting and weights), `teacher=` when distilling;
- `styles=[a, b, ...]` or `styles=all` (every shipped one-style model's style): a multi-style
  network of those styles; each style's weight is its own `conf/style/<name>.yaml` weight times
  `style_factor` (or its own entry in `style_factors`; unless the loss has no style term, as in
  distillation), and when distilling each style's teacher is its shipped model (`teacher=fast`:
  its fast network);
- `add_style=true` with `init=` a multi-style model: `style=` becomes one more style of it (of
  its architecture), and only that style trains (its scales and shifts with `train_only=norm`);
- `train_styles=[a, ...]` with `styles=`: only those styles train. With `train_only=norm` and
  `init=` a multi-style model the others stay exactly as they were; with `train_only=all` (the
  shared convolutions move) the others are held: they train too, with no style term, towards
  what `init=` paints for them (HeldStyle), one after each round of the trained styles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from fastnst.config_checks import ConfigError, bounds_of, unset
from fastnst.images import resize_long_side
from fastnst.model_files import (
    FAST_SUFFIX,
    is_multi_style,
    load_model,
    read_metadata,
    shipped_models,
)
from fastnst.paintings import read_painting, style_config
from fastnst.styles import model_path
from fastnst.training.checkpoints import CheckpointError
from fastnst.training.module import StyleTask
from fastnst.training.options import TrainOptions
from fastnst.transformer import TransformerConfig


@dataclass
class TrainingPlan:
    """The network to build, its starting weights, its style names (multi-style) and tasks."""

    config: TransformerConfig
    init: dict[str, torch.Tensor] | None
    tasks: list[StyleTask]
    styles: list[str] = field(default_factory=list)
    order: list[int] | None = None  # the tasks' indices in one cycle of steps (None: each once)


class HeldStyle(torch.nn.Module):
    """A multi-style network painting one of its styles (`index`): the teacher that holds a
    style a run does not train to what it painted before, while the shared convolutions move."""

    def __init__(self, net: torch.nn.Module, index: int) -> None:
        super().__init__()
        self.net, self.index = net, index

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.net.one_style(self.index, images.device))


def initial_weights(init: str | None, config: TransformerConfig) -> dict[str, torch.Tensor] | None:
    """The weights `init=` names (a shipped style or a model file), checked against the
    configured architecture; None for random weights."""
    if unset(init):
        return None
    path = model_path(str(init), "init=")
    net, _ = load_model(path)
    if net.config != config:
        raise CheckpointError(f"init={init}: {path} is a TransformerNet {net.config}, but model="
                              f" is {config}; pick an init of the same architecture or change"
                              " model=")
    return net.state_dict()


NEAREST = "nearest"  # init=nearest: the shipped fast network of the nearest painting


def nearest_fast_model(painting: torch.Tensor) -> str:
    """The shipped fast network (`<style>-fast`) whose style's painting is nearest `painting`
    `(1, 3, H, W)` in the Gatys style distance (Gram matrices at relu1_1..relu5_1, both at
    quality.PAINTING_SIDE): where `init=nearest` starts a painting's fast network, so that
    it starts with strokes of a kind. ConfigError when no fast network ships."""
    import logging

    from fastnst.quality import PAINTING_SIDE, gatys_yardstick, judge

    names = [n for n in one_style_models() if n + FAST_SUFFIX in shipped_models()]
    if not names:
        raise ConfigError("init=nearest: no shipped fast networks to start from")
    loss = gatys_yardstick()
    loss.set_style([resize_long_side(painting, PAINTING_SIDE)])
    distances = {}
    for name in names:
        other = resize_long_side(read_painting(style_config(name)), PAINTING_SIDE)
        distances[name] = judge(loss, other, other).style
    nearest = min(distances, key=distances.__getitem__)
    logging.getLogger(__name__).info("init=nearest: %s%s (style distances: %s)", nearest,
                                     FAST_SUFFIX, ", ".join(f"{k} {v:.3g}" for k, v in
                                                            sorted(distances.items())))
    return nearest + FAST_SUFFIX


UNIVERSAL_TEACHER = "universal"  # teacher=universal: the painting's universal results
FAST_TEACHERS = "fast"  # multi-style runs, teacher=fast: each style's fast network teaches it


def load_teacher(teacher: str | None, style: DictConfig | None = None,
                 painting: torch.Tensor | None = None) -> torch.nn.Module | None:
    """The network `teacher=` names (a shipped style or a model file), for distillation; None
    when unset. With the run's `style` and its `painting` `(1, 3, H, W)`: `universal`, or the
    style's own name when no model of that name ships (a painting given by path, or a style
    config without a model), is the painting's universal style transfer
    (fastnst.universal.PaintingTeacher)."""
    if unset(teacher):
        return None
    name = str(teacher)
    if style is not None and painting is not None and (name == UNIVERSAL_TEACHER or (
            name == str(style.name) and name not in shipped_models())):
        from fastnst.universal import PaintingTeacher, universal_stylizer

        return PaintingTeacher(universal_stylizer(torch.device("cpu")), painting)
    net, _ = load_model(model_path(name, "teacher="))
    return net


def one_style_models() -> list[str]:
    """The shipped styles with a model of their own (not their fast variants, not multi)."""
    return sorted(name for name, path in shipped_models().items()
                  if not name.endswith(FAST_SUFFIX) and not is_multi_style(path))


def network(cfg: DictConfig, config: TransformerConfig, model_given: bool = True
            ) -> tuple[TransformerConfig, list[str]]:
    """The architecture the run trains (`config` with its style count) and a multi-style
    network's style names; reads metadata only, so it runs before anything heavy loads. With
    `add_style=true` the architecture is `init=`'s, and `model=` must match it only when
    `model_given` (set on the command line)."""
    if cfg.add_style:
        have, theirs = _added_to(cfg, config, model_given)
        return replace(theirs, styles=len(have) + 1), [*have, str(cfg.style.name)]
    names = _style_names(cfg.styles)
    return (replace(config, styles=len(names)), names) if names else (config, [])


def plan(cfg: DictConfig, config: TransformerConfig, names: list[str]) -> TrainingPlan:
    """The run's TrainingPlan for the architecture and styles `network` gave: the starting
    weights, the paintings and the teachers, loaded. CheckpointError for an `init=` that does
    not fit."""
    size = cfg.style_size
    distilling = not unset(cfg.teacher)
    if cfg.add_style:
        return _added(cfg, config, names, size)
    if not names:
        painting = resize_long_side(read_painting(cfg.style), size)
        task = StyleTask(painting, teacher=load_teacher(cfg.teacher, cfg.style, painting))
        init = nearest_fast_model(read_painting(cfg.style)) if str(cfg.init) == NEAREST \
            else cfg.init
        return TrainingPlan(config, initial_weights(init, config), [task])
    if not unset(cfg.init):
        have = read_metadata(model_path(str(cfg.init), "init=")).get("styles", [])
        if have != names:
            raise CheckpointError(f"init={cfg.init} has the styles {have}, styles= names {names};"
                                  " the same styles in the same order")
    no_style_term = not cfg.loss.style_weight
    trained = _style_names(cfg.train_styles) or names
    if unknown := [n for n in trained if n not in names]:
        raise ConfigError(f"train_styles: {', '.join(unknown)} not in styles= ({', '.join(names)})")
    held = [n for n in names if n not in trained] if str(cfg.train_only) == "all" else []
    if held and unset(cfg.init):
        raise ConfigError(f"train_styles={trained} with train_only=all moves the convolutions"
                          f" {', '.join(held)} share: give init= the multi-style model that"
                          " paints them (they are held to it), or train_only=norm")
    factors = style_factors(cfg, names)
    before = load_model(model_path(str(cfg.init), "init="))[0] if held else None
    tasks, holding = [], []
    for i, name in enumerate(names):
        if name not in trained and not held:
            continue
        style = style_config(name)
        painting = resize_long_side(read_painting(style), size)
        if name in trained:
            tasks.append(StyleTask(
                painting,
                style_weight=None if no_style_term else style.style_weight * factors[name],
                teacher=load_teacher(_teacher_of(name, cfg.teacher)) if distilling else None,
                index=i))
        else:
            holding.append(StyleTask(painting, style_weight=0.0,
                                     teacher=HeldStyle(before, i), index=i))
    order = None
    if holding:  # every trained style, then one held style, in turn
        order = [k for h in range(len(holding))
                 for k in [*range(len(tasks)), len(tasks) + h]]
    return TrainingPlan(config, initial_weights(cfg.init, config), [*tasks, *holding], names,
                        order)


def style_factors(cfg: DictConfig, names: list[str]) -> dict[str, float]:
    """Each style's multiplier of its own weight in a multi-style run: `style_factor`, or
    its entry in `style_factors` ({name: factor}, 0-1e6). ConfigError for a name not in
    `names` or a factor out of range."""
    given = cfg.get("style_factors") or {}
    if not OmegaConf.is_dict(given) and not isinstance(given, dict):
        raise ConfigError(f"style_factors={given}: give styles and their factors, e.g."
                          " style_factors={mosaic: 8}")
    if unknown := [str(n) for n in given if str(n) not in names]:
        raise ConfigError(f"style_factors: {', '.join(unknown)} not in styles="
                          f" ({', '.join(names)})")
    bound = bounds_of(TrainOptions)["style_factor"]
    for name, factor in given.items():
        if problem := bound.problem(factor):
            raise ConfigError(f"style_factors.{name}={factor!r}: {problem}")
    return {name: float(given.get(name, cfg.style_factor)) for name in names}


def _teacher_of(name: str, teacher: str) -> str:
    """A multi-style run's teacher for the style `name`: its fast network with
    `teacher=fast`, else its own shipped model."""
    return name + FAST_SUFFIX if str(teacher) == FAST_TEACHERS else name


def _style_names(styles: object) -> list[str]:
    if unset(styles) or (isinstance(styles, (list, ListConfig)) and not styles):
        return []
    if styles == "all":
        names = one_style_models()
        if not names:
            raise ConfigError("styles=all: no style models are shipped")
        return names
    if not isinstance(styles, (list, ListConfig)) or len(set(map(str, styles))) != len(styles):
        raise ConfigError(f"styles= must be all or a list of distinct style names, not {styles}")
    return [str(s) for s in styles]


def _added_to(cfg: DictConfig, config: TransformerConfig, model_given: bool
              ) -> tuple[list[str], TransformerConfig]:
    """`add_style=true`: the styles and the architecture of the multi-style model `init=`,
    checked against model= when it was given."""
    if unset(cfg.init):
        raise ConfigError("add_style=true needs init= a multi-style model to add the style to")
    meta = read_metadata(model_path(str(cfg.init), "init="))
    have = meta.get("styles", [])
    if not have:
        raise ConfigError(f"add_style=true: init={cfg.init} is a one-style model")
    if str(cfg.style.name) in have:
        raise ConfigError(f"add_style=true: {cfg.style.name} is already a style of {cfg.init}")
    theirs = TransformerConfig(**{**meta.get("architecture", {}), "styles": 0})
    if model_given and theirs != replace(config, styles=0):
        raise CheckpointError(f"init={cfg.init} is a TransformerNet {theirs}, but model= is"
                              f" {config}; pick model= of the same architecture, or leave it"
                              " out")
    return have, theirs


def _added(cfg: DictConfig, config: TransformerConfig, names: list[str], size: int
           ) -> TrainingPlan:
    """`add_style=true`: the multi-style model `init=` with `style=` as one more style."""
    net, _ = load_model(model_path(str(cfg.init), "init="))
    init = {k: torch.cat([v, v.mean(0, keepdim=True)]) if _per_style(k, net) else v
            for k, v in net.state_dict().items()}  # the new style starts at the mean style
    painting = resize_long_side(read_painting(cfg.style), size)
    task = StyleTask(painting, teacher=load_teacher(cfg.teacher, cfg.style, painting),
                     index=len(names) - 1)
    return TrainingPlan(config, init, [task], names)


def _per_style(key: str, net: torch.nn.Module) -> bool:
    """Whether the state-dict entry `key` is a StyleNorm's per-style rows."""
    from fastnst.transformer import StyleNorm

    module_name = key.rsplit(".", 1)[0]
    return isinstance(net.get_submodule(module_name), StyleNorm)
