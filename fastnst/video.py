"""Video files: read frames, stylize them with motion-aware smoothing against flicker
(fastnst.temporal), and write an MP4 atomically. fastnst-infer uses it for video inputs."""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from fastnst.console import shown
from fastnst.files import atomic_path, not_regular
from fastnst.images import MAX_PIXELS, ImageError, shrink_frame

if TYPE_CHECKING:
    from fastnst.stylize_options import StylizeOptions
    from fastnst.stylizer import Backend

T = TypeVar("T")
U = TypeVar("U")

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
VIDEO_OUTPUT = ".mp4"  # videos are written as MPEG-4 (OpenCV's mp4v)
FRAME_WORKERS = 2  # frames stylized at once on ONNX Runtime (docs/benchmarks.md)


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


_END = object()  # the end of a queue of frames


class _Queue:
    """A bounded queue between two threads that either side can abandon (`stop`): a put or a
    get then gives up instead of waiting for ever."""

    def __init__(self, depth: int) -> None:
        self.items: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> object:
        while not self.stop.is_set():
            try:
                return self.items.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END


def read_ahead(items: Iterator[T], depth: int = 4) -> Generator[T, None, None]:
    """`items`, made on a thread up to `depth` ahead of their use, so that decoding a video
    (OpenCV lets go of the GIL) overlaps stylizing it. An error of `items` is raised where the
    item would have been; closing the generator stops the thread."""
    channel = _Queue(depth)

    def make() -> None:
        try:
            for item in items:
                if not channel.put(item):
                    return
            channel.put(_END)
        except BaseException as e:  # handed to the consumer
            channel.put(_Failed(e))

    thread = threading.Thread(target=make, daemon=True, name="read-ahead")
    thread.start()
    try:
        while (item := channel.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        channel.stop.set()
        thread.join()


@dataclass
class _Failed:
    error: BaseException


def mapped_ahead(function: Callable[[T], U], items: Iterable[T], workers: int = 2
                 ) -> Generator[tuple[T, U], None, None]:
    """`(item, function(item))` for each of `items`, in their order, with up to `workers` calls
    running at once on threads: OpenCV, numpy's large operations and ONNX Runtime let go of the
    GIL, so one frame's enlargement overlaps the next frame's network. An error of `function`
    is raised where its result would have been; closing the generator cancels the calls not
    started and waits for those running."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[tuple[T, Future[U]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="frames") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) > workers:
                    first, result = pending.popleft()
                    yield first, result.result()
            while pending:
                first, result = pending.popleft()
                yield first, result.result()
        finally:
            for _, result in pending:
                result.cancel()


class WriteBehind:
    """`write(item)` for each item `put`, on a thread up to `depth` behind, so that encoding a
    video overlaps stylizing it. An error of `write` is raised by the next put, or by close."""

    def __init__(self, write: Callable[[Any], object], depth: int = 4) -> None:
        self.channel = _Queue(depth)
        self.error: BaseException | None = None

        def drain() -> None:
            while (item := self.channel.get()) is not _END:
                try:
                    write(item)
                except BaseException as e:
                    self.error = e
                    self.channel.stop.set()
                    return

        self.thread = threading.Thread(target=drain, daemon=True, name="write-behind")
        self.thread.start()

    def put(self, item: object) -> None:
        if self.error is None and self.channel.put(item):
            return
        raise self.error or RuntimeError("the writer stopped")

    def close(self, raising: bool = True) -> None:
        """Wait until everything put is written (raising: its error, if any); stop the
        thread. With `raising=False`, for clean-up after another error: stop at once."""
        if not raising:
            self.channel.stop.set()
        elif self.thread.is_alive():
            self.channel.put(_END)
        self.thread.join()
        if raising and self.error is not None:
            raise self.error


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

    from fastnst.stylizer import OnnxBackend, stylize_frame

    onnx = isinstance(backend, OnnxBackend)
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
            writer, behind = None, None
            frames = read_ahead(_frames(capture))  # decoding and encoding overlap stylizing

            def checked(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
                for frame in frames:
                    _check_frame_size(source, frame.shape[1], frame.shape[0])
                    yield shrink_frame(frame, options.max_size)

            # Two frames at once on ONNX Runtime's frame path (numpy and OpenCV between the
            # network's runs); PyTorch's own operations already take every core.
            stylized = mapped_ahead(lambda frame: stylize_frame(backend, frame, options),
                                    checked(frames), FRAME_WORKERS if onnx else 1)
            try:
                for frame, out in tqdm(stylized, total=total, unit="frame",
                                       desc=shown(source.name), disable=not progress,
                                       leave=False):
                    if smoother is not None:
                        out = smoother(frame, out)
                    if writer is None:
                        h, w = out.shape[:2]
                        writer = cv2.VideoWriter(local_video(tmp), cv2.CAP_FFMPEG,
                                                 cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        if not writer.isOpened():
                            raise ImageError(output, "cannot write an MP4 video here")
                        behind = WriteBehind(lambda rgb, writer=writer: writer.write(
                            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)))
                    elif out.shape[:2] != (h, w):  # a stream whose frames change size
                        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
                    behind.put(out)
                    count += 1
                if behind is not None:
                    behind.close()  # every frame written, or its error raised
            finally:
                stylized.close()
                frames.close()
                if behind is not None:
                    behind.close(raising=False)
                if writer is not None:
                    writer.release()
            if count == 0:
                raise ImageError(source, "no frames could be decoded")
        return count
    finally:
        capture.release()
