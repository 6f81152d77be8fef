"""The Python API: `import fastnst`, then `fastnst.stylize`, `fastnst.load`, `fastnst.list_styles`.

    import fastnst
    fastnst.stylize("photo.jpg", style="starry_night").save("out.jpg")
    model = fastnst.load("mosaic", backend="onnx")        # reusable, e.g. for video frames
    frame_out = model(frame)                              # (H, W, 3) uint8 RGB in and out
    fastnst.stylize("photo.jpg", style="starry_night:0.6,great_wave:0.4")   # a blend
    fastnst.stylize("photo.jpg", style="my_painting.jpg")   # any painting, no training

The command-line tools run the same code (fastnst.stylizer); these are its plain-Python doors.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from fastnst.stylize_options import StylizeOptions
    from fastnst.stylizer import Backend

ImageLike = Union[str, os.PathLike, "Image.Image", np.ndarray]


class Stylizer:
    """A loaded style model, reused across calls: `stylizer(frame)` takes and returns an
    `(H, W, 3)` uint8 RGB array; `stylizer.image(...)` takes anything `stylize` does and returns
    a PIL image. Both take a StylizeOptions (`options=`) or its fields as keywords
    (`strength=0.5`, `preserve_color=True`, `max_size=512`, ...: fastnst.stylize_options).
    `style` is the model's style label."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.style = backend.style

    def __call__(self, frame: np.ndarray, options: StylizeOptions | None = None,
                 **fields: Any) -> np.ndarray:
        from fastnst.images import from_rgb_array, to_pil

        return np.asarray(to_pil(self._run(from_rgb_array(frame), _options(options, fields))))

    def image(self, image: ImageLike, options: StylizeOptions | None = None,
              **fields: Any) -> Image.Image:
        """Stylize a path, a PIL image or an `(H, W, 3)` uint8 array; its long side shrunk to
        `max_size` pixels first if that is given."""
        from fastnst.images import read_any, resize_long_side, to_pil

        chosen = _options(options, fields)
        x = read_any(image, chosen.max_size)
        if chosen.max_size is not None and max(x.shape[-2:]) > chosen.max_size:
            x = resize_long_side(x, chosen.max_size)
        return to_pil(self._run(x, chosen))

    def _run(self, x, options: StylizeOptions):
        from fastnst.stylizer import stylize

        return stylize(self.backend, x, options)


def _options(options: StylizeOptions | None, fields: dict[str, Any]) -> StylizeOptions:
    """`options` (default: the defaults) with `fields` replaced; UsageError for a name that is
    no option, ConfigError for a value out of its range."""
    from dataclasses import fields as option_fields
    from dataclasses import replace

    from fastnst.errors import UsageError
    from fastnst.stylize_options import DEFAULTS, StylizeOptions

    names = [f.name for f in option_fields(StylizeOptions)]
    if unknown := [k for k in fields if k not in names]:
        raise UsageError(f"{unknown[0]}: not a stylize option; they are {', '.join(names)}")
    return replace(options or DEFAULTS, **fields)


def load(style: str = "starry_night", backend: str = "torch", device: str = "auto",
         multi: str | None = None) -> Stylizer:
    """A reusable Stylizer: `style` is a shipped style name (see list_styles), a `.safetensors`
    model from training, an exported `.onnx` file, a multi-style model (its newest style), or a
    blend of the styles of a multi-style model (`"starry_night:0.6,great_wave:0.4"`; `multi`:
    that model, default the shipped one), or an image file: any painting, by universal style
    transfer (fastnst.universal): fastnst.styles.resolve_style; `backend` "torch" or "onnx"
    (ONNX Runtime; a shipped or .safetensors model, or the painter's graph for a painting, is
    exported on first use and cached); `device` "auto", "cpu" or "cuda". Raises
    fastnst.model_files.ModelFileError for a missing or bad model, fastnst.style_mix.MixError
    for a blend it cannot make."""
    from fastnst.styles import load_style

    return Stylizer(load_style(style, backend, device, multi=multi))


@functools.lru_cache(maxsize=4)
def _cached(style: str, backend: str, multi: str | None) -> Stylizer:
    return load(style, backend, multi=multi)


def stylize(image: ImageLike, style: str = "starry_night", *, backend: str = "torch",
            multi: str | None = None, options: StylizeOptions | None = None,
            **fields: Any) -> Image.Image:
    """Stylize one image and return it as a PIL image.

    image: a file path, a PIL image or an `(H, W, 3)` uint8 RGB array; style, multi: as for
    `load` (the last four models used stay loaded); options, or its fields as keywords:
    strength (0..1, how much of the result to blend over the photo), preserve_color (keep the
    photo's colours), max_size (shrink the long side to this many pixels first), tile, ...
    (fastnst.stylize_options.StylizeOptions)."""
    return _cached(str(style), backend, multi).image(image, options, **fields)


def list_styles() -> list[str]:
    """The names of the styles installed with fastnst, sorted."""
    from fastnst.model_files import shipped_models

    return sorted(shipped_models())
