"""Live webcam stylization in a window: `fastnst-infer --webcam 0 --style a --style b`.

Keys: n / space / Right: next style; p / Left: previous style; q / Escape: quit. The frame rate
and the style name are drawn on the picture. The window is Tk (the Python standard library), as
pip's OpenCV wheels for servers have no GUI; the camera is read with OpenCV. Frames become Tk
images in fastnst.images (`tk_photo`), the one module that touches Pillow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from fastnst.errors import FastnstError
from fastnst.images import from_bgr, resize_long_side, tk_photo, to_bgr
from fastnst.stylizer import Backend

NEXT_KEYS = frozenset({"n", "space", "Right"})
PREVIOUS_KEYS = frozenset({"p", "Left"})
QUIT_KEYS = frozenset({"q", "Escape"})


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

    def show(self, rgb: np.ndarray, title: str) -> None:
        self.photo = tk_photo(rgb)  # kept: Tk does not hold it
        self.label.configure(image=self.photo)
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


def run_webcam(capture: Capture, window: Window, backends: Sequence[Backend],
               stylize: Callable[[Backend, torch.Tensor], torch.Tensor],
               max_size: int | None = None, max_frames: int | None = None) -> int:
    """Show stylized camera frames until a quit key, the camera ends, or `max_frames`.

    Returns the number of frames shown."""
    if not backends:
        raise ValueError("no style to show")
    current, shown, fps, last = 0, 0, 0.0, time.perf_counter()
    try:
        while max_frames is None or shown < max_frames:
            for key in window.pressed_keys():
                if key in QUIT_KEYS:
                    return shown
                if key in NEXT_KEYS:
                    current = (current + 1) % len(backends)
                elif key in PREVIOUS_KEYS:
                    current = (current - 1) % len(backends)
            ok, frame = capture.read()
            if not ok:
                return shown
            image = from_bgr(frame)
            if max_size and max(image.shape[-2:]) > max_size:
                image = resize_long_side(image, max_size)
            rgb = to_bgr(stylize(backends[current], image))[..., ::-1]
            now = time.perf_counter()
            fps = 0.9 * fps + 0.1 / max(now - last, 1e-6) if shown else 1 / max(now - last, 1e-6)
            last = now
            style = backends[current].style
            window.show(_overlay(rgb, f"{style}  {fps:.1f} fps   n: next  p: previous  q: quit"),
                        f"fastnst - {style}")
            shown += 1
        return shown
    finally:
        capture.release()
        window.close()
