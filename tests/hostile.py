"""A corpus of hostile and odd input files, generated on the spot (nothing binary is committed).

Each `Case` is one file (or file-like thing) and what reading it must give: `valid` cases are odd
but real images that must be read (their expected size is given), the others must be refused
with a one-line `ImageError` naming the file and containing `problem`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


class PicklePayload:
    """Unpickling this creates the file `marker`: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@dataclass(frozen=True)
class Case:
    name: str                       # what the case is, for test ids and the closing note
    path: Path
    size: tuple[int, int] | None    # (height, width) it must read as; None: it must be refused
    problem: str = ""               # part of the error message when refused

    @property
    def valid(self) -> bool:
        return self.size is not None


def _pixels(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) says it is `width` x `height`."""
    data = bytearray(_encoded(Image.fromarray(_pixels(16, 16)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(_encoded(Image.fromarray(_pixels(24, 24)), "PNG"))
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    data[idat + 4 + length] ^= 0xFF  # first byte of the IDAT chunk's CRC
    return bytes(data)


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _encoded(Image.fromarray(_pixels(20, 30)), "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_pixels(16, 18, seed)).convert("P") for seed in range(3)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _palette_transparent_png() -> bytes:
    img = Image.fromarray(_pixels(12, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
    return _encoded(img, "PNG", transparency=0)


def make_corpus(root: Path) -> list[Case]:
    """Write the corpus into the folder `root` (created) and return its cases."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def file(name: str, data: bytes, size: tuple[int, int] | None, problem: str = "",
             what: str | None = None) -> None:
        path = root / name
        path.write_bytes(data)
        cases.append(Case(what or name, path, size, problem))

    rgb = Image.fromarray(_pixels(20, 30))
    # Odd but valid images.
    file("one_pixel.png", _encoded(Image.fromarray(_pixels(1, 1)), "PNG"), (1, 1))
    file("sliver_2x300.png", _encoded(Image.fromarray(_pixels(2, 300)), "PNG"), (2, 300))
    file("gray16.png", _encoded(Image.fromarray(
        np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)), "PNG"), (20, 30))
    file("palette.png", _encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
         (20, 30))
    file("palette_transparent.png", _palette_transparent_png(), (12, 10))
    file("rgba.png", _encoded(rgb.convert("RGBA"), "PNG"), (20, 30))
    file("gray_alpha.png", _encoded(rgb.convert("LA"), "PNG"), (20, 30))
    file("grayscale.jpg", _encoded(rgb.convert("L"), "JPEG"), (20, 30))
    file("cmyk.jpg", _encoded(rgb.convert("CMYK"), "JPEG"), (20, 30))
    file("exif_rotated.jpg", _exif_rotated_jpeg(), (30, 20), what="EXIF-rotated JPEG")
    file("animated.gif", _animated_gif(), (16, 18))
    file("photo.webp", _encoded(rgb, "WEBP"), (20, 30))
    file("tiff_photo.tif", _encoded(rgb, "TIFF"), (20, 30))
    file("jpeg_named.png", _encoded(rgb, "JPEG"), (20, 30), what="JPEG with a .png name")
    file(os.fsdecode(b"caf\xe9_latin1_name.jpg"), _encoded(rgb, "JPEG"), (20, 30),
         what="non-UTF-8 file name")
    # Files that must be refused.
    file("empty.jpg", b"", None, "empty file")
    file("text.jpg", b"this is a shopping list, not a photo\n", None, "not an image",
         what="text renamed .jpg")
    full_jpeg = _encoded(Image.fromarray(_pixels(64, 64)), "JPEG")
    file("truncated.jpg", full_jpeg[: len(full_jpeg) // 2], None, "truncated")
    file("truncated.png", _encoded(Image.fromarray(_pixels(64, 64)), "PNG")[:300], None,
         "truncated")
    file("bad_crc.png", _bad_crc_png(), None, "corrupt", what="PNG with a bad CRC")
    file("jpeg_header_only.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 40, None, "",
         what="JPEG header and nothing else")
    file("bomb.png", png_declaring(100_000, 100_000), None, "decompression bomb")
    file("bomb.jpg", jpeg_declaring(12_000, 12_000), None, "truncated JPEG",
         what="JPEG of a few hundred bytes declaring 144 MP")
    file(os.fsdecode(b"broken_\xff\xfe_name.jpg"), b"\xff\xd8\xff garbage", None, "",
         what="corrupt file with a non-UTF-8 name")
    folder = root / "folder.jpg"
    folder.mkdir()
    cases.append(Case("directory named like an image", folder, None, "is a directory"))
    loop = root / "loop.jpg"
    loop.symlink_to(loop.name)
    cases.append(Case("symlink loop", loop, None, "symbolic links"))
    locked = root / "unreadable.png"
    locked.write_bytes(_encoded(rgb, "PNG"))
    locked.chmod(0)
    # root reads anything: there the file is simply a valid image.
    readable = os.access(locked, os.R_OK)
    cases.append(Case("unreadable permissions", locked, (20, 30) if readable else None,
                      "permission denied"))
    return cases


def missing(root: Path) -> Case:
    """A path that does not exist (kept out of the folder: it cannot be listed)."""
    return Case("missing file", root / "does_not_exist.jpg", None, "no such file")
