"""Video files: read frames, stylize them with motion-aware smoothing against flicker
(fastnst.temporal), and write an MP4 atomically. fastnst-infer uses it for video inputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fastnst.console import shown
from fastnst.files import atomic_path, not_regular
from fastnst.images import MAX_PIXELS, ImageError, shrink_frame

if TYPE_CHECKING:
    from fastnst.stylize_options import StylizeOptions
    from fastnst.stylizer import Backend

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


# Containers read, identified by their first bytes; FFmpeg is held to their demuxers and to
# local files (a concat script, a playlist or an image sequence named .mp4 reads other files).
_MP4_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
FFMPEG_OPTIONS = ("protocol_whitelist;file|format_whitelist;mov,mp4,m4a,3gp,3g2,mj2,"
                  "matroska,webm,avi")


def container(path: Path) -> str | None:
    """The container of the video file `path` from its bytes: "MP4/MOV" (ISO media boxes),
    "Matroska/WebM" (EBML) or "AVI" (RIFF AVI); None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[4:8] in _MP4_BOXES:
        return "MP4/MOV"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def open_video(source: Path):  # -> cv2.VideoCapture
    """An OpenCV capture of the local video file `source`, refused (ImageError) unless its
    bytes are a container of `container`; FFmpeg may then use only those demuxers and the
    `file` protocol (FFMPEG_OPTIONS)."""
    import cv2

    if kind := not_regular(source):
        raise ImageError(source, f"not a regular file ({kind})")
    if not source.is_file():
        raise ImageError(source, "no such file")
    if container(source) is None:
        raise ImageError(source, "not a video fastnst reads: its bytes are no MP4/MOV,"
                                 " Matroska/WebM or AVI file (playlists, concat scripts and"
                                 " image sequences are refused)")
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = FFMPEG_OPTIONS  # read by each open
    return cv2.VideoCapture(local_video(source), cv2.CAP_FFMPEG)


def _check_frame_size(source: Path, width: int, height: int) -> None:
    """ImageError when a frame of `source` is larger than images may be (images.MAX_PIXELS)."""
    if width * height > MAX_PIXELS:
        raise ImageError(source, f"its frames are {width}x{height} ({width * height / 1e6:.0f}"
                                 f" MP), over the {MAX_PIXELS / 1e6:.0f} MP limit")


def _frames(capture) -> Iterator[np.ndarray]:
    """Frames of an OpenCV capture, `(H, W, 3)` BGR uint8."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def stylize_video(source: Path, output: Path, backend: Backend, options: StylizeOptions,
                  replace: bool = False, progress: bool = True) -> int:
    """Stylize the video `source` frame by frame with `backend` as `options` say
    (stylizer.stylize_frame; `smooth` steadies the frames along the flow, fastnst.temporal)
    into an MP4 `output` of the same frame rate. The output is written atomically; an
    existing one is replaced only if `replace` (else FileExistsError).

    Returns the number of frames. Raises ImageError for an unreadable video."""
    import cv2
    from tqdm import tqdm

    from fastnst.stylizer import stylize_frame

    capture = open_video(source)
    try:
        if not capture.isOpened():
            raise ImageError(source, "not a video, or a format OpenCV cannot read")
        width, height = (int(capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH,
                                                        cv2.CAP_PROP_FRAME_HEIGHT))
        _check_frame_size(source, width, height)  # declared: before a frame is decoded
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        smoother = options.smoother()
        count = 0
        with atomic_path(output, replace=replace) as tmp:
            writer = None
            try:
                for frame in tqdm(_frames(capture), total=total, unit="frame",
                                  desc=shown(source.name), disable=not progress, leave=False):
                    _check_frame_size(source, frame.shape[1], frame.shape[0])
                    frame = shrink_frame(frame, options.max_size)
                    out = stylize_frame(backend, frame, options)
                    if smoother is not None:
                        out = smoother(frame, out)
                    if writer is None:
                        h, w = out.shape[:2]
                        writer = cv2.VideoWriter(local_video(tmp), cv2.CAP_FFMPEG,
                                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        if not writer.isOpened():
                            raise ImageError(output, "cannot write an MP4 video here")
                    elif out.shape[:2] != (h, w):  # a stream whose frames change size
                        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
                    writer.write(np.ascontiguousarray(out[..., ::-1]))
                    count += 1
            finally:
                if writer is not None:
                    writer.release()
            if count == 0:
                raise ImageError(source, "no frames could be decoded")
        return count
    finally:
        capture.release()
