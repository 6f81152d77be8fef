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

# The network works on at least this many pixels a side: a reflection pad must be smaller than
# its input (the 9x9 convs pad 4 at full size, the 3x3 convs pad 1 at quarter size).
MIN_SIDE = 16


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a TransformerNet. `channels` is the width of the first layer (the paper:
    32, doubled at each downsampling); `blocks` is the number of residual blocks (paper: 5)."""

    channels: int = 32
    blocks: int = 5


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


def _upsample(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest-neighbour x2 resize, then conv + instance norm + ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"),
                         _conv_norm_relu(c_in, c_out, 3))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network; see the module docstring."""

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TransformerConfig()
        c = self.config.channels
        self.encoder = nn.Sequential(_conv_norm_relu(3, c, 9), _conv_norm_relu(c, 2 * c, 3, 2),
                                     _conv_norm_relu(2 * c, 4 * c, 3, 2))
        self.residuals = nn.Sequential(*(ResidualBlock(4 * c) for _ in range(self.config.blocks)))
        self.decoder = nn.Sequential(_upsample(4 * c, 2 * c), _upsample(2 * c, c),
                                     _conv(c, 3, 9))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        # Two stride-2 stages: pad to a multiple of 4, and to at least MIN_SIDE so that every
        # reflection pad has room (replicate works even for 1-pixel images); then crop back, so
        # the output always has the input's size.
        pad_h, pad_w = max(MIN_SIDE, h + (-h) % 4) - h, max(MIN_SIDE, w + (-w) % 4) - w
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
        x = self.decoder(self.residuals(self.encoder(x)))
        # A sigmoid keeps the output in [0, 1] with gradients everywhere (no dead clamp).
        return torch.sigmoid(x[..., :h, :w])
