"""Procedurally made paintings for the style corpus (issue 47): strokes of sampled length, width
and curvature along a flow, dabs, flat shapes, line drawings, washes, dots and mosaics, each in
a sampled palette on a light, dark or coloured ground. They cover the palettes and stroke
families that the corpus's real paintings and textures lack. One seed gives one painting,
always the same; nothing here reads a file but the palettes it is given.

    painting(seed) -> (H, W, 3) uint8 RGB, H and W about SIDE pixels
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE = 256  # pixels: the long side of a made painting (the side a painting is used at)
_SUPERSAMPLE = 2  # drawn this many times larger, then shrunk: smooth edges
FAMILIES = ("strokes", "dabs", "shapes", "lines", "wash", "dots", "cells")
Palette = list[tuple[int, int, int]]


def read_gpl(path: str | Path) -> Palette:
    """The colours of a GIMP palette file (`.gpl`: `R G B [name]` lines after a header)."""
    colours = []
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 3 and all(p.isdigit() for p in parts[:3]):
            colours.append(tuple(min(255, int(p)) for p in parts[:3]))
    return colours  # type: ignore[return-value]


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def sampled_palette(rng: np.random.Generator, palettes: Sequence[Palette] = ()) -> Palette:
    """3 to 8 colours: a run of a given palette (a third of the time, when given), else a
    scheme (one hue, neighbours, complements or a triad) at a saturation (pastel, muted,
    vivid) and lightness (dark, middle, light, or spread)."""
    count = int(rng.integers(3, 9))
    usable = [p for p in palettes if len(p) >= 3]
    if usable and rng.random() < 1 / 3:
        chosen = usable[int(rng.integers(len(usable)))]
        picks = rng.choice(len(chosen), size=min(count, len(chosen)), replace=False)
        return [chosen[int(i)] for i in picks]
    base = rng.random()
    scheme = rng.choice(["mono", "analogous", "complement", "triad"])
    offsets = {"mono": [0.0], "analogous": [-0.08, 0.0, 0.08],
               "complement": [0.0, 0.5], "triad": [0.0, 1 / 3, 2 / 3]}[str(scheme)]
    s_lo, s_hi = [(0.05, 0.3), (0.2, 0.55), (0.55, 1.0)][int(rng.integers(3))]
    v_lo, v_hi = [(0.08, 0.45), (0.35, 0.8), (0.7, 1.0), (0.1, 1.0)][int(rng.integers(4))]
    return [_hsv(base + offsets[int(rng.integers(len(offsets)))] + rng.normal(0, 0.02),
                 rng.uniform(s_lo, s_hi), rng.uniform(v_lo, v_hi)) for _ in range(count)]


def _ground(rng: np.random.Generator, palette: Palette, size: tuple[int, int],
            paper: float = 0.25) -> Image.Image:
    """Light paper (`paper` of the time), else a dark ground, a palette colour, or a gradient
    between two of them."""
    kind = 0 if rng.random() < paper else int(rng.integers(1, 4))
    if kind == 0:
        colour = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.15), rng.uniform(0.88, 1.0))
    elif kind == 1:
        colour = _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.02, 0.2))
    else:
        colour = palette[int(rng.integers(len(palette)))]
    image = Image.new("RGB", size, colour)
    if kind == 3:
        other = np.array(palette[int(rng.integers(len(palette)))], np.float32)
        t = np.linspace(0, 1, size[1], dtype=np.float32)[:, None, None]
        mix = (1 - t) * np.array(colour, np.float32) + t * other
        image = Image.fromarray(np.broadcast_to(mix, (size[1], size[0], 3)).astype(np.uint8))
    return image


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float
            ) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in colour)  # type: ignore


def _flow(rng: np.random.Generator) -> tuple[float, float, float]:
    """A flow field's global angle (radians), how much it swirls, and its spatial frequency."""
    return rng.uniform(0, math.pi), rng.choice([0.0, 0.4, 1.5]), rng.uniform(1.0, 4.0)


def _angle(flow: tuple[float, float, float], x: float, y: float) -> float:
    base, swirl, freq = flow
    return base + swirl * math.sin(freq * 2 * math.pi * x) * math.cos(freq * 2 * math.pi * y)


def _curve(x: float, y: float, angle: float, length: float, bend: float, steps: int = 8
           ) -> list[tuple[float, float]]:
    """Points of an arc from (x, y): `length` pixels, turning by `bend` radians in all."""
    points = [(x, y)]
    for i in range(steps):
        a = angle + bend * (i + 0.5) / steps
        x, y = x + math.cos(a) * length / steps, y + math.sin(a) * length / steps
        points.append((x, y))
    return points


def _strokes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: Palette,
             size: tuple[int, int], short: bool) -> None:
    """Brush strokes along a flow: each a few bristle lines of one colour, jittered."""
    w, h = size
    flow = _flow(rng)
    length = rng.uniform(4, 12) if short else rng.uniform(15, 90)
    width = rng.uniform(3, 14) if short else rng.uniform(1.5, 12)
    bend = rng.uniform(0, 0.6) if short else rng.choice([0.0, 0.5, 1.5])
    count = int(rng.uniform(0.8, 1.6) * w * h / (length * width * 2.5 + 1) * (_SUPERSAMPLE ** -2)
                * (4 if short else 2))
    for _ in range(min(count, 6000)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle = _angle(flow, x / w, y / h) + rng.normal(0, 0.15)
        stroke_len = length * _SUPERSAMPLE * rng.uniform(0.6, 1.4)
        stroke_w = max(1.0, width * _SUPERSAMPLE * rng.uniform(0.6, 1.4))
        colour = _jitter(rng, palette[int(rng.integers(len(palette)))], 10)
        points = _curve(x, y, angle, stroke_len, bend * rng.choice([-1, 1]))
        bristles = int(rng.integers(1, 4))
        for b in range(bristles):
            off = (b - (bristles - 1) / 2) * stroke_w / max(bristles, 1) * 0.6
            nx, ny = -math.sin(angle) * off, math.cos(angle) * off
            draw.line([(px + nx, py + ny) for px, py in points], fill=_jitter(rng, colour, 12),
                      width=max(1, round(stroke_w / bristles * 1.3)), joint="curve")


def _shapes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: Palette,
            size: tuple[int, int]) -> None:
    """Flat polygons, discs, bars and straight lines with hard edges."""
    w, h = size
    for _ in range(int(rng.integers(6, 40))):
        colour = palette[int(rng.integers(len(palette)))]
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.3) * w
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        elif kind == 1:
            sides = int(rng.integers(3, 7))
            turn = rng.uniform(0, 2 * math.pi)
            draw.polygon([(cx + r * math.cos(turn + 2 * math.pi * k / sides),
                           cy + r * math.sin(turn + 2 * math.pi * k / sides))
                          for k in range(sides)], fill=colour)
        elif kind == 2:
            draw.rectangle([cx - r, cy - r / 3, cx + r, cy + r / 3], fill=colour)
        else:
            a = rng.uniform(0, math.pi)
            draw.line([(cx - r * math.cos(a), cy - r * math.sin(a)),
                       (cx + r * math.cos(a), cy + r * math.sin(a))], fill=colour,
                      width=int(rng.integers(1, 8) * _SUPERSAMPLE))


def _lines(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: Palette,
           size: tuple[int, int]) -> None:
    """A line drawing: contour-like curves and hatching in one or two inks, thin."""
    w, h = size
    inks = [palette[int(rng.integers(len(palette)))] for _ in range(2)]
    flow = _flow(rng)
    for _ in range(int(rng.integers(60, 400))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle = _angle(flow, x / w, y / h) + rng.normal(0, 0.5)
        points = _curve(x, y, angle, rng.uniform(10, 120) * _SUPERSAMPLE, rng.normal(0, 1.0))
        draw.line(points, fill=inks[int(rng.integers(2))], width=int(rng.integers(1, 3)),
                  joint="curve")
    for _ in range(int(rng.integers(0, 6))):  # patches of hatching
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.2) * w
        a, gap = rng.uniform(0, math.pi), rng.uniform(3, 8) * _SUPERSAMPLE
        for k in range(int(2 * r / gap)):
            t = -r + k * gap
            dx, dy = math.cos(a), math.sin(a)
            draw.line([(cx + t * -dy - r * dx, cy + t * dx - r * dy),
                       (cx + t * -dy + r * dx, cy + t * dx + r * dy)], fill=inks[0], width=1)


def _wash(image: Image.Image, rng: np.random.Generator, palette: Palette) -> Image.Image:
    """Watercolour: soft translucent blobs, each with a slightly darker rim, on the ground."""
    w, h = image.size
    canvas = np.asarray(image, np.float32) / 255
    for _ in range(int(rng.integers(5, 25))):
        mask = Image.new("L", (w, h), 0)
        md = ImageDraw.Draw(mask)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.35) * w
        points = [(cx + r * rng.uniform(0.5, 1.3) * math.cos(t), cy + r * rng.uniform(0.5, 1.3)
                   * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 12, endpoint=False)]
        md.polygon(points, fill=255)
        soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(r * rng.uniform(0.05, 0.3))),
                          np.float32) / 255
        rim = np.clip(soft * (1 - soft) * 4, 0, 1) * 0.25
        alpha = (soft * rng.uniform(0.2, 0.6) + rim)[..., None]
        colour = np.array(palette[int(rng.integers(len(palette)))], np.float32) / 255
        canvas = canvas * (1 - alpha) + colour * alpha  # glazes: colours mix where they meet
    grain = rng.normal(0, 0.02, (h, w, 1)).astype(np.float32)
    return Image.fromarray((np.clip(canvas + grain, 0, 1) * 255).astype(np.uint8))


def _dots(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: Palette,
          size: tuple[int, int]) -> None:
    """Pointillism: many round dots of the palette, of one sampled size."""
    w, h = size
    r = rng.uniform(1.0, 5.0) * _SUPERSAMPLE
    for _ in range(min(int(w * h / (r * r * 2.5)), 20000)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        draw.ellipse([x - r, y - r, x + r, y + r],
                     fill=_jitter(rng, palette[int(rng.integers(len(palette)))], 8))


def _cells(image: Image.Image, rng: np.random.Generator, palette: Palette) -> Image.Image:
    """A mosaic: Voronoi cells of the palette with dark or light grout between them."""
    w, h = image.size
    count = int(rng.integers(20, 400))
    seeds = rng.uniform(0, 1, (count, 2)) * (w, h)
    colours = np.array([_jitter(rng, palette[int(rng.integers(len(palette)))], 14)
                        for _ in range(count)], np.uint8)
    ys, xs = np.mgrid[0:h:2, 0:w:2]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    best = np.full(len(pts), np.inf, np.float32)
    second = np.full(len(pts), np.inf, np.float32)
    label = np.zeros(len(pts), np.int64)
    for i, s in enumerate(seeds.astype(np.float32)):
        d = ((pts - s) ** 2).sum(1)
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        label = np.where(closer, i, label)
        best = np.minimum(best, d)
    edge = (np.sqrt(second) - np.sqrt(best)) < rng.uniform(1.5, 5) * _SUPERSAMPLE
    out = colours[label]
    out[edge] = np.array(image.getpixel((0, 0)), np.uint8)
    small = Image.fromarray(out.reshape(*xs.shape, 3))
    return small.resize((w, h), Image.NEAREST)


def painting(seed: int, palettes: Sequence[Palette] = (), family: str | None = None,
             side: int = SIDE) -> np.ndarray:
    """The procedural painting of `seed`: `(H, W, 3)` uint8, its long side `side` pixels and
    its aspect between 3:4 and 4:3. `family` (one of FAMILIES) is sampled unless given;
    `palettes` (from read_gpl) are drawn from a third of the time."""
    rng = np.random.default_rng(seed)
    family = family or FAMILIES[int(rng.integers(len(FAMILIES)))]
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    aspect = rng.uniform(0.75, 1.34)
    w, h = (side, round(side / aspect)) if aspect >= 1 else (round(side * aspect), side)
    size = (w * _SUPERSAMPLE, h * _SUPERSAMPLE)
    palette = sampled_palette(rng, palettes)
    image = _ground(rng, palette, size, paper=0.7 if family in ("wash", "lines") else 0.25)
    draw = ImageDraw.Draw(image)
    if family in ("strokes", "dabs"):
        _strokes(draw, rng, palette, size, short=family == "dabs")
    elif family == "shapes":
        _shapes(draw, rng, palette, size)
    elif family == "lines":
        _lines(draw, rng, palette, size)
    elif family == "dots":
        _dots(draw, rng, palette, size)
    elif family == "wash":
        image = _wash(image, rng, palette)
    else:
        image = _cells(image, rng, palette)
    return np.asarray(image.resize((w, h), Image.LANCZOS).convert("RGB"))
