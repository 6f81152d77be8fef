"""Any painting without training: universal style transfer by whitening and colouring VGG19
features (Li et al., NeurIPS 2017, "Universal Style Transfer via Feature Transforms").

The photo and the painting are encoded by VGG19 at a layer. The photo's features are whitened
(their covariance made the identity) and coloured with the painting's covariance and mean, then
a decoder turns them back into an image. What ships is one level, relu4_1, whose decoder was
trained to paint (fastnst.training.decoder with `paintings=`: AdaIN's training with WCT's
transform), then LAYOUT of the photo's coarse light and shade put back; decoders trained only
to reconstruct photos run level by level from relu4_1 to relu1_1 (Li et al.'s multi-level
WCT) and are where the painting decoder's training starts. The covariances' roots are taken by
Newton-Schulz steps (matrix products), not an eigen-decomposition, so that the arithmetic can
also run as an ONNX graph. `Decoder` is the network fastnst.training.decoder trains.

Tensors are `(N, 3, H, W)` RGB in [0, 1] unless said; features `(N, C, h, w)`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Where each decoder starts, and the VGG19 block widths its upsampling mirrors.
DECODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
_WIDTHS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
# Each decoder's input is multiplied by this first: about 1 over the features' RMS on photos
# (VGG19's Caffe scale: 40-60 at relu1_1, 170-230 at relu2_1, 260-300 at relu3_1), without
# which Adam's first steps throw the shallow decoders' few layers far off; relu4_1's (RMS
# 880-990) learned at 1 and was trained so.
_INPUT_SCALES = {"relu1_1": 1 / 50, "relu2_1": 1 / 200, "relu3_1": 1 / 280, "relu4_1": 1.0}
WCT_EPS = 1e-3  # times a covariance's mean eigenvalue, added to it before its roots are taken
WCT_FLOOR = 1e-5  # also added: a flat picture's covariance (zero) stays invertible
WCT_ITERATIONS = 20  # Newton-Schulz steps: converged in float32 by then (docs/universal.md)


@dataclass(frozen=True)
class Moments:
    """The mean and covariance of one image's features at one layer: `mean` `(C, 1)`, `root`
    the covariance's square root and `inverse_root` its inverse `(C, C)`."""

    mean: torch.Tensor
    root: torch.Tensor
    inverse_root: torch.Tensor


def _regularised(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`cov` `(C, C)` plus WCT_EPS times its mean eigenvalue plus WCT_FLOOR on the diagonal,
    and the identity."""
    channels = cov.shape[-1]
    eye = torch.eye(channels, dtype=cov.dtype, device=cov.device)
    return cov + (WCT_EPS * (cov * eye).sum() / channels + WCT_FLOOR) * eye, eye


def covariance_roots(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The square root and inverse square root of the covariance `cov` `(C, C)`, regularised
    by WCT_EPS times its mean eigenvalue (plus WCT_FLOOR), by WCT_ITERATIONS coupled
    Newton-Schulz steps: matrix products only, so that the same arithmetic runs in PyTorch and
    in an ONNX graph (no eigen-decomposition operator there). Within a few percent of the
    exact roots (docs/universal.md)."""
    cov, eye = _regularised(cov)
    norm = (cov * eye).sum()  # the eigenvalues of cov / norm lie in (0, 1]: the steps converge
    y, z = cov / norm, eye
    for _ in range(WCT_ITERATIONS):
        t = 1.5 * eye - 0.5 * (z @ y)
        y, z = y @ t, t @ z
    return y * norm.sqrt(), z * norm.rsqrt()


def exact_covariance_roots(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """covariance_roots by an eigen-decomposition (in float64): for training, where it is 7x
    faster than the Newton-Schulz steps and no ONNX graph is needed."""
    cov, _ = _regularised(cov)
    values, vectors = torch.linalg.eigh(cov.double())
    values = values.clamp_min(WCT_FLOOR)
    root = (vectors * values.sqrt()) @ vectors.T
    inverse_root = (vectors * values.rsqrt()) @ vectors.T
    return root.to(cov.dtype), inverse_root.to(cov.dtype)


def _float32(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context in which matrix products on `x`'s device stay in float32 under autocast (in
    bfloat16 the covariances' roots come out NaN: an AMX CPU or GPU trains in bf16-mixed)."""
    kind = x.device.type
    return torch.autocast(kind, enabled=False) if torch.is_autocast_enabled(kind) \
        else contextlib.nullcontext()


def moments(features: torch.Tensor, exact: bool = False, diagonal: bool = False) -> Moments:
    """The Moments of features `(C, n)` (one image's, flattened), in float32 (under autocast
    too); `exact` takes the roots by exact_covariance_roots. `diagonal` keeps only each
    channel's variance (roots diagonal): `transfer` is then AdaIN (Huang & Belongie 2017), each
    channel given the painting's mean and deviation, the photo's correlations kept."""
    with _float32(features):
        x = features.float()
        mean = x.mean(1, keepdim=True)
        x = x - mean
        if diagonal:
            variance = x.pow(2).sum(1) / max(1, x.shape[1] - 1)
            variance = variance + WCT_EPS * variance.mean() + WCT_FLOOR
            return Moments(mean, torch.diag(variance.sqrt()), torch.diag(variance.rsqrt()))
        roots = exact_covariance_roots if exact else covariance_roots
        root, inverse_root = roots(x @ x.T / max(1, x.shape[1] - 1))
    return Moments(mean, root, inverse_root)


def match_palette(image: torch.Tensor, target: Moments, amount: float,
                  own: Moments | None = None) -> tuple[torch.Tensor, Moments]:
    """`image` `(1, 3, H, W)` with `amount` (0..1) of its colours moved onto the painting's: the
    linear map that carries the RGB distribution with Moments `own` (default: the image's) onto
    `target`'s mean and covariance with the least change (Monge-Kantorovich, Pitie & Kokaram
    2007): the painting's light and dark range and its hues, each pixel's place in them kept.
    Clamped to [0, 1]; also returns `own` (to share it between tiles)."""
    with _float32(image):
        x = image[0].float().flatten(1)
        own = own if own is not None else moments(x)
        # In 0..255 units, where WCT_FLOOR is negligible against the fourth powers of colours.
        root, inverse_root = own.root * 255, own.inverse_root / 255
        middle, _ = covariance_roots(root @ (target.root * 255) @ (target.root * 255) @ root)
        mapped = inverse_root @ middle @ inverse_root @ (x - own.mean) + target.mean
        out = (amount * mapped + (1.0 - amount) * x).view_as(image[0])[None]
    return out.clamp(0, 1).to(image.dtype), own


def transfer(content: torch.Tensor, photo: Moments, painting: Moments) -> torch.Tensor:
    """Features `(C, n)` whitened with the photo's Moments and coloured with the painting's
    (in float32, under autocast too)."""
    with _float32(content):
        colour = painting.root @ photo.inverse_root
        return (colour @ (content.float() - photo.mean) + painting.mean).to(content.dtype)


def wct(content: torch.Tensor, style: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """The photo's features `content` `(N, C, h, w)` with the mean and covariance of the
    painting's `style` `(1 or N, C, h', w')`, blended with the original by `strength` (0..1)."""
    n, channels, h, w = content.shape
    out = []
    for i in range(n):
        c = content[i].reshape(channels, -1)
        s = style[min(i, style.shape[0] - 1)].reshape(channels, -1)
        out.append(transfer(c, moments(c), moments(s)).view(channels, h, w))
    coloured = torch.stack(out)
    return strength * coloured + (1.0 - strength) * content


def _conv(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


# How a painting's statistics go onto the photo's features before a decoder: "wct" (the whole
# covariance: whitening and colouring) or "adain" (each channel's mean and deviation only).
TRANSFORMS = ("wct", "adain")


class Decoder(nn.Module):
    """VGG19's layers up to `layer`, mirrored (Li et al.'s decoders): reflection-padded 3x3
    convolutions, nearest-neighbour 2x upsampling where VGG pools; `(N, C, h, w)` features ->
    `(N, 3, H, W)` RGB (not clipped). `transform` (TRANSFORMS) is the feature transform it was
    trained after."""

    def __init__(self, layer: str = "relu4_1", transform: str = "wct") -> None:
        super().__init__()
        if layer not in DECODER_LAYERS:
            raise ValueError(f"layer must be one of {', '.join(DECODER_LAYERS)}, not {layer!r}")
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, not"
                             f" {transform!r}")
        self.layer, self.transform = layer, transform
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
        self.input_scale = _INPUT_SCALES[layer]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features * self.input_scale)


DECODER_FORMAT = "fastnst-decoder-1"  # the metadata `format` of a decoder file


def load_decoder(path: str | os.PathLike[str]) -> Decoder:
    """The decoder in the safetensors file `path` (what `python -m fastnst.train_decoder`
    writes), checked: ModelFileError naming the file for anything else."""
    from safetensors import SafetensorError, safe_open

    from fastnst.model_files import ModelFileError, weight_problems

    try:
        with safe_open(os.fspath(path), "pt") as f:
            meta = f.metadata() or {}
            transform = meta.get("transform", "wct")  # decoders before issue 47: WCT
            if meta.get("format") != DECODER_FORMAT or meta.get("layer") not in DECODER_LAYERS \
                    or transform not in TRANSFORMS:
                raise ModelFileError(path, f"not a fastnst decoder (format"
                                           f" {meta.get('format')!r}, layer {meta.get('layer')!r},"
                                           f" transform {transform!r})")
            decoder = Decoder(meta["layer"], transform)
            specs = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape()))
                     for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
            if problems := weight_problems(specs, decoder):
                raise ModelFileError(path, f"does not fit a {meta['layer']} decoder ({problems})")
            decoder.load_state_dict({k: f.get_tensor(k).float() for k in specs})
    except (OSError, SafetensorError) as e:
        raise ModelFileError(path, f"not a readable decoder ({type(e).__name__})") from None
    return decoder.eval().requires_grad_(False)


PALETTE_KEY = "rgb"  # the Moments of a picture's own colours, beside its layers' Moments
# How much of each level's features are the painting's (1) rather than the photo's (0):
# chosen on photos and paintings apart from those the results are reported on (docs/universal.md).
LEVEL_STRENGTHS = {"relu4_1": 1.0, "relu3_1": 1.0, "relu2_1": 1.0, "relu1_1": 1.0}


class UniversalStylizer(nn.Module):
    """Any painting onto a photo, level by level from the deepest decoder to the shallowest
    (Li et al.'s multi-level WCT): at each level the current image's VGG19 features are
    whitened, coloured with the painting's (`transfer`), blended with the originals by the
    level's strength (LEVEL_STRENGTHS, or `strengths` {layer: 0..1}; 0 leaves the level out)
    and decoded; the next level starts from that image. `layout` (0..1) of the photo's coarse
    light and shade is then put back (fastnst.color.restore_layout), and `palette` (0..1) of
    the way to the painting's colours taken (match_palette). A decoder trained after AdaIN
    (`transform="adain"`) gets each channel's statistics only."""

    def __init__(self, decoders: Sequence[Decoder], weights: str | os.PathLike[str] | None = None,
                 strengths: dict[str, float] | None = None, layout: float = 0.0,
                 palette: float = 0.0) -> None:
        from fastnst.vgg import VGGFeatures

        super().__init__()
        if not decoders:
            raise ValueError("a UniversalStylizer needs at least one decoder")
        ordered = sorted(decoders, key=lambda d: -DECODER_LAYERS.index(d.layer))
        self.decoders = nn.ModuleList(ordered)
        self.layers = [d.layer for d in ordered]
        self.encoder = VGGFeatures(self.layers, weights)
        self.strengths = {**LEVEL_STRENGTHS, **(strengths or {})}
        self.multiple = 2 ** DECODER_LAYERS.index(self.layers[0])  # sides the pooling divides
        self.layout = layout
        self.palette = palette
        self.diagonal = {d.layer: d.transform == "adain" for d in ordered}

    @torch.no_grad()
    def painting_moments(self, painting: torch.Tensor) -> dict[str, Moments]:
        """The painting's Moments `(1, 3, H, W)` at each level's layer, and of its RGB colours
        (PALETTE_KEY)."""
        feats = self.encoder(painting, self.layers)
        found = {k: moments(v[0].flatten(1), diagonal=self.diagonal[k]) for k, v in feats.items()}
        found[PALETTE_KEY] = moments(painting[0].float().flatten(1))
        return found

    @torch.no_grad()
    def run(self, photo: torch.Tensor, painting: dict[str, Moments],
            fixed: dict[str, Moments] | None = None) -> tuple[torch.Tensor, dict[str, Moments]]:
        """`photo` `(1, 3, H, W)` in the painting's style, and the photo's Moments each level
        used: its own, or `fixed` (a whole picture's, so that its tiles agree)."""
        h, w = photo.shape[-2:]
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        # Padded also when traced for ONNX (fastnst.painting_onnx), where the pads are computed
        # from the input's size in the graph, not fixed by the example's.
        padded = pad_h or pad_w or torch.jit.is_tracing()
        x = F.pad(photo, (0, pad_w, 0, pad_h), mode="replicate") if padded else photo
        used: dict[str, Moments] = {}
        for decoder in self.decoders:
            layer = decoder.layer
            if not self.strengths[layer]:  # a level at strength 0 is left out, not run
                continue
            content = self.encoder(x, [layer])[layer]
            flat = content[0].flatten(1)
            used[layer] = fixed[layer] if fixed else moments(flat, diagonal=self.diagonal[layer])
            coloured = transfer(flat, used[layer], painting[layer]).view_as(content[0])[None]
            alpha = self.strengths[layer]
            x = decoder(alpha * coloured + (1.0 - alpha) * content).clamp(0, 1)
        out = x[..., :h, :w].contiguous()
        if self.layout:
            from fastnst.color import restore_layout

            out = restore_layout(out, photo, self.layout)
        if self.palette:
            out, used[PALETTE_KEY] = match_palette(out, painting[PALETTE_KEY], self.palette,
                                                   fixed.get(PALETTE_KEY) if fixed else None)
        return out, used

    def forward(self, photo: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
        """`photo` `(1, 3, H, W)` in the style of `painting` `(1, 3, H', W')`."""
        return self.run(photo, self.painting_moments(painting))[0]


PAINTING_SIDE = 256  # pixels: a painting's long side as its statistics are taken (the stroke's)
PAINTING_READ_SIDE = 2048  # pixels: a painting is decoded at most this large first


def read_painting(path: str | os.PathLike[str], side: int = PAINTING_SIDE) -> torch.Tensor:
    """The painting file `path` as the painting path takes it: `(1, 3, h, w)` in [0, 1], its
    long side at most `side` pixels (decoded at most PAINTING_READ_SIDE first); ImageError
    naming the file when it cannot be read, is over paintings.MAX_PAINTING_PIXELS (from its
    header) or too small or thin (paintings.checked_size)."""
    from fastnst.images import read_image, resize_long_side
    from fastnst.paintings import MAX_PAINTING_PIXELS, checked_size

    painting = checked_size(path, read_image(path, PAINTING_READ_SIDE, MAX_PAINTING_PIXELS), side)
    return resize_long_side(painting, side) if max(painting.shape[-2:]) > side else painting


class PaintingBackend:
    """A painting as a style (fastnst.stylizer's Backend): `backend(image)` paints a
    `(1, 3, H, W)` image in it with a UniversalStylizer; `shared_statistics` makes tiles use
    one picture's statistics. `painting`: the file already read (read_painting), if it was."""

    def __init__(self, path: str | os.PathLike[str], stylizer: UniversalStylizer,
                 device: torch.device, side: int = PAINTING_SIDE,
                 painting: torch.Tensor | None = None) -> None:
        from fastnst.model_files import style_label

        self.styles: list[str] = []  # not a multi-style model: nothing to mix
        self.source = os.fsdecode(path)
        self.style = style_label(Path(path).stem)
        self.device = device
        self.stylizer = stylizer.to(device)
        if painting is None:
            painting = read_painting(path, side)
        self.painting = self.stylizer.painting_moments(painting.to(device))
        self._fixed: dict[str, Moments] | None = None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        out, _ = self.stylizer.run(image.float().to(self.device), self.painting, self._fixed)
        return out.float().cpu()

    @contextlib.contextmanager
    def shared_statistics(self, reference: torch.Tensor) -> Iterator[None]:
        """Within the block, every level whitens with the Moments of `reference` (the whole
        picture, shrunk), not each tile's own: tiles then agree in tone."""
        _, self._fixed = self.stylizer.run(reference.float().to(self.device), self.painting)
        try:
            yield
        finally:
            self._fixed = None


DECODER_FOLDER = "decoders"  # under the shipped models: `<layer>.safetensors`, one per level


def _installed_decoders() -> dict[str, Path]:
    """Every `<stem>.safetensors` under the installed models' DECODER_FOLDER: `{stem: file}`."""
    from importlib import resources

    from fastnst.model_files import SHIPPED_PACKAGE

    try:
        folder = resources.files(SHIPPED_PACKAGE) / DECODER_FOLDER
    except ModuleNotFoundError:
        return {}
    if not folder.is_dir():
        return {}
    return {p.name.removesuffix(".safetensors"): Path(str(p)) for p in folder.iterdir()
            if p.name.endswith(".safetensors")}


def shipped_decoders() -> dict[str, Path]:
    """The reconstruction decoders installed with fastnst: `{layer: file}` (empty when none
    ship)."""
    return {k: v for k, v in _installed_decoders().items() if k in DECODER_LAYERS}


PAINTER = "painter"  # the painting decoder's file stem under DECODER_FOLDER
# How much of the photo's coarse light and shade the painter's results get back (restore_layout):
# chosen on photos and paintings apart from those the results are reported on (docs/universal.md).
LAYOUT = 0.4
# How much of the way to the painting's colours the painter's results go (match_palette): chosen
# on paintings and photos apart from those the results are reported on (docs/universal.md).
PALETTE = 0.0


def shipped_painter() -> Path | None:
    """The painting decoder installed with fastnst (`python -m fastnst.train_decoder
    paintings=...` makes one), or None."""
    return _installed_decoders().get(PAINTER)


_STYLIZERS: dict[str, UniversalStylizer] = {}  # per device: VGG19 and the painter, loaded once


def universal_stylizer(device: torch.device) -> UniversalStylizer:
    """The shipped painting decoder (one level, at relu4_1) and VGG19 on `device`, the photo's
    layout restored by LAYOUT, loaded once per process; ModelFileError when none ships."""
    from fastnst.model_files import ModelFileError

    if str(device) not in _STYLIZERS:
        path = shipped_painter()
        if path is None:
            raise ModelFileError(f"{DECODER_FOLDER}/{PAINTER}.safetensors",
                                 "no painting decoder is installed (python -m"
                                 " fastnst.train_decoder paintings=... makes one)")
        _STYLIZERS[str(device)] = UniversalStylizer([load_decoder(path)], layout=LAYOUT,
                                                    palette=PALETTE).to(device)
    return _STYLIZERS[str(device)]


class PaintingTeacher(nn.Module):
    """A painting's universal results as a distillation teacher (`python -m fastnst.distill
    style=painting.jpg`): `teacher(photos)` `(N, 3, H, W)` -> each photo in the painting's
    style, as the painting backend gives it at the photo's size."""

    def __init__(self, stylizer: UniversalStylizer, painting: torch.Tensor) -> None:
        super().__init__()
        self.stylizer = stylizer
        self.register_buffer("painting", painting, persistent=False)
        self._moments: tuple[str, dict[str, Moments]] | None = None

    @torch.no_grad()
    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        device = str(photos.device)
        if self._moments is None or self._moments[0] != device:  # taken where the run runs
            self._moments = (device, self.stylizer.painting_moments(self.painting))
        moments_ = self._moments[1]
        return torch.cat([self.stylizer.run(p[None].float(), moments_)[0] for p in photos])
