"""What tests share besides fixtures: the shared data's paths, small generated images and
models, and helpers for tests that start processes. Import it as `from helpers import ...`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from fastnst import shared_data

REPO = Path(__file__).resolve().parents[1]
VGG19_FILE = Path(os.environ.get("FASTNST_VGG19") or shared_data.VGG19_FILE)
STYLE_DIR = Path(os.environ.get("FASTNST_STYLE_DIR") or shared_data.STYLE_DIR)


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A `(1, 3, h, w)` test picture: smooth colour gradients plus a few blobs, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    channels = []
    for _ in range(3):
        a, b, c = torch.rand(3, generator=g) * 6
        channels.append(0.5 + 0.25 * torch.sin(a * xx + b * yy + c) + 0.2 * torch.cos(b * xx * yy))
    return torch.stack(channels).clamp(0, 1).unsqueeze(0)


def stripes(h: int, w: int) -> torch.Tensor:
    """A `(1, 3, h, w)` diagonal colour-stripe 'painting', a stand-in painting."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    phase = ((xx + yy) // 4) % 3
    colours = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.3, 0.9], [0.95, 0.9, 0.2]])
    return colours[phase].permute(2, 0, 1).unsqueeze(0).float()


def tinted(colour: tuple[float, float, float], size: int = 64) -> torch.Tensor:
    """A painting of strokes in one hue `colour` (RGB 0..1), lighter and darker `(1, 3, size,
    size)`."""
    shade = stripes(size, size).mean(1, keepdim=True)
    return (torch.tensor(colour).view(1, 3, 1, 1) * (0.4 + 0.6 * shade)).clamp(0, 1)


def tiny_model(path, channels: int = 8, blocks: int = 2, seed: int = 0, design: str = "johnson",
               styles: tuple[str, ...] = ()):
    """Write a small TransformerNet with perturbed (trained-looking) weights as a style model
    file named `path` (style name: its stem); with `styles`, a multi-style network of those
    (each style's scales and shifts perturbed more, so that the styles differ). Returns the
    path."""
    from fastnst.model_files import save_model
    from fastnst.transformer import StyleNorm, TransformerConfig, TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet(TransformerConfig(channels=channels, blocks=blocks, design=design,
                                           styles=len(styles)))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in net.modules():
            if isinstance(m, StyleNorm):
                m.weight.add_(torch.randn_like(m.weight) * 0.5)
                m.bias.add_(torch.randn_like(m.bias) * 0.5)
    return save_model(net, path, Path(path).stem, styles=styles)


def ctrl_c_default() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: the child gets Ctrl-C (SIGINT) back, even when
    the tests run where it is ignored (a background job), so that Ctrl-C tests can send it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until `path` exists while `proc` (stderr piped) runs; fail if it ends first."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"ended before {path.name}: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.005)


class FakeCamera:
    """Frames as cv2.VideoCapture.read gives them (BGR uint8), one every `period` seconds like a
    real camera; `frames` of them, then the end."""

    def __init__(self, frames: int, period: float = 0.005) -> None:
        still = (smooth_image(24, 32)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        self.frames = [np.roll(still, i, axis=1)[..., ::-1] for i in range(frames)]
        self.period, self.released = period, False

    def read(self):
        time.sleep(self.period)
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.released = True


class FakeWindow:
    """Records what is shown; presses the scripted keys once, when that many frames are shown."""

    def __init__(self, script: dict[int, list[str]]) -> None:
        self.script, self.shown, self.closed = dict(script), [], False

    def show(self, rgb, title):
        self.shown.append((rgb.shape, title))

    def pressed_keys(self):
        return self.script.pop(len(self.shown), [])

    def close(self):
        self.closed = True
