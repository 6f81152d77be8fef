"""Flicker, measured: the temporal warping error of stylized clips whose true motion is known.

    python scripts/bench_video.py [--model starry_night-fast] [--frames 30] [--smooth 0.8]
                                  [--strip docs/video_strip.jpg]

Clips made from evaluation photos at 640x480: a pan (3 px a frame), a zoom (1% a frame), and
independent motion (a patch of another photo sliding 4 px a frame over a still background).
Each frame is stylized by the model (ONNX Runtime, the webcam's frame path) and then:

- none: as it is;
- simple: fastnst's earlier `--smooth` (temporal.FlickerFilter, blending in place);
- flow: temporal.FlowSmoother (`--smooth`: DIS flow at 320 px), flow 160 (`--flow-size 160`),
  and flow (Farneback): the same with OpenCV's Farneback flow instead of DIS.

Warping error (Lai et al. 2018): the mean squared difference between result t+1 and result t
warped by the true flow, over the pixels visible in both frames, RGB in [0, 1], x 1000. Distance
from per-frame: the mean absolute difference (0..255) between the smoothed and the unsmoothed
result, which is where ghosting would show. Frames/s: stylizing and smoothing one 640x480 frame.
`--strip` writes frames of the independent-motion clip: the input, none, simple and flow.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from common import EVAL_DIR, caption, machine, use_shared_data

from fastnst.images import from_rgb_array, grid, write_image
from fastnst.styles import load_style
from fastnst.stylizer import stylize_frame
from fastnst.temporal import FlickerFilter, FlowSmoother, warp

H, W = 480, 640


def photo(name: str, width: int) -> np.ndarray:
    """An evaluation photo as BGR uint8, scaled to `width` pixels wide (and at least H high)."""
    image = cv2.imread(str(EVAL_DIR / name))
    scale = max(width / image.shape[1], (H + 40) / image.shape[0])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def pan(frames: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Frames of a 3 px/frame pan, the true flow from each frame to the one before, and the
    mask of pixels visible in both."""
    scene = photo("chicago.jpg", W + 3 * frames + 8)
    clip = [np.ascontiguousarray(scene[:H, 3 * t:3 * t + W]) for t in range(frames)]
    flow = np.zeros((H, W, 2), np.float32)
    flow[..., 0] = 3.0
    mask = np.ones((H, W), bool)
    mask[:, -3:] = False
    return clip, flow, mask


def zoom(frames: int, rate: float = 1.01) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A zoom into the centre, `rate` a frame."""
    scene = photo("golden_gate.jpg", W)[:H, :W]
    c = np.array([(W - 1) / 2, (H - 1) / 2], np.float32)
    clip = []
    for t in range(frames):
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), 0, rate ** t)
        clip.append(cv2.warpAffine(scene, m, (W, H), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT))
    grid_xy = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1).astype(np.float32)
    flow = (grid_xy - c) * (1 / rate - 1)
    return clip, flow, np.ones((H, W), bool)


def sliding(frames: int, step: int = 3) -> tuple[list[np.ndarray], list[np.ndarray],
                                                 list[np.ndarray]]:
    """A 200x150 patch of one photo sliding right (3 px a frame: not a multiple of the
    networks' stride of 4, which would hide flicker) over another, still, photo: per frame pair
    the true flow and the visible mask (the background the patch uncovers is not)."""
    back = photo("kodim01.jpg", W)[:H, :W]
    patch = cv2.resize(photo("kodim23.jpg", W)[100:400, 150:550], (200, 150))
    clip, flows, masks = [], [], []
    y = 170
    for t in range(frames):
        x = 40 + step * t
        frame = back.copy()
        frame[y:y + 150, x:x + 200] = patch
        clip.append(frame)
        flow = np.zeros((H, W, 2), np.float32)
        flow[y:y + 150, x:x + 200, 0] = -step
        mask = np.ones((H, W), bool)
        mask[y:y + 150, x - step:x] = False  # uncovered by the move: not in the last frame
        flows.append(flow)
        masks.append(mask)
    return clip, flows, masks


def warping_error(outs: list[np.ndarray], flows, masks) -> float:
    """Mean over frame pairs of the masked MSE of out[t+1] against out[t] warped, x 1000."""
    errors = []
    for t in range(1, len(outs)):
        flow = flows if isinstance(flows, np.ndarray) else flows[t]
        mask = masks if isinstance(masks, np.ndarray) else masks[t]
        diff = (outs[t].astype(np.float32) - warp(outs[t - 1], flow)) / 255.0
        errors.append(float((diff ** 2).mean(-1)[mask].mean()))
    return 1000 * float(np.mean(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry_night-fast")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--smooth", type=float, default=0.8)
    parser.add_argument("--strip", type=Path, help="write the frame strip here")
    args = parser.parse_args()
    use_shared_data()
    torch.set_num_threads(1)  # the loop's own work; ONNX Runtime has its threads
    backend = load_style(args.model, "onnx")
    methods: dict[str, Callable[[], object]] = {
        "none": lambda: None, "simple": lambda: FlickerFilter(args.smooth),
        "flow": lambda: FlowSmoother(args.smooth), "flow 160": lambda: FlowSmoother(
            args.smooth, 160), "flow (Farneback)": lambda: FlowSmoother(
            args.smooth, method="farneback")}
    clips = {"pan": pan(args.frames), "zoom": zoom(args.frames),
             "independent motion": sliding(args.frames)}
    print(machine())
    print(f"\n{args.model} (ONNX Runtime), {W}x{H}, {args.frames} frames a clip, strength"
          f" {args.smooth}\n")
    print("| clip | method | warping error x 1000 | distance from per-frame (0..255) |"
          " frames / s |")
    print("|---|---|---|---|---|")
    strips: dict[str, list[np.ndarray]] = {}
    for clip_name, (clip, flows, masks) in clips.items():
        plain = [stylize_frame(backend, frame) for frame in clip]
        for name, make in methods.items():
            smoother = make()
            start = time.perf_counter()
            outs = []
            for frame in clip:
                stylized = stylize_frame(backend, frame)
                outs.append(smoother(frame, stylized) if smoother else stylized)
            fps = len(clip) / (time.perf_counter() - start)
            distance = float(np.mean([np.abs(o.astype(np.float32) - p).mean()
                                      for o, p in zip(outs, plain, strict=True)]))
            print(f"| {clip_name} | {name} | {warping_error(outs, flows, masks):.2f} |"
                  f" {distance:.2f} | {fps:.1f} |", flush=True)
            if clip_name == "independent motion":
                strips[name] = outs
        if clip_name == "independent motion":
            strips["input"] = [np.ascontiguousarray(f[..., ::-1]) for f in clip]
    if args.strip:
        picks = [t for t in (6, 12, 18, 24) if t < args.frames]
        rows = [[caption(name, 100)] + [from_rgb_array(
            cv2.resize(strips[name][t], (240, 180), interpolation=cv2.INTER_AREA))
            for t in picks] for name in ("input", "none", "simple", "flow")]
        write_image(grid(rows), args.strip, quality=80)
        print(f"\nwrote {args.strip}")


if __name__ == "__main__":
    main()
