"""What a `--style` string means, and the model it loads: the one place that decides.

`resolve_style` reads a string as one of four answers, "a known name, else a file" (as
openai/whisper's `load_model`):

- `SingleStyle`: a one-style model file (`.safetensors` or `.onnx`), or a shipped style's;
- `MultiStyle`: one style of a multi-style model: `NAME` with `multi=` a model, a style that
  only the shipped multi-style model has, or a multi-style model given alone (its newest style,
  the last one added; `implied` is then true);
- `Blend`: `a:0.6,b:0.4`, styles of a multi-style model (`multi=`, default the shipped one);
- `Painting`: an image file (a painting, not a model).

`load_style` turns the answer into a ready backend (fastnst.stylizer); the CLI, the API,
export, the webcam, the page and training's `init=` and `teacher=` all start here.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fastnst import model_files
from fastnst.images import IMAGE_SUFFIXES
from fastnst.model_files import FAST_SUFFIX, MODEL_SUFFIXES, ModelFileError, UnknownStyleError
from fastnst.style_mix import MULTI_MODEL, parse_mix

if TYPE_CHECKING:
    import torch

    from fastnst.stylizer import Backend

Written = Literal["painting", "file", "blend", "name"]


@dataclass(frozen=True)
class SingleStyle:
    """A one-style model file; `name`: the shipped style it was named by (None: a path)."""

    path: Path
    name: str | None = None


@dataclass(frozen=True)
class MultiStyle:
    """The style `style` of the multi-style model `path`; `implied`: the model was given alone
    and this is its newest style."""

    path: Path
    style: str | None  # None: an .onnx model's newest style, known once it is loaded
    implied: bool = False


@dataclass(frozen=True)
class Blend:
    """A mix of the styles of the multi-style model `path`: `(name, weight)` pairs."""

    path: Path
    parts: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Painting:
    """An image file given as a style: a painting, not a trained model."""

    path: Path


StyleChoice = SingleStyle | MultiStyle | Blend | Painting


def written_as(spec: str) -> Written:
    """How `spec` is written, from its text alone: a `painting` (an image suffix), a model
    `file` (a model suffix, or a path with a folder), a `blend` (`NAME:WEIGHT` or a comma
    list), or a `name`."""
    suffix = Path(spec).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "painting"
    if suffix in MODEL_SUFFIXES or os.sep in spec:
        return "file"
    return "blend" if "," in spec or ":" in spec else "name"


def resolve_style(spec: str, multi: str | None = None) -> StyleChoice:
    """What the style string `spec` means (see the module docstring). `multi`: the multi-style
    model that blends and bare names come from (a shipped name or a file; default: the shipped
    one). Reads metadata only. UnknownStyleError for a name that is nothing, ModelFileError
    for a missing or bad file, MixError for a malformed blend."""
    written = written_as(spec)
    if written == "painting":
        return Painting(Path(spec).expanduser())
    if written == "blend":
        return Blend(find_model(multi or MULTI_MODEL), tuple(parse_mix(spec)))
    if written == "name" and multi is not None:
        return MultiStyle(find_model(multi), spec)
    if written == "name" and spec not in model_files.shipped_models() and _shipped_multi_has(spec):
        return MultiStyle(find_model(MULTI_MODEL), spec)
    path = find_model(spec)
    if styles := _styles_of(path):
        return MultiStyle(path, styles[-1], implied=True)
    if path.suffix.lower() == ".onnx" and _onnx_is_multi(path):
        return MultiStyle(path, None, implied=True)
    return SingleStyle(path, spec if written == "name" else None)


def find_model(spec: str, suffix: str = ".safetensors") -> Path:
    """The model file `spec` names: a model file path (written as one: a model suffix or a
    folder part), or a shipped style's `suffix` file (a bare name, even where a file or folder
    of that name is in the working folder). UnknownStyleError for a
    picture or an unknown name (with the closest shipped one), ModelFileError for a missing
    file."""
    path = Path(spec).expanduser()
    if written_as(spec) == "painting":  # a painting given where a model goes
        raise UnknownStyleError(spec, "a picture, not a style model: `fastnst-infer --style"
                                      f" {spec}` paints with it as it is (universal style"
                                      " transfer); for a model of it, `python -m fastnst.distill"
                                      f" style={spec}` (a fast network, minutes)")
    if written_as(spec) == "file":
        if not path.is_file():
            raise ModelFileError(path, "no such file")
        return path
    shipped = model_files.shipped_models(suffix)  # a bare name is a shipped style, never a file
    if spec not in shipped:
        names = ", ".join(sorted(shipped)) or "none yet"
        close = difflib.get_close_matches(spec, list(shipped), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        if path.is_file():
            hint = f"a file {spec} is here: write ./{spec} to use it; " + hint
        raise UnknownStyleError(spec, f"unknown style; {hint}shipped styles: {names}; or give"
                                      f" a {' or '.join(MODEL_SUFFIXES)} file")
    return shipped[spec]


def model_path(spec: str, what: str) -> Path:
    """The model file of `spec` for an option that takes a whole model (`what`: `init=`,
    `teacher=`, `--style` of fastnst-export): a shipped name or a model file; a blend or a
    painting is a one-line UnknownStyleError."""
    if written_as(spec) == "blend":
        raise UnknownStyleError(spec, f"{what} takes a model (a shipped name or a file), not a"
                                      " blend")
    return find_model(spec)


def fast_variant(spec: str) -> str:
    """The name of the fast network of the shipped style `spec` (`<spec>-fast`). A model file,
    a blend (it runs the multi-style model, which is a fast network), `multi` and a name that
    is already fast are returned as they are. UnknownStyleError when no fast network ships."""
    if written_as(spec) != "name" or spec.endswith(FAST_SUFFIX) or spec == MULTI_MODEL:
        return spec
    if spec + FAST_SUFFIX not in model_files.shipped_models():
        raise UnknownStyleError(spec, f"no fast network ships for this style; make one with"
                                      f" `python -m fastnst.distill style={spec}`")
    return spec + FAST_SUFFIX


def implied_note(spec: str, choice: StyleChoice, loaded: Backend) -> str | None:
    """A line for the user when `spec` named a multi-style model alone: which style runs."""
    if not (isinstance(choice, MultiStyle) and choice.implied):
        return None
    styles = getattr(loaded, "styles", [])
    return (f"{spec} is a multi-style model of {', '.join(styles)}; using its newest style,"
            f" {loaded.style} (another: --style NAME --multi {spec})")


def load_style(spec: str | StyleChoice, backend: str = "torch", device: str = "auto",
               half: bool = False, multi: str | None = None) -> Backend:
    """A style string (or resolve_style's answer) -> a ready backend (fastnst.stylizer).

    An `.onnx` file always runs on ONNX Runtime; a shipped name or a `.safetensors` file with
    `backend="onnx"` runs its ONNX export, made on first use and cached (export.cached_onnx).
    A multi-style model is loaded once per process: the backends of its styles and blends
    share it. A painting runs universal style transfer (fastnst.universal): no training, any
    painting; with `backend="onnx"` as the painter's ONNX graph."""
    from fastnst.device import resolve_device
    from fastnst.stylizer import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    choice = resolve_style(spec, multi) if isinstance(spec, str) else spec
    dev = resolve_device(device)
    if isinstance(choice, Painting):
        return _painting_backend(choice.path, backend, dev)
    model = _loaded(choice.path, backend, dev, half)
    if isinstance(choice, Blend):
        return model.mixed(choice.parts)  # type: ignore[attr-defined]
    if isinstance(choice, MultiStyle):
        name = choice.style or model.styles[-1]  # type: ignore[attr-defined]
        return model.mixed([(name, 1.0)])  # type: ignore[attr-defined]
    if model.styles:  # type: ignore[attr-defined]  # an .onnx file resolve could not read
        return model.mixed([(model.styles[-1], 1.0)])  # type: ignore[attr-defined]
    return model


def model_styles(spec: str, backend: str = "torch", device: str = "auto", half: bool = False
                 ) -> list[str]:
    """The styles of the multi-style model `spec` (a shipped name or a file); [] for a
    one-style model."""
    from fastnst.device import resolve_device

    path = find_model(spec, suffix=".onnx" if spec.lower().endswith(".onnx") else ".safetensors")
    return list(_loaded(path, backend, resolve_device(device), half).styles)  # type: ignore


def _styles_of(path: Path) -> list[str]:
    """The styles a `.safetensors` model's metadata names ([] for a one-style model or an
    `.onnx` file)."""
    if path.suffix.lower() == ".onnx":
        return []
    return list(model_files.read_metadata(path).get("styles", []))


def _onnx_is_multi(path: Path) -> bool:
    """Whether the `.onnx` file declares styles (a multi-style graph); False when it cannot be
    read: loading it then says what is wrong."""
    try:
        import onnx

        from fastnst.files import read_bounded

        model = onnx.load_from_string(read_bounded(path, model_files.MAX_MODEL_BYTES))
        return any(p.key == "styles" for p in model.metadata_props)
    except Exception:  # protobuf's own errors on files that are not ONNX
        return False


def _shipped_multi_has(style: str) -> bool:
    """Whether the shipped multi-style model (if any) has `style`."""
    path = model_files.shipped_models().get(MULTI_MODEL)
    try:
        return path is not None and style in _styles_of(path)
    except ModelFileError:
        return False


_LOADED: dict[tuple, Backend] = {}  # multi-style models, loaded once: their mixes share them


def _loaded(path: Path, backend: str, device: torch.device, half: bool) -> Backend:
    """The model file `path` on `backend`; a multi-style model is loaded once per process (its
    backends for different mixes are views of it)."""
    from fastnst.export import cached_onnx
    from fastnst.stylizer import OnnxBackend, TorchBackend

    kind = "onnx" if path.suffix.lower() == ".onnx" else backend
    key = (str(path.resolve()), path.stat().st_mtime_ns, kind, str(device), half)
    if key in _LOADED:
        return _LOADED[key]
    model: OnnxBackend | TorchBackend
    if kind == "onnx":
        if path.suffix.lower() == ".onnx":
            model = OnnxBackend(path, device)
        else:
            onnx_path, data = cached_onnx(path)
            model = OnnxBackend(onnx_path, device, data=data)
    else:
        net, meta = model_files.load_model(path)
        model = TorchBackend(net, meta["style"], device, half=half,  # a style_label
                             styles=meta.get("styles", ()))
        model.source = os.fsdecode(path)
    if model.styles:
        _LOADED[key] = model
    return model


def _painting_backend(path: Path, backend: str, device: torch.device) -> Backend:
    """The painting `path` as a style: fastnst.universal.PaintingBackend on PyTorch, or with
    `backend="onnx"` the painter's ONNX graph (fastnst.painting_onnx.PaintingOnnxBackend, on
    the CPU); ModelFileError for a missing file, ImageError for an unreadable one."""
    from fastnst.universal import PaintingBackend, read_painting, universal_stylizer

    if not path.is_file():
        raise ModelFileError(path, "no such file")
    painting = read_painting(path)  # a bad painting is refused before VGG19 is loaded
    if backend == "onnx":
        from fastnst.painting_onnx import PaintingOnnxBackend

        return PaintingOnnxBackend(path, painting)
    return PaintingBackend(path, universal_stylizer(device), device, painting=painting)
