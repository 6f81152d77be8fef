"""Strokes that follow the picture: paint at a working size set by the stroke, then enlarge
the result to the photo's size with the photo's own fine detail.

The networks learned strokes sized for 256 px crops, so painted at a photo's full size their
strokes shrink with the photo (at 12 MP they are noise, and the result reads as a tinted
photo). Painted at `working_side` pixels instead, a stroke is the same fraction of the picture
at any size. `enlarge` brings the result back up: bicubic, plus all of the photo's luminance
detail finer than the working size (finer than any stroke), amplified up to MAX_GAIN where the
result follows the photo's luminance more steeply than the photo (a guided-filter
coefficient), so edges are sharp where the photo has them. Measured against the other working
sizes: docs/quality.md, "At the size people shoot".

Arrays are `(H, W, 3)` or `(H, W)` float32 in [0, 1] (OpenCV's layout), or uint8 for frames.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

STROKE_SIDE = 256  # pixels: the long side a picture is painted at with stroke=1 (docs/quality.md)
STROKE_RANGE = (0.25, 4.0)  # stroke sizes the control admits (0: paint at the photo's size)
STROKE_STEP = 2 ** 0.5  # one press of the webcam's + or - key
GUIDE_RADIUS = 2  # pixels at working size: the window of the detail-gain estimate
GUIDE_EPS = 1e-4  # luminance variance below which a window counts as flat
MIN_SHORT_SIDE = 32  # pixels: a panorama is painted large enough to have this many across
MIN_GAIN = 1.0  # the least of the photo's finer-than-working-size detail kept (docs/quality.md)
MAX_GAIN = 2.0  # the most the photo's detail is amplified
BORDER = 8  # pixels at working size mirrored around a picture before it is painted
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB weights (Rec. 601, as OpenCV's grey)


def page_settings() -> dict[str, float | list[float]]:
    """The constants above, for the web page's copy of this module (fastnst-web's models.json):
    one source of truth for both."""
    return {"side": STROKE_SIDE, "range": list(STROKE_RANGE), "step": STROKE_STEP,
            "min_short_side": MIN_SHORT_SIDE, "radius": GUIDE_RADIUS, "eps": GUIDE_EPS,
            "min_gain": MIN_GAIN, "max_gain": MAX_GAIN, "border": BORDER, "luma": _LUMA.tolist()}


def working_side(height: int, width: int, stroke: float) -> int | None:
    """The long side (pixels) to paint a `height` x `width` picture at for `stroke` (1: the
    shipped look; 2: strokes twice as big, relative to the picture), or None to paint it at its
    own size: `stroke` 0, or a picture already no larger than that."""
    if not stroke:
        return None
    long, short = max(height, width), max(1, min(height, width))
    side = max(round(STROKE_SIDE / stroke), math.ceil(MIN_SHORT_SIDE * long / short))
    return side if side < long else None


def stepped_stroke(stroke: float, steps: int) -> float:
    """`stroke` made STROKE_STEP times bigger `steps` times (smaller if negative), within
    STROKE_RANGE; 0 (the network's own size) steps to 1. For the webcam's keys."""
    if not stroke:
        return 1.0
    low, high = STROKE_RANGE
    return round(min(high, max(low, stroke * STROKE_STEP ** steps)), 3)


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """`image` with its long side `side` (area averaging: no aliasing)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def padded(image: np.ndarray) -> np.ndarray:
    """`image` mirrored out by BORDER pixels on each side: the networks paint a line of odd
    colours along a picture's edge, which enlarging would make visible; `cropped` undoes it."""
    return cv2.copyMakeBorder(image, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_REFLECT_101)


def cropped(image: np.ndarray) -> np.ndarray:
    """`image` without the BORDER that `padded` added."""
    return np.ascontiguousarray(image[BORDER:-BORDER, BORDER:-BORDER])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` RGB float32 -> `(H, W)` luminance."""
    return cv2.transform(rgb, _LUMA[None, :]).reshape(rgb.shape[:2])


def _box(x: np.ndarray) -> np.ndarray:
    size = 2 * GUIDE_RADIUS + 1
    return cv2.boxFilter(x, -1, (size, size), borderType=cv2.BORDER_REFLECT)


def detail_gain(photo_grey: np.ndarray, result_grey: np.ndarray) -> np.ndarray:
    """Per pixel, how much the result's luminance follows the photo's (the slope of a local
    linear fit, as in He et al.'s guided filter), in [MIN_GAIN, MAX_GAIN]: ~1 where the result
    keeps the photo's edges, more where it sharpens them, and never below MIN_GAIN: detail finer
    than the working size is finer than any stroke, so the painting has no say at that scale
    and all of the photo's is kept (a result as sharp as the peer's at full size). Both
    `(h, w)` at working size."""
    mean_i, mean_p = _box(photo_grey), _box(result_grey)
    var_i = _box(photo_grey * photo_grey) - mean_i * mean_i
    cov = _box(photo_grey * result_grey) - mean_i * mean_p
    gain = _box(cov / (var_i + GUIDE_EPS))
    return np.clip(gain, MIN_GAIN, MAX_GAIN, out=gain)


def _enlarged_planes(result: np.ndarray, photo_grey: np.ndarray, small_grey: np.ndarray
                     ) -> list[np.ndarray]:
    """`enlarge`'s result as three `(H, W)` planes, one per channel of `result` (each a
    contiguous array: adding the detail to a plane is several times faster than to the
    channels of an `(H, W, 3)` array, docs/benchmarks.md)."""
    height, width = photo_grey.shape
    size = (width, height)
    gain = detail_gain(small_grey, luminance(result))
    detail = photo_grey - cv2.resize(small_grey, size, interpolation=cv2.INTER_LINEAR)
    detail *= cv2.resize(gain, size, interpolation=cv2.INTER_LINEAR)
    planes = []
    for channel in cv2.split(result):
        plane = cv2.resize(channel, size, interpolation=cv2.INTER_CUBIC)
        cv2.add(plane, detail, dst=plane)
        planes.append(plane)
    return planes


def enlarge(result: np.ndarray, photo_grey: np.ndarray, small_grey: np.ndarray) -> np.ndarray:
    """The working-size `result` `(h, w, 3)` at the photo's size, with the photo's fine detail:
    bicubic enlargement plus gain x (the photo's luminance `photo_grey` `(H, W)` minus its
    working-size version `small_grey` `(h, w)` enlarged). Float32, not clipped."""
    return cv2.merge(_enlarged_planes(result, photo_grey, small_grey))


def enlarge_frame(result: np.ndarray, photo_grey: np.ndarray, small_grey: np.ndarray
                  ) -> np.ndarray:
    """`enlarge` for a video or camera frame: the same, clipped to [0, 1] and rounded to
    `(H, W, 3)` uint8."""
    out = []
    for plane in _enlarged_planes(result, photo_grey, small_grey):
        np.maximum(plane, 0.0, out=plane)  # convertScaleAbs would mirror what is below 0
        out.append(cv2.convertScaleAbs(plane, alpha=255.0))  # rounds, saturates above 255
    return cv2.merge(out)
