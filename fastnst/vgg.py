"""The VGG19 loss network: named feature taps and where its ImageNet weights come from.

Weights are looked up in this order: an explicit path, `$FASTNST_VGG19`, the user cache, else
the public Keras file is downloaded (md5-checked). The Keras `.h5` file holds the Oxford Caffe
weights, which expect BGR input in 0..255 minus the ImageNet mean; `VGGFeatures` takes RGB in
[0, 1] and applies that convention itself.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from fastnst.download import DownloadError, cache_dir, download
from fastnst.errors import FastnstError, UsageError

KERAS_H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_H5_URL = ("https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
                + KERAS_H5_NAME)
KERAS_H5_MD5 = "253f8cb515780f3b799900260a226db6"
VGG_MIN_SIDE = 16  # pixels: relu5_1 comes after four 2x2 max-poolings, so smaller images vanish
TORCHVISION = "torchvision"  # a `weights` value: torchvision's own ImageNet VGG19 (RGB, mean/std)

# (channels, convolutions) per block, as in Simonyan & Zisserman's configuration E.
_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

# Input conventions of the two weight families: (channel order, scale, mean, std), applied as
# ((x[channel order] * scale) - mean) / std to an RGB [0, 1] image.
CONVENTIONS: dict[str, tuple[tuple[int, int, int], float, tuple[float, ...], tuple[float, ...]]] = {
    "caffe": ((2, 1, 0), 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
    "torchvision": ((0, 1, 2), 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, (_, convs) in enumerate(_BLOCKS, start=1):
        for c in range(1, convs + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return tuple(names)


# Every tap name, in network order; index i is `torchvision.models.vgg19().features[i]`.
LAYERS: tuple[str, ...] = _layer_names()
CONV_LAYERS: tuple[str, ...] = tuple(n for n in LAYERS if n.startswith("conv"))


class VGGWeightsError(FastnstError, RuntimeError):
    """Missing or malformed VGG19 weights; the message names the file."""


def resolve_weights(weights: str | os.PathLike[str] | None = None) -> Path | str:
    """Find the VGG19 weights file: `weights`, `$FASTNST_VGG19`, the cache, else download it.

    Returns a path, or the string `"torchvision"` when that was asked for.
    """
    if weights is not None and str(weights) == TORCHVISION:
        return TORCHVISION
    for source, value in (("weights", weights), ("FASTNST_VGG19", os.environ.get("FASTNST_VGG19"))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise VGGWeightsError(f"{path}: VGG19 weights not found (given by {source})")
            return path
    cached = cache_dir() / KERAS_H5_NAME
    if not cached.is_file():
        try:
            download(KERAS_H5_URL, cached, md5=KERAS_H5_MD5)
        except DownloadError as e:
            raise VGGWeightsError(f"{e}. Without internet, set FASTNST_VGG19 to a copy of"
                                  f" {KERAS_H5_NAME} (md5 {KERAS_H5_MD5}).") from None
    return cached


def load_state(weights: str | os.PathLike[str] | None = None
               ) -> tuple[dict[str, torch.Tensor], str]:
    """Load VGG19 conv weights as `{"features.<i>.weight"/".bias": tensor}` plus the convention.

    Reads the Keras `.h5` file, a plain state dict (`.pth`/`.pt`, loaded without pickle code
    execution, or `.safetensors`) in the Caffe convention, or torchvision's weights.
    """
    resolved = resolve_weights(weights)
    if resolved == TORCHVISION:
        return _load_torchvision(), "torchvision"
    path = Path(resolved)
    return _load_file(path, path.stat().st_mtime_ns), "caffe"


@functools.lru_cache(maxsize=2)
def _load_file(path: Path, mtime_ns: int) -> dict[str, torch.Tensor]:
    """Cached by path and modification time: tests and benchmarks build many networks."""
    try:
        if path.suffix.lower() in (".h5", ".hdf5"):
            state = _read_h5(path)
        elif path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = _normalise_keys(load_file(path))
        else:
            state = _normalise_keys(_unwrap(torch.load(path, map_location="cpu",
                                                       weights_only=True)))
    except VGGWeightsError:
        raise
    except Exception as e:
        raise VGGWeightsError(f"{path}: cannot read VGG19 weights ({type(e).__name__}: {e})"
                              ) from None
    _check_shapes(path, state)
    return {k: v.float() for k, v in state.items()}  # fp16 copies compute in fp32 like the rest


def _read_h5(path: Path) -> dict[str, torch.Tensor]:
    import h5py

    state: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:
        for name in CONV_LAYERS:
            b, c = name[4:].split("_")
            group = f.get(f"block{b}_conv{c}")
            if group is None:
                raise VGGWeightsError(f"{path}: not VGG19 weights (no group block{b}_conv{c})")
            kernel = next((group[k] for k in group if "_W" in k), None)
            bias = next((group[k] for k in group if "_b" in k), None)
            if kernel is None or bias is None:
                raise VGGWeightsError(f"{path}: block{b}_conv{c} lacks its kernel or bias")
            index = LAYERS.index(name)
            # Keras stores (kh, kw, in, out); PyTorch wants (out, in, kh, kw). No kernel flip.
            state[f"features.{index}.weight"] = torch.from_numpy(kernel[()].transpose(3, 2, 0, 1)
                                                                 .copy())
            state[f"features.{index}.bias"] = torch.from_numpy(bias[()].copy())
    return state


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise VGGWeightsError(f"expected a state dict, found {type(obj).__name__}")
    return obj


def _normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept `features.<i>.weight`, `<i>.weight` and `conv1_1.weight` style keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix("features.")
        name, _, kind = key.rpartition(".")
        if name in LAYERS:
            name = str(LAYERS.index(name))
        if name.isdigit() and kind in ("weight", "bias"):
            out[f"features.{name}.{kind}"] = value.float()
    return out


def _check_shapes(path: Path, state: dict[str, torch.Tensor]) -> None:
    expected = _expected_shapes()
    for key, shape in expected.items():
        if key not in state:
            raise VGGWeightsError(f"{path}: not VGG19 weights (no {key})")
        if tuple(state[key].shape) != shape:
            raise VGGWeightsError(f"{path}: {key} has shape {tuple(state[key].shape)},"
                                  f" VGG19 needs {shape}")


@functools.cache
def _expected_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes only: no memory, no draw from the global generator
        layers = _build_layers("max", len(LAYERS))
    return {f"features.{k}": tuple(v.shape) for k, v in layers.state_dict().items()}


def _load_torchvision() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights, vgg19

    state = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features.state_dict()
    return {f"features.{k}": v for k, v in state.items()}


def _build_layers(pooling: str, count: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for width, convs in _BLOCKS:
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=False)]
            channels = width
        layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*layers[:count])


class VGGFeatures(nn.Module):
    """Frozen VGG19 that returns the named taps, running only up to the deepest one.

    Input `(N, 3, H, W)` RGB in [0, 1]; output `{layer name: (N, C, H', W')}`. Layer names are
    `conv<b>_<c>`, `relu<b>_<c>` and `pool<b>` (see `LAYERS`). `pooling` is "max" (the
    network as trained) or "avg" (Gatys et al.'s choice for synthesis: smoother gradients).
    """

    def __init__(self, layers: Iterable[str], weights: str | os.PathLike[str] | None = None,
                 pooling: str = "max") -> None:
        super().__init__()
        self.taps = tuple(dict.fromkeys(layers))
        unknown = [name for name in self.taps if name not in LAYERS]
        if unknown or not self.taps:
            raise UsageError(f"unknown VGG19 layers {unknown or '(none given)'}; choose from"
                             f" {', '.join(LAYERS)}")
        if pooling not in ("max", "avg"):
            raise UsageError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        depth = max(LAYERS.index(name) for name in self.taps) + 1
        with torch.device("meta"):  # no random init to throw away, no global generator draw
            self.features = _build_layers(pooling, depth)
        state, self.convention = load_state(weights)
        wanted = self.features.state_dict()
        self.features.load_state_dict({k: state[f"features.{k}"].clone() for k in wanted},
                                      assign=True)
        order, scale, mean, std = CONVENTIONS[self.convention]
        self.order = list(order)
        self.register_buffer("scale", torch.tensor(scale), persistent=False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """The loss network always stays in eval mode."""
        return super().train(False)

    def forward(self, image: torch.Tensor, layers: Iterable[str] | None = None
                ) -> dict[str, torch.Tensor]:
        """The taps `layers` (default: all of this network's), running VGG19 only as deep as the
        deepest of them: a photo's content pass need not reach relu5_1."""
        taps = set(self.taps if layers is None else layers)
        if not taps <= set(self.taps):
            raise ValueError(f"layers {sorted(taps - set(self.taps))} are not taps of this"
                             f" network ({', '.join(self.taps)})")
        x = (image[:, self.order] * self.scale - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for name, layer in zip(LAYERS, self.features, strict=False):
            x = layer(x)
            if name in taps:
                out[name] = x
                if len(out) == len(taps):
                    break
        return out
