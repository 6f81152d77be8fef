"""Temporal consistency for video and the webcam: stylized frames that do not flicker.

A feed-forward network stylizes each frame on its own, and small changes between frames move its
strokes. Both smoothers here blend the new stylized frame with the previous result where that is
safe, frame by frame, on `(H, W, 3)` uint8 arrays (the input frame BGR, the stylized one RGB):

- FlowSmoother (what `--smooth` uses): the inference-time scheme of Ruder et al. (2016) and
  Huang et al. (2017). The previous result is warped along the optical flow between the input
  frames (OpenCV's DIS flow, computed at a reduced size), and blended in only where the flow
  is reliable: a forward-backward check marks occluded and disoccluded pixels, and so does a
  photometric check (the warped previous input must match the new one); those take the new
  frame. Strokes then move with the scene instead of flickering, and nothing ghosts.
- FlickerFilter (fastnst's earlier `--smooth`): blends with the unwarped previous result where
  the input did not change. It steadies still scenes only.

Measured against each other: scripts/bench_video.py, docs/video.md.
"""

from __future__ import annotations

import numpy as np

FLOW_SIDE = 320  # long side (pixels) at which the flow is computed: its cost and its detail
SAME_GRAY = 10.0  # grey levels (0..255): a warped input pixel further off than this is new
FLOW_METHODS = ("dis", "farneback")  # OpenCV's optical flows; DIS measured better (docs/video.md)


def _gray(bgr: np.ndarray, side: int) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return gray


def _full_size(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """A flow field computed at a smaller size, resized to (h, w) with its vectors scaled."""
    import cv2

    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out


_GRIDS: dict[tuple[int, int], np.ndarray] = {}  # pixel coordinates per (h, w), made once


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at each pixel x + flow(x) (bilinear, edges replicated): with the flow
    from the new frame to the old one, the old image moved onto the new frame."""
    import cv2

    h, w = flow.shape[:2]
    if (h, w) not in _GRIDS:
        _GRIDS[(h, w)] = np.indices((h, w), dtype=np.float32)[::-1].transpose(1, 2, 0).copy()
    return cv2.remap(image, _GRIDS[(h, w)] + flow, None, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the flow can be trusted, `(H, W)` float32 in {0, 1}: the forward-backward check of
    Sundaram et al. (2010), as Ruder et al. use it. `backward`: new frame -> old; `forward`:
    old -> new. A pixel whose way back and forth does not return to it (an occlusion, a
    disocclusion, a flow error) is unreliable, and so are motion boundaries."""
    there = warp(forward, backward)  # the forward flow where each new pixel came from
    loop = backward + there
    size = (backward ** 2).sum(-1) + (there ** 2).sum(-1)
    consistent = (loop ** 2).sum(-1) <= 0.01 * size + 0.5
    dx, dy = np.gradient(backward[..., 0]), np.gradient(backward[..., 1])
    boundary = (dx[0] ** 2 + dx[1] ** 2 + dy[0] ** 2 + dy[1] ** 2) > 0.01 * (
        backward ** 2).sum(-1) + 0.002
    return (consistent & ~boundary).astype(np.float32)


class FlowSmoother:
    """Motion-aware consistency (see the module docstring). `strength` (0..1): the weight of
    the warped previous result where the flow is reliable; `flow_side`: the long side (pixels)
    the flow is computed at (smaller: cheaper, coarser); `method`: dis (DIS, ultrafast preset)
    or farneback. Call `reset` at a cut or a style change."""

    def __init__(self, strength: float, flow_side: int = FLOW_SIDE, method: str = "dis") -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"strength must be in [0, 1), not {strength}")
        if method not in FLOW_METHODS:
            raise ValueError(f"method must be one of {', '.join(FLOW_METHODS)}, not {method!r}")
        self.strength, self.flow_side, self.method = strength, flow_side, method
        self.reset()

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The flow from grey image `a` to `b`: for each pixel of `a`, where it is in `b`."""
        import cv2

        if self.method == "farneback":
            return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        if not hasattr(self, "_dis"):
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        return self._dis.calc(a, b, None)

    def reset(self) -> None:
        self.last_gray: np.ndarray | None = None
        self.last_output: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """The smoothed result for the input `frame` (BGR uint8) and its stylization (RGB
        uint8, the same size)."""
        import cv2

        gray = _gray(frame, self.flow_side)
        out = stylized
        last = self.last_output
        if (self.strength > 0 and last is not None and self.last_gray is not None
                and last.shape == stylized.shape and self.last_gray.shape == gray.shape):
            h, w = stylized.shape[:2]
            backward = self._flow(gray, self.last_gray)  # at the flow's size
            forward = self._flow(self.last_gray, gray)
            # Reliable: the flow's way back and forth agrees, and the input pixel it points at
            # looks the same (what the flow smooths over at a moving edge does not).
            seen = np.abs(warp(self.last_gray, backward).astype(np.float32) - gray)
            mask = reliable(backward, forward) * (cv2.blur(seen, (3, 3)) < SAME_GRAY)
            if mask.shape != (h, w):
                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
            weight = (self.strength * mask)[..., None]
            warped = warp(last, _full_size(backward, h, w)).astype(np.float32)
            out = (weight * warped + (1.0 - weight) * stylized).round().astype(np.uint8)
        self.last_gray, self.last_output = gray, out
        return out


class FlickerFilter:
    """Blending with the unwarped previous result where the input did not change (weight
    `strength`, falling off as exp(-change / motion_scale)); fastnst's first `--smooth`, kept
    to measure the flow method against."""

    def __init__(self, strength: float, motion_scale: float = 0.04) -> None:
        self.strength, self.motion_scale = strength, motion_scale
        self.reset()

    def reset(self) -> None:
        self.last_input: np.ndarray | None = None
        self.last_output: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        import cv2

        out = stylized
        if (self.strength > 0 and self.last_output is not None and self.last_input is not None
                and self.last_input.shape == frame.shape):
            change = np.abs(frame.astype(np.float32) - self.last_input).mean(-1) / 255.0
            change = cv2.blur(change, (9, 9))
            weight = (self.strength * np.exp(-change / self.motion_scale))[..., None]
            out = (weight * self.last_output + (1.0 - weight) * stylized).round().astype(np.uint8)
        self.last_input, self.last_output = frame.astype(np.float32), out
        return out
