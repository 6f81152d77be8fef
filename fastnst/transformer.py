"""TransformerNet: the feed-forward style network of Johnson et al. (2016).

9x9 conv, two stride-2 convs, residual blocks, two upsampling stages, 9x9 conv to RGB; reflection
padding and instance normalisation throughout. Upsampling is nearest-neighbour resize + conv
rather than transposed convolution, which avoids checkerboard artefacts (Odena et al. 2016).
Input and output are `(N, 3, H, W)` RGB in [0, 1]; any H and W work, the output has the input's
size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.errors import UsageError

# The network works on at least this many pixels a side: a reflection pad must be smaller than
# its input (the 9x9 convs pad 4 at full size; 5 px is still 2 px at quarter size, where the 3x3
# convs pad 1).
NETWORK_MIN_SIDE = 5


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a TransformerNet. `channels` is the width of the first layer (the paper:
    32, doubled at each downsampling); `blocks` is the number of residual blocks (paper: 5)."""

    channels: int = 32
    blocks: int = 5

    def __post_init__(self) -> None:
        # Bounds keep a hostile model file from asking for terabytes of weights.
        for name, value, low, high in (("channels", self.channels, 1, 512),
                                       ("blocks", self.blocks, 0, 64)):
            if type(value) is not int or not low <= value <= high:
                raise UsageError(f"{name} must be an integer in [{low}, {high}], not {value!r}")


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


def _conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, kernel, stride),
                         nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance norm layers with an identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_norm_relu(channels, channels, 3),
                                  _conv(channels, channels, 3),
                                  nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _ResizeConv(nn.Sequential):
    """Nearest-neighbour resize (x2, or to a given size), then conv + instance norm + ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2.0, mode="nearest"),
                         _conv_norm_relu(c_in, c_out, 3))

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


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network; see the module docstring."""

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TransformerConfig()
        c = self.config.channels
        self.encoder = nn.Sequential(_conv_norm_relu(3, c, 9), _conv_norm_relu(c, 2 * c, 3, 2),
                                     _conv_norm_relu(2 * c, 4 * c, 3, 2))
        self.residuals = nn.Sequential(*(ResidualBlock(4 * c) for _ in range(self.config.blocks)))
        self.decoder = nn.Sequential(_ResizeConv(4 * c, 2 * c), _ResizeConv(2 * c, c),
                                     _conv(c, 3, 9))

    @classmethod
    def skeleton(cls, config: TransformerConfig | None = None) -> TransformerNet:
        """The network without weights (on the meta device): its shapes, no memory, and no draw
        from the global random generator. Fill it with `load_state_dict(..., assign=True)`."""
        with torch.device("meta"):
            return cls(config)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
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
