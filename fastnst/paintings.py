"""Styles and their paintings: the configs (`conf/style/<name>.yaml`: the painting and its loss
weights) and the painting files: find, download, load.

A painting is found by path, else by file name in `$FASTNST_STYLE_DIR`, else in the user
cache, else downloaded from the config's `url` into the cache.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fastnst.console import shown
from fastnst.download import DownloadError, cache_dir, download
from fastnst.errors import FastnstError
from fastnst.files import not_regular
from fastnst.images import read_image

# Config used for a style given as an image path (`style=path/to/painting.jpg`).
IMAGE_STYLE = "image"


class StyleError(FastnstError, LookupError):
    """A style name or painting that cannot be found."""


def _style_dir() -> resources.abc.Traversable:
    return resources.files("fastnst.conf") / "style"


def style_names() -> list[str]:
    """Names of the packaged style configs (excluding the generic `image` one)."""
    return sorted(p.name.removesuffix(".yaml") for p in _style_dir().iterdir()
                  if p.name.endswith(".yaml") and p.name != f"{IMAGE_STYLE}.yaml")


def style_config(name: str) -> DictConfig:
    """The packaged config `conf/style/<name>.yaml`."""
    path = _style_dir() / f"{name}.yaml"
    if not path.is_file():
        raise StyleError(f"unknown style {name!r}; known styles: {', '.join(style_names())}")
    return OmegaConf.create(path.read_text())


def find_painting(image: str, url: str | None = None, md5: str | None = None) -> Path:
    """Locate a painting file by path, `$FASTNST_STYLE_DIR`, cache, or download from `url`.

    Only a bare file name is searched for: a path with a folder in it must be that file (a
    mistyped folder is an error, not another image of the same name)."""
    path = Path(image).expanduser()
    if path.is_file():
        return path
    if has_folder(image):
        problem = f"not a file ({kind})" if (kind := not_regular(path)) else "no such file"
        raise StyleError(f"painting {shown(image)}: {problem}")
    candidates = []
    if env := os.environ.get("FASTNST_STYLE_DIR"):
        candidates.append(Path(env).expanduser() / path.name)
    cached = cache_dir() / "styles" / path.name
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in [path, *candidates])
    if url:
        try:
            return download(url, cached, md5=md5)
        except DownloadError as e:
            raise StyleError(f"painting {image} not found (looked in {looked}) and {e};"
                             " set FASTNST_STYLE_DIR to the folder that holds it") from None
    raise StyleError(f"painting {image} not found (looked in {looked}); set"
                     " FASTNST_STYLE_DIR to the folder that holds it")


def painting_file(style: str | DictConfig) -> Path:
    """The painting file of a style name, an image path or a style config (`image`, `url`,
    `md5` keys): found, or downloaded (find_painting)."""
    if isinstance(style, str):
        if is_image_path(style):
            return find_painting(style)
        style = style_config(style)
    return find_painting(style.image, style.get("url"), style.get("md5"))


# A painting is used at a 256 px long side (universal.PAINTING_SIDE, training's style size):
# it is refused from its header above this many pixels, well under a photo's 150 MP, and
# decoded at a reduced scale where the format allows (JPEG's draft mode).
MAX_PAINTING_PIXELS = 40_000_000
USE_SIDE = 256  # pixels: the long side a painting's size is checked at (see check_size)
MIN_PAINTING_SIDE = 16  # pixels: VGG19's four poolings to relu5_1 need this many a side


def checked_size(path: str | os.PathLike[str], painting: torch.Tensor, side: int = USE_SIDE
                 ) -> torch.Tensor:
    """`painting` `(1, 3, H, W)` as it is, or ImageError naming `path`, its size and the
    smallest that works when, brought to a long side of at most `side` pixels, its short side
    would be under MIN_PAINTING_SIDE (a 1x1 image, a 10000x3 panorama)."""
    from PIL import Image

    from fastnst.images import ImageError

    h, w = painting.shape[-2:]
    with contextlib.suppress(Exception), Image.open(path) as header:  # its size before shrinking
        w, h = header.size
    short = min(h, w) * min(1.0, side / max(h, w))
    if short < MIN_PAINTING_SIDE:
        raise ImageError(path, f"a painting of {w}x{h} pixels is too small or too thin to paint"
                               f" with: it needs at least {MIN_PAINTING_SIDE} pixels on its short"
                               f" side, and a long side at most {side // MIN_PAINTING_SIDE}"
                               " times that")
    return painting


def load_painting(spec: str, max_size: int | None = None) -> torch.Tensor:
    """`spec` is a style name or an image path -> `(1, 3, H, W)` in [0, 1] (checked_size; at
    most MAX_PAINTING_PIXELS)."""
    path = painting_file(spec)
    return checked_size(path, read_image(path, max_size, MAX_PAINTING_PIXELS))


def read_painting(style: DictConfig, max_size: int | None = None) -> torch.Tensor:
    """The image of a style config (`image`, `url`, `md5` keys) -> `(1, 3, H, W)` in [0, 1],
    its long side at most `max_size` pixels (checked_size; at most MAX_PAINTING_PIXELS)."""
    path = painting_file(style)
    return checked_size(path, read_image(path, max_size, MAX_PAINTING_PIXELS))


def has_folder(spec: str) -> bool:
    """True when `spec` is a path with a folder part (`art/x.jpg`, `/x.jpg`, `~/x.jpg`), not a
    bare file name."""
    return Path(spec).expanduser().name != spec


def is_image_path(spec: str) -> bool:
    """True when the Gatys baseline's or training's `style=` is written as a file (an image or
    model suffix, or a folder part: styles.written_as, the one rule) rather than a style name.
    A bare name is always a style, even where a file of that name exists (it must not shadow
    a shipped style): write `./name` for the file."""
    from fastnst.styles import written_as

    return written_as(spec) in ("painting", "file")


def expand_style_path(overrides: Sequence[str]) -> list[str]:
    """Rewrite a Hydra override `style=<image path>` into the generic image style.

    `style=art/foo.jpg` becomes `style=image style.image=<absolute path> style.name=foo`, so a
    painting can be given directly on the command line.
    """
    out: list[str] = []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        if key == "style" and sep and is_image_path(value):
            path = Path(value).expanduser()
            # A bare name that is no file here stays bare: it is looked for (find_painting).
            image = str(path.resolve()) if path.exists() or has_folder(value) else value
            out += [f"style={IMAGE_STYLE}", f"style.image={_quote(image)}",
                    f"style.name={_quote(path.stem)}"]
        else:
            out.append(arg)
    return out


def _quote(value: str) -> str:
    """Quote a value for Hydra's override grammar (paths may hold spaces, '=' or quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
