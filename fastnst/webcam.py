"""Live webcam stylization in a window: `fastnst-infer --webcam 0 --style a --style b`.

Keys: n / space / Right: next style; p / Left: previous style; b: blend a step (BLEND_STEP)
further towards the next style (styles of one multi-style model; back to the style itself after
the last step); + / -: strokes bigger / smaller (upsample.STROKE_STEP); q / Escape: quit. The
style, the stroke and the frame rate are drawn on the picture. The window is Tk (the Python
standard library), as pip's OpenCV wheels for servers have no GUI; the camera is read with
OpenCV. Frames become Tk images in fastnst.images (`tk_photo`), the one module that touches
Pillow.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from fastnst.errors import FastnstError
from fastnst.images import shrink_frame, tk_photo
from fastnst.stylize_options import DEFAULTS, StylizeOptions
from fastnst.stylizer import Backend, stylize_frame
from fastnst.upsample import stepped_stroke

Frames = Callable[[Backend, np.ndarray, StylizeOptions], np.ndarray]  # stylize_frame's shape

NEXT_KEYS = frozenset({"n", "space", "Right"})
PREVIOUS_KEYS = frozenset({"p", "Left"})
QUIT_KEYS = frozenset({"q", "Escape"})
BLEND_KEYS = frozenset({"b"})
BLEND_STEP = 0.25  # how far one press of b moves the blend towards the next style
STROKE_KEYS = {"plus": 1, "equal": 1, "KP_Add": 1, "minus": -1, "underscore": -1,
               "KP_Subtract": -1}  # Tk key names -> steps of the stroke (upsample.STROKE_STEP)


class CameraError(FastnstError, RuntimeError):
    """No camera, or no window to show it in; the message says which."""


class Capture(Protocol):
    """What the loop needs of a camera (cv2.VideoCapture has it)."""

    def read(self) -> tuple[bool, np.ndarray]: ...  # BGR uint8 (H, W, 3)

    def release(self) -> None: ...


class Window(Protocol):
    def show(self, rgb: np.ndarray, title: str) -> None: ...  # RGB uint8 (H, W, 3)

    def pressed_keys(self) -> list[str]: ...  # keys pressed since the last call (Tk names)

    def close(self) -> None: ...


def open_camera(index: int) -> Capture:
    """The OpenCV camera `index`, or CameraError."""
    import cv2

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise CameraError(f"webcam {index}: cannot open the camera (none connected, no"
                          " permission, or in use by another program)")
    return capture


class TkWindow:
    """A Tk window showing frames; collects key presses."""

    def __init__(self) -> None:
        import tkinter

        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as e:
            raise CameraError(f"cannot open a window ({e}); the live view needs a display"
                              ) from None
        self.root.title("fastnst")
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.pressed: list[str] = []
        self.root.bind("<Key>", lambda event: self.pressed.append(event.keysym))
        self.root.protocol("WM_DELETE_WINDOW", lambda: self.pressed.append("Escape"))
        self.photo = None
        self.title = ""

    def show(self, rgb: np.ndarray, title: str) -> None:
        photo = tk_photo(rgb, self.photo)  # the same image, refilled, while the size holds
        if photo is not self.photo:
            self.photo = photo  # kept: Tk does not hold it
            self.label.configure(image=photo)
        if title != self.title:
            self.title = title
            self.root.title(title)
        self.root.update()

    def pressed_keys(self) -> list[str]:
        self.root.update()
        keys, self.pressed = self.pressed, []
        return keys

    def close(self) -> None:
        self.root.destroy()


def _overlay(rgb: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(rgb)
    for colour, width in (((0, 0, 0), 4), ((255, 255, 255), 1)):  # outlined, readable anywhere
        cv2.putText(out, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, width,
                    cv2.LINE_AA)
    return out


class _Latest:
    """A one-item mailbox between threads: `put` replaces what is there, `take` waits for a new
    item (or `timeout` seconds; None then). Slow readers see the newest item, never a queue.
    After `close`, `take` still gives the last fresh item, then END."""

    def __init__(self) -> None:
        self._item: object = None
        self._fresh = self._closed = False
        self._cond = threading.Condition()

    def put(self, item: object) -> None:
        with self._cond:
            self._item, self._fresh = item, True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> object:
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._closed, timeout):
                return None
            if not self._fresh:
                return END
            self._fresh = False
            return self._item


END = object()  # what `take` gives once a closed mailbox is empty


def _blended(backends: Sequence[Backend], index: int, t: float) -> Backend:
    """Style `index` blended `t` of the way towards the next one, when both are views of one
    multi-style model (stylizer); the style itself otherwise."""
    here, there = backends[index], backends[(index + 1) % len(backends)]
    blend = getattr(here, "blended", None)
    mixed = blend(there, t) if blend is not None and t > 0 else None
    return mixed if mixed is not None else here


def run_webcam(capture: Capture, window: Window, backends: Sequence[Backend],
               options: StylizeOptions = DEFAULTS, max_frames: int | None = None,
               stylize: Frames = stylize_frame) -> int:
    """Show stylized camera frames until a quit key, the camera ends, or `max_frames`.

    Frames are shrunk to `options.max_size` pixels a side, stylized as `options` say
    (`stylize(backend, frame, options)`: a BGR uint8 frame `(H, W, 3)` -> the RGB uint8
    result), and steadied by `options.smooth` (fastnst.temporal; restarted at each change of
    style).

    Three stages overlap: a thread reads the camera (keeping only the newest frame), a thread
    stylizes the newest frame, and this thread (Tk's) shows the newest result and reads keys.
    The frame rate drawn on the picture counts the frames shown in the last second. Returns
    the number of frames shown."""
    if not backends:
        raise ValueError("no style to show")
    max_size, smoother = options.max_size, options.smoother()
    frames, results = _Latest(), _Latest()
    stop = threading.Event()
    index, blend = 0, 0.0  # the style, and how far it is blended towards the next one
    active = [backends[0]]  # what the stylizing thread runs: set here, read there
    current = [options]  # and with which options (the stroke keys change them)
    last: list[Backend | None] = [None]  # what it ran last (the stylizing thread's own)

    def read() -> None:
        while not stop.is_set():
            ok, frame = capture.read()
            if not ok:
                frames.close()  # after the last frame is taken
                return
            frames.put(frame)

    def work() -> None:
        try:
            while not stop.is_set():
                frame = frames.take(timeout=0.1)
                if frame is None:
                    continue
                if frame is END:
                    results.close()
                    return
                backend = active[0]
                small = shrink_frame(frame, max_size)  # type: ignore[arg-type]
                rgb = stylize(backend, small, current[0])
                if smoother is not None:
                    if backend is not last[0]:
                        smoother.reset()  # no blending across a change of style
                    rgb = smoother(small, rgb)
                last[0] = backend
                results.put((rgb, backend.style))
        except BaseException as e:  # shown by the main thread, with its traceback
            results.put(e)

    threads = [threading.Thread(target=read, daemon=True, name="fastnst-camera"),
               threading.Thread(target=work, daemon=True, name="fastnst-stylize")]
    shown_at: collections.deque[float] = collections.deque()
    shown = 0
    try:
        for thread in threads:
            thread.start()
        while max_frames is None or shown < max_frames:
            for key in window.pressed_keys():
                if key in QUIT_KEYS:
                    return shown
                if key in NEXT_KEYS | PREVIOUS_KEYS:
                    index = (index + (1 if key in NEXT_KEYS else -1)) % len(backends)
                    blend = 0.0
                elif key in BLEND_KEYS:
                    blend += BLEND_STEP
                    blend = 0.0 if blend > 1.0 - 1e-6 else blend
                elif key in STROKE_KEYS:
                    stroke = stepped_stroke(current[0].stroke, STROKE_KEYS[key])
                    current[0] = dataclasses.replace(current[0], stroke=stroke)
                active[0] = _blended(backends, index, blend)
            result = results.take(timeout=0.02)  # keys stay answered while a frame is slow
            if result is None:
                continue
            if result is END:
                return shown
            if isinstance(result, BaseException):
                raise result
            rgb, style = result  # type: ignore[misc]
            now = time.perf_counter()
            shown_at.append(now)
            while shown_at[0] < now - 1.0:
                shown_at.popleft()
            keys = "n: next  p: previous  b: blend  +/-: stroke  q: quit" if hasattr(
                active[0], "blended") and getattr(active[0], "styles", None) \
                else "n: next  p: previous  +/-: stroke  q: quit"
            text = f"{style}  stroke {current[0].stroke:g}  {len(shown_at)} fps   {keys}"
            window.show(_overlay(rgb, text),
                        f"fastnst - {style}")
            shown += 1
        return shown
    finally:
        stop.set()
        threads[0].join(timeout=5)  # the camera is released after its last read, not during
        capture.release()  # the stylizing thread ends after its frame; nobody waits for it
        window.close()
