"""Image files <-> tensors: every image file fastnst reads or writes goes through here, and it is
the one module that uses Pillow (also for the webcam window's Tk image, `tk_photo`).

Convention everywhere in fastnst: an image tensor is `(N, 3, H, W)`, RGB, float32 in [0, 1].
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms, ImageOps

from fastnst.console import shown
from fastnst.errors import FastnstError
from fastnst.files import atomic_path, check_writable, not_regular

# Above this many pixels a file is treated as a decompression bomb (about 12,000 x 12,000).
MAX_PIXELS = 150_000_000
# A JPEG of a single flat colour needs about 64 pixels a byte (each 8x8 block costs bits); one
# that declares far more than its bytes can hold is truncated, and decoding it is a bomb.
MAX_JPEG_PIXELS_PER_BYTE = 2000

# Output formats by file suffix.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}

# Suffixes treated as images when scanning folders.
IMAGE_SUFFIXES = frozenset({*WRITE_FORMATS, ".gif"})

# The only formats Pillow may decode, whatever a file's name says: plain raster formats. Others
# run external programs (EPS: Ghostscript) or are rarely-used parsers, a risk with no use here.
# (The JPEG opener also reads the multi-picture JPEGs of phone cameras, format "MPO".)
READ_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

_SRGB = ImageCms.createProfile("sRGB")
_HIGH_BIT_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0,
                   "I": 65535.0, "F": 1.0}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageError(FastnstError, ValueError):
    """An image file that cannot be read or written; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(shown(f"{os.fsdecode(path)}: {problem}"))  # one line, whatever the name


def read_image(path: str | os.PathLike[str], max_size: int | None = None,
               max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Read an image file into a `(1, 3, H, W)` RGB float tensor in [0, 1].

    Handles JPEG (also CMYK), PNG (8/16-bit, palette, grayscale, alpha), WebP, TIFF, BMP and the
    first frame of a GIF. EXIF orientation is applied, embedded ICC profiles are converted to
    sRGB and transparency is composited over white. With `max_size` (pixels), the image is
    shrunk so that its long side is at most that; it is never enlarged.
    Raises `ImageError` for anything that is not a readable image of at most `max_pixels`.
    """
    img = _open(Path(path), max_size, max_pixels)
    x = _to_tensor(img)
    if max_size is not None and max(x.shape[-2:]) > max_size:
        x = resize_long_side(x, max_size)
    return x


def _open(path: Path, max_size: int | None, max_pixels: int) -> Image.Image:
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    # Pillow warns about oddities it works around (corrupt EXIF, bomb-sized images): a file
    # here is either read or refused with an ImageError, so its warnings are only noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = _decode(path, max_size, max_pixels)
        with contextlib.suppress(Exception):  # a broken EXIF block should not cost the picture
            img = ImageOps.exif_transpose(img)
    return img


def _decode(path: Path, max_size: int | None, max_pixels: int) -> Image.Image:
    try:
        if kind := not_regular(path):
            raise ImageError(path, f"not a regular file ({kind})")
        if (size := path.stat().st_size) == 0:
            raise ImageError(path, "empty file (0 bytes)")
        img = Image.open(path, formats=READ_FORMATS)
        width, height = img.size
        if width * height > max_pixels:
            raise ImageError(path, f"image is {width}x{height} ({width * height / 1e6:.0f} MP),"
                                   f" over the {max_pixels / 1e6:.0f} MP limit")
        if width == 0 or height == 0:
            raise ImageError(path, f"image has no pixels ({width}x{height})")
        if img.format in ("JPEG", "MPO") and width * height > MAX_JPEG_PIXELS_PER_BYTE * size:
            # Decoding would fill the missing picture with grey, for minutes at this size.
            raise ImageError(path, f"declares {width}x{height} in {size} bytes, which cannot hold"
                                   " it: a truncated JPEG")
        if img.format == "PNG":
            with Image.open(path, formats=READ_FORMATS) as check:
                check.verify()  # chunk checksums: Pillow's load() does not look at them
        if max_size is not None and img.format == "JPEG":
            # Decode at a reduced scale (1/2, 1/4, 1/8): fast and light on memory.
            img.draft(None, (max_size, max_size))
        img.load()
        return img
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image, or a format that is not read (only"
                               f" {', '.join(READ_FORMATS)})") from None
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"decompression bomb: {e}") from None
    except OSError as e:
        if e.strerror:  # an operating-system error such as a symlink loop
            raise ImageError(path, e.strerror.lower()) from None
        raise ImageError(path, f"corrupt or truncated image ({e})") from None
    except Exception as e:  # Pillow raises many types on hostile headers
        raise ImageError(path, f"corrupt image ({type(e).__name__}: {e})") from None


def _to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert a loaded Pillow image of any mode to `(1, 3, H, W)` RGB float in [0, 1]."""
    if img.mode in _HIGH_BIT_MODES:
        gray = np.asarray(img, dtype=np.float32) / _HIGH_BIT_MODES[img.mode]
        arr = np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    else:
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode in _ALPHA_MODES:
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        img = _to_srgb(img)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)


def _to_srgb(img: Image.Image) -> Image.Image:
    """8-bit RGB in sRGB: apply an embedded ICC profile when there is one (CMYK, Adobe RGB...)."""
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "CMYK"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, _SRGB, outputMode="RGB")
        except Exception:  # a broken profile: fall back to the plain conversion
            pass
    return img.convert("RGB")


def long_side_hw(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) of an `h` x `w` picture scaled to a long side of `size` pixels."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_long_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize `(N, 3, H, W)` so that its long side is `size` pixels, keeping the aspect ratio."""
    return resize(image, long_side_hw(*image.shape[-2:], size))


def shrink_frame(frame: np.ndarray, max_size: int | None) -> np.ndarray:
    """An OpenCV frame `(H, W, 3)` uint8 with its long side shrunk to `max_size` pixels (area
    interpolation); unchanged when it is not longer, or `max_size` is None."""
    import cv2

    h, w = frame.shape[:2]
    if not max_size or max(h, w) <= max_size:
        return frame
    nh, nw = long_side_hw(h, w, max_size)
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)


def resize(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize `(N, 3, H, W)` to `hw = (height, width)` with antialiased bicubic filtering."""
    if tuple(image.shape[-2:]) == tuple(hw):
        return image
    out = F.interpolate(image, size=hw, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)


def check_image_output(path: str | os.PathLike[str]) -> None:
    """Raise ImageError or WriteError now, before long work, if `write_image` could not write
    `path`: a suffix it has no format for, a folder, or no permission."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ImageError(path, f"unknown output format {suffix!r}; use one of"
                               f" {', '.join(sorted(WRITE_FORMATS))}")
    check_writable(path)


def write_image(image: torch.Tensor, path: str | os.PathLike[str], quality: int = 95,
                replace: bool = True) -> Path:
    """Write `(1, 3, H, W)` or `(3, H, W)` in [0, 1] atomically; the format follows the suffix.

    `quality` (1..100) applies to JPEG and WebP. Raises `ImageError` for an unknown suffix; with
    `replace=False`, FileExistsError if `path` exists, even if it appeared meanwhile.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(path, f"unknown output format {path.suffix!r};"
                               f" use one of {', '.join(sorted(WRITE_FORMATS))}")
    pil = to_pil(image)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG" and quality >= 90:
        options["subsampling"] = 0  # keep full-resolution colour: stylized edges are colourful
    with atomic_path(path, replace=replace) as tmp:
        pil.save(tmp, format=fmt, **options)
    return path


def from_rgb_array(frame: np.ndarray) -> torch.Tensor:
    """`(H, W, 3)` uint8 RGB -> `(1, 3, H, W)` RGB float in [0, 1]; ValueError for others."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got shape {array.shape},"
                         f" dtype {array.dtype}")
    return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0


def read_any(image: str | os.PathLike[str] | Image.Image | np.ndarray,
             max_size: int | None = None) -> torch.Tensor:
    """A file path (read by `read_image`: formats, EXIF, colour profiles, size limits), a PIL
    image (any mode) or an `(H, W, 3)` uint8 RGB array -> `(1, 3, H, W)` in [0, 1]. `max_size`
    applies to files (decoded smaller); the caller shrinks the others."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_size=max_size)
    if isinstance(image, Image.Image):
        return _to_tensor(image)
    return from_rgb_array(image)


def from_bgr(frame: np.ndarray) -> torch.Tensor:
    """An OpenCV frame, `(H, W, 3)` BGR uint8 -> `(1, 3, H, W)` RGB float in [0, 1]."""
    return from_rgb_array(frame[..., ::-1])


def to_rgb_array(image: torch.Tensor) -> np.ndarray:
    """`(1, 3, H, W)` RGB in [0, 1] -> `(H, W, 3)` RGB uint8."""
    rgb = (image[0].detach().float().permute(1, 2, 0).clamp(0, 1) * 255).round().byte()
    return np.ascontiguousarray(rgb.cpu().numpy())


def to_bgr(image: torch.Tensor) -> np.ndarray:
    """`(1, 3, H, W)` RGB in [0, 1] -> an OpenCV frame, `(H, W, 3)` BGR uint8."""
    return np.ascontiguousarray(to_rgb_array(image)[..., ::-1])


def to_pil(image: torch.Tensor) -> Image.Image:
    """`(1, 3, H, W)` or `(3, H, W)` float in [0, 1] -> 8-bit RGB Pillow image."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image (3, H, W), got shape {tuple(image.shape)}")
    arr = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy())


def tk_photo(rgb: np.ndarray, photo: Any = None) -> Any:
    """An `(H, W, 3)` uint8 RGB array -> a `PIL.ImageTk.PhotoImage` for a tkinter label (the
    webcam window). Needs a Tk root window; the caller keeps a reference (Tk does not). Given
    `photo`, an earlier result of the same size, the pixels are pasted into it instead: 2 ms
    against 24 for a new one at 640x480 (docs/benchmarks.md)."""
    from PIL import ImageTk  # imports tkinter: only where a window is shown

    image = Image.fromarray(rgb)
    if photo is not None and (photo.width(), photo.height()) == image.size:
        photo.paste(image)
        return photo
    return ImageTk.PhotoImage(image)


def grid(rows: list[list[torch.Tensor]], gap: int = 4) -> torch.Tensor:
    """Tile images `(1, 3, h, w)` into one `(1, 3, H, W)` image, row by row on white: each row
    as tall as its tallest image, each column as wide as its widest, every image centred in its
    cell, `gap` pixels between cells."""
    columns = max(len(row) for row in rows)
    heights = [max(int(im.shape[-2]) for im in row) for row in rows]
    widths = [max((int(row[c].shape[-1]) for row in rows if c < len(row)), default=0)
              for c in range(columns)]
    out = torch.ones(1, 3, sum(heights) + gap * (len(rows) - 1),
                     sum(widths) + gap * (columns - 1))
    top = 0
    for r, row in enumerate(rows):
        left = 0
        for c, image in enumerate(row):
            h, w = image.shape[-2:]
            y, x = top + (heights[r] - h) // 2, left + (widths[c] - w) // 2
            out[..., y:y + h, x:x + w] = image.detach().float().cpu()
            left += widths[c] + gap
        top += heights[r] + gap
    return out
