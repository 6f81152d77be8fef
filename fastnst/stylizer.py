"""Run a style model on images: PyTorch or ONNX Runtime, the stroke's working size, tiles for
large images, colour preservation and strength.

Images are `(1, 3, H, W)` float32 RGB in [0, 1] on the CPU, in and out; backends move them to
their device.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, Self

import cv2
import numpy as np
import torch
from torch import nn

from fastnst.color import keep_colors
from fastnst.console import shown
from fastnst.errors import FastnstError
from fastnst.images import from_bgr, long_side_hw, resize_long_side, to_rgb_array
from fastnst.model_files import MODEL_FORMAT, ModelFileError, style_label
from fastnst.style_mix import STYLE_INPUT, MixError, mix_label, mix_vector
from fastnst.stylize_options import DEFAULTS, StylizeOptions
from fastnst.transformer import NETWORK_MIN_SIDE, TransformerNet, pad_to_min_side
from fastnst.upsample import (
    cropped,
    enlarge,
    enlarge_frame,
    luminance,
    padded,
    shrink,
    working_side,
)

BACKENDS = ("torch", "onnx")
ORT_CUDA_PROVIDER = "CUDAExecutionProvider"
ORT_GPU_PACKAGE = "onnxruntime-gpu"  # the PyPI package whose onnxruntime has that provider


class Backend(Protocol):
    """A loaded style model: `backend(image)` stylizes one `(1, 3, H, W)` image."""

    style: str

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


class _Mixable:
    """What a backend of a multi-style model adds: its `styles` (empty for a one-style model)
    and the `mix` it runs with; `mixed` gives a view with another mix, sharing the model."""

    styles: list[str]
    mix: np.ndarray | None = None
    style: str
    source: str = ""  # the model file, for messages

    def mixed(self, parts: Sequence[tuple[str, float]]) -> Self:
        """A backend running this model with the mix `parts` (style_mix.parse_mix); MixError
        for a style the model lacks or a one-style model."""
        if not self.styles:
            raise MixError(f"{self.source}: a one-style model ({self.style}) has no styles to mix")
        view = copy.copy(self)
        view.mix = mix_vector(parts, self.styles, self.source)
        view.style = style_label(mix_label(parts))
        return view

    def blended(self, other: object, t: float) -> Self | None:
        """This mix moved `t` (0..1) of the way to `other`'s, when `other` is a view of the same
        multi-style model; else None."""
        if (not isinstance(other, _Mixable) or not self.styles or self.mix is None
                or other.mix is None or not self._same_model(other)):
            return None
        vector = (1.0 - t) * self.mix + t * other.mix
        return self.mixed([(n, float(w)) for n, w in zip(self.styles, vector, strict=True)
                           if w > 0])

    def _same_model(self, other: _Mixable) -> bool:
        return False


class TorchBackend(_Mixable):
    """A TransformerNet on `device`. `half`: float16 on CUDA; bfloat16 convolutions (autocast,
    channels-last memory) on CPUs where bf16 is fast (AMX: device.bf16_is_fast); elsewhere
    float32, as CPUs without AMX gain nothing. Measured: docs/benchmarks.md."""

    def __init__(self, net: TransformerNet, style: str, device: torch.device,
                 half: bool = False, styles: Sequence[str] = ()) -> None:
        from fastnst.device import bf16_is_fast

        self.style, self.styles, self.source = style, list(styles), style
        self.device = device
        self.dtype = torch.float16 if half and device.type == "cuda" else torch.float32
        self.bf16 = half and device.type == "cpu" and bf16_is_fast(device)
        self.memory_format = torch.channels_last if self.bf16 else torch.contiguous_format
        self.net = net.to(device=device, dtype=self.dtype,
                          memory_format=self.memory_format).eval()

    def _same_model(self, other: _Mixable) -> bool:
        return isinstance(other, TorchBackend) and other.net is self.net

    def shared_statistics(self, reference: torch.Tensor) -> contextlib.AbstractContextManager:
        """Within the block, tiles are normalised with `reference`'s statistics (the whole
        picture, shrunk): shared_norm_statistics."""
        return shared_norm_statistics(self.net, reference.to(self.device, self.dtype))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.styles and self.mix is None:
            raise MixError(f"{self.source}: a multi-style model needs a style or a mix")
        mix = () if self.mix is None else (torch.from_numpy(self.mix).to(self.device),)
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=self.bf16):
            out = self.net(image.to(self.device, self.dtype, memory_format=self.memory_format),
                           *mix)
        return out.float().contiguous().cpu()


class BadResultError(FastnstError, RuntimeError):
    """A style model gave a result that must not be written (NaN or inf, or the wrong size)."""


def checked_call(backend: Backend, image: torch.Tensor) -> torch.Tensor:
    """`backend(image)`, refused (BadResultError) unless it is an image of `image`'s shape."""
    out = backend(image)
    if tuple(out.shape) != tuple(image.shape):
        raise BadResultError(f"style {backend.style} gave a {tuple(out.shape)} result for a"
                             f" {tuple(image.shape)} image; nothing written")
    return out


class OnnxBackend(_Mixable):
    """An exported `.onnx` style model run by ONNX Runtime (CUDA provider when asked for).

    The file is untrusted: its graph is checked before it is loaded (onnx_checks.check_graph),
    its test run has PROBE_SECONDS, and every run can be stopped with Ctrl-C."""

    PROBE_SECONDS = 10.0  # fastnst's largest graph takes milliseconds on the 32x24 probe

    def __init__(self, path: str | os.PathLike[str], device: torch.device,
                 data: bytes | None = None) -> None:
        import onnxruntime as ort

        from fastnst.files import FileProblem, read_bounded
        from fastnst.model_files import MAX_MODEL_BYTES
        from fastnst.onnx_checks import check_graph, new_session

        if data is None:  # `data`: the file's bytes, when the caller has read them already
            try:
                data = read_bounded(path, MAX_MODEL_BYTES)  # once: what is checked is what runs
            except FileProblem as e:
                raise ModelFileError(path, str(e)) from None
        check_graph(path, data)
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if ORT_CUDA_PROVIDER in ort.get_available_providers():
                providers.insert(0, ORT_CUDA_PROVIDER)
            else:
                warnings.warn(f"{os.fsdecode(path)}: this onnxruntime has no CUDA provider, so"
                              f" the model runs on the CPU (`pip install {ORT_GPU_PACKAGE}`"
                              " has it)", stacklevel=2)
        self.device_type = "cuda" if providers[0] == ORT_CUDA_PROVIDER else "cpu"
        try:
            self.session = new_session(data, providers)
        except Exception as e:  # ORT raises its own exception types for bad files
            raise ModelFileError(path, f"not a loadable ONNX model ({shown(e)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != MODEL_FORMAT:
            raise ModelFileError(path, f"not a fastnst style model (format"
                                       f" {shown(meta.get('format'))!r}, expected"
                                       f" {MODEL_FORMAT!r})")
        self.style = style_label(meta.get("style", Path(path).stem))
        self.source = os.fsdecode(path)
        self.styles = self._styles(path, meta)
        self._check(path)

    @staticmethod
    def _styles(path: str | os.PathLike[str], meta: dict[str, str]) -> list[str]:
        """The style names of a multi-style graph's metadata ([] for a one-style graph)."""
        import json

        from fastnst.transformer import MAX_STYLES

        if "styles" not in meta:
            return []
        try:
            names = json.loads(meta["styles"])
        except (ValueError, RecursionError):  # also integers of more than 4300 digits
            names = None
        if not isinstance(names, list) or not 0 < len(names) <= MAX_STYLES:
            raise ModelFileError(path, f"malformed metadata: styles must be a list of 1 to"
                                       f" {MAX_STYLES} names")
        return [style_label(n) for n in names]

    def _same_model(self, other: _Mixable) -> bool:
        return isinstance(other, OnnxBackend) and other.session is self.session

    def _feeds(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if not self.styles:
            return {"image": x}
        if self.mix is None:
            raise MixError(f"{self.source}: a multi-style model needs a style or a mix")
        return {"image": x, STYLE_INPUT: self.mix}

    def _check(self, path: str | os.PathLike[str]) -> None:
        """Refuse a graph without fastnst's interface: input `image` and output `stylized`,
        float `(N, 3, H, W)`, giving a finite image of the input's size on a small probe."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        found = shown(f"it takes {[(i.name, i.type, i.shape) for i in inputs]} and gives"
                      f" {[(o.name, o.type, o.shape) for o in outputs]}")
        names = ["image", STYLE_INPUT] if self.styles else ["image"]
        declared = {o.name: o.type for o in outputs}
        if ([i.name for i in inputs] != names or declared.get("stylized") != "tensor(float)"
                or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4
                or (self.styles and (inputs[1].type != "tensor(float)"
                                     or inputs[1].shape != [len(self.styles)]))):
            mix = f" and '{STYLE_INPUT}' float (styles,)" if self.styles else ""
            raise ModelFileError(path, f"not a fastnst graph: needs input 'image' float"
                                       f" (N, 3, H, W){mix} and output 'stylized' float;"
                                       f" {found}")
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]
        if fixed:  # a fastnst graph takes any size; this one would fail on every photo
            size = "x".join(map(str, inputs[0].shape[:1:-1])) if len(fixed) == 2 else \
                f"{fixed[0]} pixels a side"
            raise ModelFileError(path, f"takes only {size} images (a fixed input size);"
                                       " fastnst's graphs take any size")
        probe = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
        probing = self if not self.styles else self.mixed([(self.styles[0], 1.0)])
        try:
            out = probing(probe, timeout=self.PROBE_SECONDS)
        except TimeoutError as e:
            raise ModelFileError(path, f"its run on a 32x24 test image {e}; refused") from None
        except Exception as e:  # ORT raises its own exception types for bad graphs
            raise ModelFileError(path, f"fails on a 32x24 test image ({shown(e)})") from None
        if out.shape != probe.shape:
            raise ModelFileError(path, f"gives {tuple(out.shape)} for a {tuple(probe.shape)} test"
                                       " image; a style model keeps the image's shape")
        if not out.isfinite().all():
            raise ModelFileError(path, "gives NaN or inf on a 32x24 test image")
        if out.std() < FLAT_SPREAD:
            raise ModelFileError(path, "gives a flat picture (one colour) for a 32x24 test image"
                                       " of noise; refused")

    def __call__(self, image: torch.Tensor, timeout: float | None = None) -> torch.Tensor:
        from fastnst.onnx_checks import run_bounded

        h, w = image.shape[-2:]
        x = pad_to_min_side(image.float())  # the graph needs NETWORK_MIN_SIDE pixels a side
        out = run_bounded(self.session, self._feeds(np.ascontiguousarray(x.numpy())), "stylized",
                          timeout)
        if out.ndim != 4 or out.shape[:2] != x.shape[:2] or out.shape[-2:] != x.shape[-2:]:
            return torch.from_numpy(np.asarray(out, dtype=np.float32))  # checked_call refuses it
        return torch.from_numpy(out[..., :h, :w].copy())

    def run_frame(self, bgr: np.ndarray, as_float: bool = False) -> np.ndarray:
        """A camera frame `(H, W, 3)` BGR uint8 (each side at least NETWORK_MIN_SIDE) -> its
        stylized frame `(H, W, 3)` RGB uint8 (float32 in [0, 1] if `as_float`), with numpy and
        OpenCV only: no torch operation runs between frames, so ONNX Runtime's threads have the
        cores to themselves (torch's would compete with them; docs/benchmarks.md).
        BadResultError as `stylize` gives it."""
        from fastnst.onnx_checks import run_bounded

        x = cv2.dnn.blobFromImage(bgr, 1.0 / 255.0, swapRB=True)  # (1, 3, H, W) RGB float32
        out = run_bounded(self.session, self._feeds(x), "stylized")
        if out.shape != x.shape or out.dtype != np.float32:
            raise BadResultError(f"style {self.style} gave a {out.shape} {out.dtype} result for"
                                 f" a {x.shape} frame")
        if not np.isfinite(out).all():
            raise BadResultError(f"style {self.style} gave NaN or inf for this frame")
        rgb = out[0].transpose(1, 2, 0)
        np.clip(rgb, 0.0, 1.0, out=rgb)
        if as_float:
            return np.ascontiguousarray(rgb)
        return cv2.convertScaleAbs(rgb, alpha=255.0)  # rounds and saturates to uint8


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: rising over `overlap` pixels where a tile has a neighbour."""
    w = torch.ones(length)
    if overlap == 0:  # tiles meet edge to edge (w[-0:] would be the whole tile)
        return w
    ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
    if not at_start:
        w[:overlap] = ramp
    if not at_end:
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets covering `length` with tiles of `tile` overlapping by >= `overlap`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return [*starts, length - tile]


@contextlib.contextmanager
def shared_norm_statistics(net: nn.Module, reference: torch.Tensor) -> Iterator[None]:
    """Within the block, every InstanceNorm2d of `net` normalises with the mean and variance it
    saw on `reference` `(1, 3, h, w)`, whatever its input.

    Tiles then share the whole image's statistics; normalising each tile by its own makes its
    tone differ from its neighbours' (a visible patchwork, however well the overlaps blend).
    """
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def capture(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        stats[module] = (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True,
                                                             unbiased=False))

    def normalise(module: nn.InstanceNorm2d, args: tuple[torch.Tensor, ...],
                  output: torch.Tensor) -> torch.Tensor:
        mean, var = stats[module]
        y = (args[0] - mean) * torch.rsqrt(var + module.eps)
        if module.affine:
            y = y * module.weight[:, None, None] + module.bias[:, None, None]
        return y

    handles = [m.register_forward_pre_hook(capture) for m in norms]
    try:
        with torch.no_grad():
            net(reference)
    finally:
        for h in handles:
            h.remove()
    handles = [m.register_forward_hook(normalise) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def run_tiled(backend: Backend, image: torch.Tensor, tile: int, overlap: int,
              like: torch.Tensor | None = None) -> torch.Tensor:
    """Stylize `image` tile by tile (`tile` pixels a side, `overlap` shared between neighbours),
    cross-fading the overlaps linearly, so memory is bounded by the tile, not the image. With
    `like` (a smaller result of the whole image), each tile's channels are given the mean and
    spread of `like` over the same region before the blend."""
    if overlap * 2 > tile:
        raise ValueError(f"overlap ({overlap}) must be at most half the tile ({tile})")
    h, w = image.shape[-2:]
    out = torch.zeros(1, 3, h, w)
    weight = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for y in ys:
        for x in xs:
            th, tw = min(tile, h - y), min(tile, w - x)
            part = checked_call(backend, image[..., y:y + th, x:x + tw])
            if like is not None:
                part = _moments_like(part, like, (y / h, x / w, th / h, tw / w))
            wy = _ramp(th, overlap, y == 0, y + th >= h)
            wx = _ramp(tw, overlap, x == 0, x + tw >= w)
            mask = wy[:, None] * wx[None, :]
            out[..., y:y + th, x:x + tw] += part * mask
            weight[..., y:y + th, x:x + tw] += mask
    return out / weight


def _painted(backend: Backend, image: torch.Tensor, options: StylizeOptions,
             stats_size: int) -> torch.Tensor:
    """The network's result for `image`, in tiles when it is larger than `options.tile`:
    normalised with the whole image's statistics (a backend's `shared_statistics`: PyTorch,
    paintings), or toned to a whole-image run (ONNX Runtime, whose graph normalises each tile
    by its own). Refuses NaN or inf."""
    tile, overlap = options.tile, options.overlap
    if tile and max(image.shape[-2:]) > tile:
        # Statistics, or tone, from the whole image shrunk to at most stats_size pixels a side.
        reference = resize_long_side(image, min(stats_size, max(image.shape[-2:])))
        shared = getattr(backend, "shared_statistics", None)
        if shared is not None:
            with shared(reference):
                out = run_tiled(backend, image, tile, overlap)
        else:
            whole = checked_call(backend, reference)
            out = toned_like(run_tiled(backend, image, tile, overlap, like=whole), whole)
    else:
        out = checked_call(backend, image)
    if not out.isfinite().all():
        raise BadResultError(f"style {backend.style} gave NaN or inf for this image; nothing"
                             " written")
    if out.std() < FLAT_SPREAD and image.std() >= 4 * FLAT_SPREAD:
        raise BadResultError(f"style {backend.style} gave a flat picture (one colour) for an"
                             " image that is not; nothing written (a broken model?)")
    return out


FLAT_SPREAD = 0.5 / 255  # a result whose pixels spread less than this is one colour


TONE_SIDE = 64  # pixels: the long side of the tone a tiled ONNX result takes from a whole run


def toned_like(tiled: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """`tiled` with its coarse tone (the image at TONE_SIDE pixels) replaced by `whole`'s, a
    smaller run of the same image in one piece: tiles normalised each by its own statistics
    then share one tone, and their seams go, while their strokes stay."""
    import torch.nn.functional as F

    hw = tuple(tiled.shape[-2:])

    def coarse(x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, size=long_side_hw(*x.shape[-2:], TONE_SIDE), mode="area")
        return F.interpolate(small, size=hw, mode="bilinear", align_corners=False)

    return tiled - coarse(tiled) + coarse(whole)


def _moments_like(part: torch.Tensor, like: torch.Tensor,
                  region: tuple[float, float, float, float]) -> torch.Tensor:
    """`part` with each channel's mean and standard deviation those of `like` over `region`
    (top, left, height, width as fractions of `like`'s size)."""
    lh, lw = like.shape[-2:]
    top, left, height, width = region
    y0, x0 = int(top * lh), int(left * lw)
    y1, x1 = max(y0 + 1, round((top + height) * lh)), max(x0 + 1, round((left + width) * lw))
    target = like[..., y0:y1, x0:x1]
    mean, std = part.mean((2, 3), keepdim=True), part.std((2, 3), keepdim=True)
    scale = target.std((2, 3), keepdim=True) / std.clamp_min(1e-4)
    return (part - mean) * scale.clamp(0.25, 4.0) + target.mean((2, 3), keepdim=True)


def _hwc(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image[0].permute(1, 2, 0).numpy())


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def stylize(backend: Backend, image: torch.Tensor, options: StylizeOptions = DEFAULTS, *,
            stats_size: int = 1024) -> torch.Tensor:
    """Stylize `image` `(1, 3, H, W)` in [0, 1] as `options` say (fastnst.stylize_options:
    stroke, tiles, colour, strength; `max_size` is the reader's): painted at the working size
    of `options.stroke` and enlarged with the photo's detail (fastnst.upsample), then colour
    and strength at the photo's size. Tiles are normalised with statistics of the whole image
    shrunk to `stats_size` pixels a side."""
    image = image.float()
    side = working_side(*image.shape[-2:], options.stroke)
    if side is None:
        out = _painted(backend, image, options, stats_size)
    else:
        rgb = _hwc(image)
        small = shrink(rgb, side)
        painted = cropped(_hwc(_painted(backend, _chw(padded(small)), options, stats_size)))
        out = _chw(enlarge(painted, luminance(rgb), luminance(small)))
    if options.preserve_color:
        out = keep_colors(image, out)
    if options.strength < 1.0:
        out = options.strength * out + (1.0 - options.strength) * image
    return out.clamp(0.0, 1.0)


def stylize_frame(backend: Backend, bgr: np.ndarray, options: StylizeOptions = DEFAULTS
                  ) -> np.ndarray:
    """A camera or video frame `(H, W, 3)` BGR uint8 -> the stylized frame `(H, W, 3)` RGB
    uint8, as `stylize` does it. An ONNX Runtime model with the default colour and strength
    takes OnnxBackend.run_frame and OpenCV, without torch (faster on small CPUs)."""
    if isinstance(backend, OnnxBackend) and not options.preserve_color \
            and options.strength == 1.0:
        side = working_side(*bgr.shape[:2], options.stroke)
        small = bgr if side is None else shrink(bgr, side)
        if min(small.shape[:2]) >= NETWORK_MIN_SIDE and not (
                options.tile and max(small.shape[:2]) > options.tile):
            if side is None:
                return backend.run_frame(bgr)
            painted = cropped(backend.run_frame(padded(small), as_float=True))
            grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
            grey *= 1.0 / 255.0
            small_grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
            small_grey *= 1.0 / 255.0
            return enlarge_frame(painted, grey, small_grey)
    return to_rgb_array(stylize(backend, from_bgr(bgr), options))
