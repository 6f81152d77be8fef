"""How an image, a video or the webcam is stylized: one frozen options object.

`StylizeOptions` is built once, from the command line (`config_checks.add_options` makes its
flags), the Python API (`fastnst.stylize(..., strength=0.5)`), the webcam or a video, and is
passed down whole. A new option is two edits: a field here, and where it acts.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastnst.config_checks import Bound, ConfigError, check_options, option
from fastnst.temporal import FLOW_METHODS, FLOW_SIDE, FlowSmoother
from fastnst.upsample import STROKE_RANGE

WEBCAM_SIDE = 640  # pixels: the webcam's frames are shrunk to this long side unless max_size


@dataclass(frozen=True)
class StylizeOptions:
    """Size, stroke, tiling, strength, colour and video smoothing of a stylization (checked
    when made: ConfigError names the option and its range)."""

    max_size: int | None = option(None, "shrink inputs to this long side first (pixels; the"
                                  f" webcam's default: {WEBCAM_SIDE})",
                                  Bound(16, 65536, integer=True, nullable=True))
    stroke: float = option(1.0, f"stroke size relative to the picture, {STROKE_RANGE[0]:g}..."
                           f"{STROKE_RANGE[1]:g} (1: the painting's; 2: twice as big; 0: the"
                           " network's own size, finer on big photos)",
                           Bound(*STROKE_RANGE, also=(0,)))
    strength: float = option(1.0, "0..1: blend of the result over the photo", Bound(0, 1))
    preserve_color: bool = option(False, "keep the photo's colours, take luminance from the"
                                  " result")
    tile: int = option(1024, "stylize larger images in cross-faded tiles of this many pixels a"
                       " side, so memory stays bounded (0: never)", Bound(0, None, integer=True))
    overlap: int = option(128, "pixels shared by neighbouring tiles (at most half of tile)",
                          Bound(0, None, integer=True))
    smooth: float = option(0.0, "video and webcam: 0..1, steady the strokes between frames"
                           " along the optical flow (0: off; 0.8 is strong; docs/video.md)",
                           Bound(0, 1, below_high=True))
    flow_size: int = option(FLOW_SIDE, "long side (pixels) of the flow smooth computes: smaller"
                            " is cheaper", Bound(16, 4096, integer=True))
    flow_method: str = option(FLOW_METHODS[0], "smooth's optical flow: dis (real time) or"
                              " farneback (steadier, 1.5x slower)", choices=FLOW_METHODS)

    def __post_init__(self) -> None:
        check_options(self)
        if self.tile and self.overlap * 2 > self.tile:
            raise ConfigError(f"overlap={self.overlap}: must be at most half of"
                              f" tile={self.tile}")

    def smoother(self) -> FlowSmoother | None:
        """The flicker smoother `smooth`, `flow_size` and `flow_method` ask for (None: off); a
        new one each call, as it keeps the previous frame."""
        if not self.smooth:
            return None
        return FlowSmoother(self.smooth, self.flow_size, self.flow_method)


DEFAULTS = StylizeOptions()
