"""Any painting without training: universal style transfer by whitening and colouring VGG19
features (Li et al., NeurIPS 2017, "Universal Style Transfer via Feature Transforms").

The photo and the painting are encoded by VGG19 up to a layer (relu4_1 by default). The
photo's features are whitened (their covariance made the identity) and coloured with the
painting's covariance and mean, then a decoder trained only to reconstruct photos from that
layer turns them back into an image. Nothing here has seen a painting: the style is in the
painting's feature statistics alone. `Decoder` is the network the training of
fastnst.training.decoder makes.

Tensors are `(N, 3, H, W)` RGB in [0, 1] unless said; features `(N, C, h, w)`.
"""

from __future__ import annotations

import os

import torch
from torch import nn

# Where each decoder starts, and the VGG19 block widths its upsampling mirrors.
DECODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
_WIDTHS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
WCT_EPS = 1e-5  # added to the covariances' eigenvalues before they are inverted


def _whitening_colouring(content: torch.Tensor, style: torch.Tensor, eps: float = WCT_EPS
                         ) -> torch.Tensor:
    """One image's features `(C, n)` of the photo recoloured by the painting's `(C, m)`: zero
    mean and identity covariance (whitening), then the painting's covariance and mean."""
    c = content.double()
    s = style.double()
    c_mean, s_mean = c.mean(1, keepdim=True), s.mean(1, keepdim=True)
    c, s = c - c_mean, s - s_mean
    eye = torch.eye(c.shape[0], dtype=torch.float64, device=c.device)
    c_val, c_vec = torch.linalg.eigh(c @ c.T / max(1, c.shape[1] - 1) + eps * eye)
    s_val, s_vec = torch.linalg.eigh(s @ s.T / max(1, s.shape[1] - 1) + eps * eye)
    whiten = c_vec @ torch.diag(c_val.clamp_min(eps).rsqrt()) @ c_vec.T
    colour = s_vec @ torch.diag(s_val.clamp_min(0).sqrt()) @ s_vec.T
    return (colour @ (whiten @ c) + s_mean).to(content.dtype)


def wct(content: torch.Tensor, style: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The photo's features `content` `(N, C, h, w)` with the mean and covariance of the
    painting's `style` `(1 or N, C, h', w')`, blended with the original by `strength` (0..1)."""
    n, channels, h, w = content.shape
    out = []
    for i in range(n):
        s = style[min(i, style.shape[0] - 1)].reshape(channels, -1)
        out.append(_whitening_colouring(content[i].reshape(channels, -1), s).view(channels, h, w))
    coloured = torch.stack(out)
    return strength * coloured + (1.0 - strength) * content


def _conv(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Decoder(nn.Module):
    """VGG19's layers up to `layer`, mirrored (Li et al.'s decoders): reflection-padded 3x3
    convolutions, nearest-neighbour 2x upsampling where VGG pools; `(N, C, h, w)` features ->
    `(N, 3, H, W)` RGB (not clipped)."""

    def __init__(self, layer: str = "relu4_1") -> None:
        super().__init__()
        if layer not in DECODER_LAYERS:
            raise ValueError(f"layer must be one of {', '.join(DECODER_LAYERS)}, not {layer!r}")
        self.layer = layer
        depth = DECODER_LAYERS.index(layer)
        blocks: list[nn.Module] = []
        # From relu4_1: 512 -> 256, up, 3 x 256, 256 -> 128, up, 128, 128 -> 64, up, 64, -> 3.
        if depth >= 3:
            blocks += [_conv(512, 256), nn.Upsample(scale_factor=2, mode="nearest"),
                       _conv(256, 256), _conv(256, 256), _conv(256, 256)]
        if depth >= 2:
            blocks += [_conv(256, 128), nn.Upsample(scale_factor=2, mode="nearest"),
                       _conv(128, 128)]
        if depth >= 1:
            blocks += [_conv(128, 64), nn.Upsample(scale_factor=2, mode="nearest"),
                       _conv(64, 64)]
        blocks.append(_conv(64, 3, relu=False))
        self.body = nn.Sequential(*blocks)
        self.channels = _WIDTHS[layer]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)


DECODER_FORMAT = "fastnst-decoder-1"  # the metadata `format` of a decoder file


def load_decoder(path: str | os.PathLike[str]) -> Decoder:
    """The decoder in the safetensors file `path` (what `python -m fastnst.train_decoder`
    writes), checked: ModelFileError naming the file for anything else."""
    from safetensors import SafetensorError, safe_open

    from fastnst.model_files import ModelFileError, weight_problems

    try:
        with safe_open(os.fspath(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != DECODER_FORMAT or meta.get("layer") not in DECODER_LAYERS:
                raise ModelFileError(path, f"not a fastnst decoder (format"
                                           f" {meta.get('format')!r}, layer {meta.get('layer')!r})")
            decoder = Decoder(meta["layer"])
            specs = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape()))
                     for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            if problems := weight_problems(specs, decoder):
                raise ModelFileError(path, f"does not fit a {meta['layer']} decoder ({problems})")
            decoder.load_state_dict({k: f.get_tensor(k).float() for k in specs})
    except (OSError, SafetensorError) as e:
        raise ModelFileError(path, f"not a readable decoder ({type(e).__name__})") from None
    return decoder.eval().requires_grad_(False)


class UniversalStylizer(nn.Module):
    """Any painting onto a photo: VGG19 features of both at the decoder's layer, the photo's
    whitened and coloured with the painting's (`wct`), decoded."""

    def __init__(self, decoder: Decoder, weights: str | os.PathLike[str] | None = None) -> None:
        from fastnst.vgg import VGGFeatures

        super().__init__()
        self.decoder = decoder
        self.encoder = VGGFeatures([decoder.layer], weights)

    @torch.no_grad()
    def forward(self, photo: torch.Tensor, painting: torch.Tensor, strength: float = 1.0
                ) -> torch.Tensor:
        layer = self.decoder.layer
        content = self.encoder(photo, [layer])[layer]
        style = self.encoder(painting, [layer])[layer]
        return self.decoder(wct(content, style, strength)).clamp(0, 1)
