"""TransformerNet: the feed-forward style networks, in two designs.

`johnson` (Johnson et al. 2016): 9x9 conv, two stride-2 convs, residual blocks, two upsampling
stages, 9x9 conv to RGB; reflection padding and instance normalisation throughout. Upsampling is
nearest-neighbour resize + conv rather than transposed convolution, which avoids checkerboard
artefacts (Odena et al. 2016). About 47 GMAC at 640x480 (32 channels, 5 blocks).

`fast`: the same idea laid out for CPUs (about 1 GMAC at 640x480; scripts/bench_infer.py counts).
Two stride-2 convs take the photo to 1/4 size at once; depthwise-separable residual blocks work
there; a resize-conv returns to 1/2 size, where a skip from the first layer adds back detail;
a 3x3 conv to 4 x RGB and a pixel shuffle make the full-size image. Zero padding inside the
convs and instance normalisation only outside the blocks keep ONNX Runtime's graph to fused
convolutions; one reflection pad of EDGE_PAD pixels around the image, cropped off the result,
keeps that zero padding from drawing lines along the edges. It is trained by distillation from
a `johnson` network (docs/training.md).

Input and output are `(N, 3, H, W)` RGB in [0, 1]; any H and W work, the output has the input's
size.

Multi-style networks (`styles` > 0, either design): every instance norm's scale and shift is a
mix of per-style ones (conditional instance normalisation, Dumoulin et al. 2017), and the fast
design's residual blocks end in a per-style scale and shift too (its only norms are outside the
blocks). The convolutions are shared. `net(image, mix)` takes the mix, a `(styles,)` weight
vector: one-hot for one style, any non-negative mix for a blend (normalised to sum 1 inside).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.errors import UsageError

# The network works on at least this many pixels a side: a reflection pad must be smaller than
# its input (the fast design pads EDGE_PAD around the image; johnson's 9x9 convs pad 4 at full
# size, and 9 px is still 3 px at quarter size, where its 3x3 convs pad 1).
NETWORK_MIN_SIDE = 9
# Pixels of reflection the fast design adds around the image and crops off its result: the zero
# padding of its stride-2 convs otherwise paints a line 4-6 px inside the top and right edges
# (the_scream-fast: a red frame). A multiple of 4, the design's stride, so the grid is unmoved.
EDGE_PAD = 8


# The designs, each with the words a model card uses for it (scripts/ship_style.py): a new
# design is a name here and its layers in TransformerNet.
DESIGNS = {
    "johnson": "TransformerNet (Johnson et al. 2016): reflection padding, instance norm,"
               " resize-convolution upsampling",
    "fast": "TransformerNet, fast design (fastnst.transformer: about 1 GMAC at 640x480):"
            " depthwise-separable residual blocks at 1/4 size, resize-convolution to 1/2 size,"
            " pixel shuffle to full size; made by distillation from the style's network, then"
            " fine-tuned on the style loss (docs/training.md, Fast networks)",
}
MAX_STYLES = 256  # styles in one multi-style network


class _Mix:
    """The style mix a multi-style network is running with: set by TransformerNet.forward, read
    by every StyleNorm of that network (one shared box, so Sequentials need no extra input)."""

    weights: torch.Tensor | None = None


class StyleNorm(nn.Module):
    """Conditional instance norm: instance-normalise (unless `normalize` is False), then scale
    and shift by the current mix of the per-style `weight` and `bias` rows `(styles, channels)`."""

    def __init__(self, channels: int, styles: int, mix: _Mix, normalize: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.normalize = normalize
        self._mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._mix.weights
        if w is None:
            raise RuntimeError("a multi-style network runs through TransformerNet.forward")
        if self.normalize:
            x = F.instance_norm(x, eps=1e-5)
        return x * (w @ self.weight)[None, :, None, None] + (w @ self.bias)[None, :, None, None]


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a TransformerNet. `design`: johnson | fast (see the module docstring).
    johnson: `channels` is the width of the first layer (the paper: 32, doubled at each
    downsampling). fast: `channels` is the width at 1/4 size (48; the 1/2-size layers have a
    third of it). `blocks` is the number of residual blocks (5)."""

    channels: int = 32
    blocks: int = 5
    design: str = "johnson"
    styles: int = 0  # 0: one style; N > 0: a multi-style network of N styles (see above)

    def __post_init__(self) -> None:
        # Bounds keep a hostile model file from asking for terabytes of weights.
        for name, value, low, high in (("channels", self.channels, 1, 512),
                                       ("blocks", self.blocks, 0, 64),
                                       ("styles", self.styles, 0, MAX_STYLES)):
            if type(value) is not int or not low <= value <= high:
                raise UsageError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
        if self.design not in DESIGNS:
            raise UsageError(f"design must be one of {', '.join(DESIGNS)}, not {self.design!r}")
        if self.design == "fast" and self.channels < 3:
            raise UsageError(f"a fast network needs channels >= 3, not {self.channels}")

    def as_dict(self) -> dict[str, int | str]:
        """The fields for metadata (`TransformerConfig(**d)` rebuilds it); `styles` only for a
        multi-style network, so one-style metadata is what it was before multi-style ones."""
        fields = dataclasses.asdict(self)
        if not self.styles:
            del fields["styles"]
        return fields


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


Norm = Callable[[int], nn.Module]  # channels -> an instance norm layer


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


def _conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int = 1,
                    norm: Norm = _instance_norm) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, kernel, stride), norm(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance norm layers with an identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int, norm: Norm = _instance_norm) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_norm_relu(channels, channels, 3, norm=norm),
                                  _conv(channels, channels, 3), norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _ResizeConv(nn.Sequential):
    """Nearest-neighbour resize (x2, or to a given size), then conv + instance norm + ReLU."""

    def __init__(self, c_in: int, c_out: int, norm: Norm = _instance_norm) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="nearest"),
                         _conv_norm_relu(c_in, c_out, 3, norm=norm))

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        x = self[0](x) if size is None else F.interpolate(x, size=size, mode="nearest")
        return self[1](x)


def pad_to_min_side(image: torch.Tensor) -> torch.Tensor:
    """Replicate-pad `(N, 3, H, W)` at the bottom and right to at least NETWORK_MIN_SIDE a side."""
    h, w = image.shape[-2:]
    if h >= NETWORK_MIN_SIDE and w >= NETWORK_MIN_SIDE:
        return image
    pad = (0, max(0, NETWORK_MIN_SIDE - w), 0, max(0, NETWORK_MIN_SIDE - h))
    return F.pad(image, pad, mode="replicate")


class _SeparableBlock(nn.Module):
    """A residual block of two depthwise 3x3 + pointwise 1x1 convolutions, ReLU between, no
    normalisation (the fast design); `scale_shift`: a last layer (a multi-style network's
    per-style scale and shift), or None."""

    def __init__(self, channels: int, scale_shift: nn.Module | None = None) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1),
                                  *([scale_shift] if scale_shift is not None else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _FastNet(nn.Module):
    """The fast design; see the module docstring."""

    def __init__(self, config: TransformerConfig, norm: Norm = _instance_norm,
                 scale_shift: Norm | None = None) -> None:
        super().__init__()
        c, half = config.channels, max(1, config.channels // 3)
        self.down = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1), norm(half), nn.ReLU(inplace=True))
        self.down2 = nn.Sequential(
            nn.Conv2d(half, c, 3, stride=2, padding=1), norm(c), nn.ReLU(inplace=True))
        self.residuals = nn.Sequential(*(
            _SeparableBlock(c, scale_shift(c) if scale_shift else None)
            for _ in range(config.blocks)))
        self.up = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, half, 1),
                                norm(half), nn.ReLU(inplace=True))
        self.to_rgb = nn.Conv2d(half, 3 * 4, 3, padding=1)  # 4 sub-pixels of a 2x2 shuffle
        with torch.no_grad():  # start as a nearest-neighbour upsampling (no checkerboard)
            self.to_rgb.weight.copy_(self.to_rgb.weight[::4].repeat_interleave(4, dim=0))
            self.to_rgb.bias.copy_(self.to_rgb.bias[::4].repeat_interleave(4))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        p = EDGE_PAD
        padded = F.pad(pad_to_min_side(image), (p, p, p, p), mode="reflect")
        half = self.down(padded)  # ceil(H / 2): odd sizes need no padding
        x = self.residuals(self.down2(half))
        x = self.up(F.interpolate(x, size=half.shape[-2:], mode="nearest")) + half
        return torch.sigmoid(F.pixel_shuffle(self.to_rgb(x), 2)[..., p:p + h, p:p + w])


class TransformerNet(nn.Module):
    """A style network of `config.design`; see the module docstring."""

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TransformerConfig()
        styles, norm, scale_shift = self.config.styles, _instance_norm, None
        self._mix = _Mix()
        if styles:
            def norm(channels: int) -> nn.Module:
                return StyleNorm(channels, styles, self._mix)

            def scale_shift(channels: int) -> nn.Module:
                return StyleNorm(channels, styles, self._mix, normalize=False)
        if self.config.design == "fast":
            self.fast = _FastNet(self.config, norm, scale_shift)
            return
        c = self.config.channels
        self.encoder = nn.Sequential(_conv_norm_relu(3, c, 9, norm=norm),
                                     _conv_norm_relu(c, 2 * c, 3, 2, norm=norm),
                                     _conv_norm_relu(2 * c, 4 * c, 3, 2, norm=norm))
        self.residuals = nn.Sequential(*(ResidualBlock(4 * c, norm)
                                         for _ in range(self.config.blocks)))
        self.decoder = nn.Sequential(_ResizeConv(4 * c, 2 * c, norm), _ResizeConv(2 * c, c, norm),
                                     _conv(c, 3, 9))

    @classmethod
    def skeleton(cls, config: TransformerConfig | None = None) -> TransformerNet:
        """The network without weights (on the meta device): its shapes, no memory, and no draw
        from the global random generator. Fill it with `load_state_dict(..., assign=True)`."""
        with torch.device("meta"):
            return cls(config)

    def one_style(self, index: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The mix `(styles,)` of this multi-style network's style `index` alone (one-hot)."""
        mix = torch.zeros(self.config.styles, device=device)
        mix[index] = 1.0
        return mix

    def forward(self, image: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        """`image` `(N, 3, H, W)` -> its stylization; `mix`: a multi-style network's style
        weights `(styles,)` (non-negative, not all zero; normalised here), else None."""
        if not self.config.styles:
            if mix is not None:
                raise ValueError("a style mix is for multi-style networks; this one has one style")
            return self._forward(image)
        if mix is None or tuple(mix.shape) != (self.config.styles,):
            raise ValueError(f"a multi-style network of {self.config.styles} styles needs a mix"
                             f" of shape ({self.config.styles},), not"
                             f" {None if mix is None else tuple(mix.shape)}")
        w = mix.to(image.dtype).clamp(min=0.0)
        self._mix.weights = w / w.sum().clamp(min=1e-6)
        try:
            return self._forward(image)
        finally:
            self._mix.weights = None

    def _forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.config.design == "fast":
            return self.fast(image)
        h, w = image.shape[-2:]
        # Each upsampling stage resizes to the exact size of the matching encoder stage, so any
        # H and W come back unchanged, with no size-dependent Python in the graph (the ONNX
        # export stays dynamic). Images under NETWORK_MIN_SIDE pixels a side are replicate-padded
        # first (reflection pads need room), then cropped back.
        full = self.encoder[0](pad_to_min_side(image))
        half = self.encoder[1](full)
        x = self.residuals(self.encoder[2](half))
        x = self.decoder[0](x, size=half.shape[-2:])
        x = self.decoder[1](x, size=full.shape[-2:])
        # A sigmoid keeps the output in [0, 1] with gradients everywhere (no dead clamp).
        return torch.sigmoid(self.decoder[2](x)[..., :h, :w])
