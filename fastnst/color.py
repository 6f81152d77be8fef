"""Colour helpers for colour preservation (Gatys et al. 2016, "Preserving color in neural
artistic style transfer"): work on luminance, keep the photo's chroma. YIQ colour space, and
CIE Lab for comparing palettes (fastnst.quality.palette_distance)."""

from __future__ import annotations

import torch

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """`(N, 3, H, W)` RGB -> YIQ (Y in [0, 1], I and Q roughly in [-0.6, 0.6])."""
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """`(N, 3, H, W)` YIQ -> RGB (not clamped)."""
    return torch.einsum("ij,njhw->nihw", _YIQ_TO_RGB.to(image), image)


# sRGB (linear) -> CIE XYZ under D65, and D65's white point (IEC 61966-2-1).
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """`(N, 3, H, W)` sRGB in [0, 1] -> CIE Lab (D65): L in [0, 100], a and b about
    [-110, 110]; a difference of about 2.3 is just noticeable."""
    rgb = image.float().clamp(0, 1)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ.to(linear), linear)
    xyz = xyz / torch.tensor(_WHITE, dtype=xyz.dtype, device=xyz.device).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3),
                    xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.cat([116 * f[:, 1:2] - 16, 500 * (f[:, :1] - f[:, 1:2]),
                      200 * (f[:, 1:2] - f[:, 2:])], dim=1)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """`(N, 3, H, W)` RGB -> `(N, 3, H, W)` gray image whose three channels are the luma Y."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Gray version of `style` whose luma mean and std equal those of `content`."""
    ys, yc = rgb_to_yiq(style)[:, :1], rgb_to_yiq(content)[:, :1]
    y = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def keep_colors(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """Luma of `stylized` with the chroma (I, Q) of `content`; both `(N, 3, H, W)`, same size."""
    y = rgb_to_yiq(stylized)[:, :1]
    iq = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def rotate_hue(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """`(N, 3, H, W)` RGB with its hues turned by `degrees` (the I, Q plane rotated; luma kept),
    clamped to [0, 1]: a painting's strokes in another palette."""
    yiq = rgb_to_yiq(image)
    a = torch.tensor(degrees * torch.pi / 180.0)
    cos, sin = float(a.cos()), float(a.sin())
    i, q = yiq[:, 1:2], yiq[:, 2:3]
    turned = torch.cat([yiq[:, :1], cos * i - sin * q, sin * i + cos * q], dim=1)
    return yiq_to_rgb(turned).clamp(0, 1)


def restore_layout(result: torch.Tensor, photo: torch.Tensor, amount: float,
                   block: int = 8) -> torch.Tensor:
    """`result` with `amount` (0..1) of its coarse luma replaced by the photo's: the luma of both
    averaged over `block` x `block` pixels and enlarged back (bilinear), the difference added
    to every channel. Light and shade where the photo has them; strokes and colours untouched.
    Both `(N, 3, H, W)`, same size; clamped to [0, 1]."""
    import torch.nn.functional as F

    h, w = result.shape[-2:]

    def coarse(image: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(rgb_to_yiq(image)[:, :1], block, ceil_mode=True)
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)

    return (result + amount * (coarse(photo) - coarse(result))).clamp(0, 1)
