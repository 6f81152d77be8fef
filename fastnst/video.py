"""Video files: read frames, stylize them with motion-aware smoothing against flicker, and
write an MP4 atomically. fastnst-infer uses it for video inputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from fastnst.console import shown
from fastnst.files import atomic_path, not_regular
from fastnst.images import ImageError, from_bgr, to_bgr

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
VIDEO_OUTPUT = ".mp4"  # videos are written as MPEG-4 (OpenCV's mp4v)


def is_video(path: Path) -> bool:
    """True for a file name with a video suffix (VIDEO_SUFFIXES)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def local_video(path: Path) -> str:
    """The name to give OpenCV's FFmpeg for the local file `path`: FFmpeg reads names as URLs
    (`concat:a|b`, `subfile,,start,0,end,0,,:x`, `http://...`), so `file:` and the absolute
    path make it this file and nothing else."""
    return "file:" + os.path.abspath(path)


def _frames(capture) -> Iterator[torch.Tensor]:
    """Frames of an OpenCV capture as `(1, 3, H, W)` RGB in [0, 1]."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield from_bgr(frame)


class FlickerFilter:
    """Motion-aware temporal smoothing of stylized frames.

    Where the photo did not change since the last frame, the result is blended with the last
    result (weight `strength`, 0..1); where it changed, the weight falls off, so moving things do
    not ghost. Stylization networks flicker because small input changes move their strokes.
    """

    def __init__(self, strength: float, motion_scale: float = 0.04) -> None:
        self.strength = strength
        self.motion_scale = motion_scale  # mean abs change (0..1) at which the weight is 1/e
        self.last_input: torch.Tensor | None = None
        self.last_output: torch.Tensor | None = None

    def __call__(self, frame: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        if self.strength > 0 and self.last_output is not None and self.last_input is not None:
            change = (frame - self.last_input).abs().mean(1, keepdim=True)
            change = torch.nn.functional.avg_pool2d(change, 9, stride=1, padding=4)
            weight = self.strength * torch.exp(-change / self.motion_scale)
            stylized = weight * self.last_output + (1 - weight) * stylized
        self.last_input, self.last_output = frame, stylized
        return stylized


def stylize_video(source: Path, output: Path,
                  stylize_frame: Callable[[torch.Tensor], torch.Tensor], smooth: float = 0.0,
                  replace: bool = False, progress: bool = True) -> int:
    """Stylize the video `source` frame by frame (`stylize_frame`: `(1, 3, H, W)` in [0, 1] ->
    the same) into an MP4 `output` of the same frame rate, smoothed by a FlickerFilter of
    strength `smooth` (0..1, 0: off). The output is written atomically; an existing one is
    replaced only if `replace` (else FileExistsError).

    Returns the number of frames. Raises ImageError for an unreadable video."""
    import cv2
    from tqdm import tqdm

    if kind := not_regular(source):
        raise ImageError(source, f"not a regular file ({kind})")
    if not source.is_file():
        raise ImageError(source, "no such file")
    capture = cv2.VideoCapture(local_video(source), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise ImageError(source, "not a video, or a format OpenCV cannot read")
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        smoother = FlickerFilter(smooth)
        count = 0
        with atomic_path(output, replace=replace) as tmp:
            writer = None
            try:
                for frame in tqdm(_frames(capture), total=total, unit="frame",
                                  desc=shown(source.name), disable=not progress, leave=False):
                    out = smoother(frame, stylize_frame(frame))
                    if writer is None:
                        h, w = out.shape[-2:]
                        writer = cv2.VideoWriter(local_video(tmp), cv2.CAP_FFMPEG,
                                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        if not writer.isOpened():
                            raise ImageError(output, "cannot write an MP4 video here")
                    writer.write(to_bgr(out))
                    count += 1
            finally:
                if writer is not None:
                    writer.release()
            if count == 0:
                raise ImageError(source, "no frames could be decoded")
        return count
    finally:
        capture.release()
