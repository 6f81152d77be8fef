"""Frames per second on the default path, at the sizes people film and shoot, beside the peer.

    python scripts/bench_frames.py [--models starry_night-fast mosaic starry_night]
                                   [--sizes 640x480 1280x720 1920x1080 4032x3024] [--repeats 10]

Each size is an evaluation photo enlarged to it. fastnst: `stylizer.stylize_frame` with the
default StylizeOptions on ONNX Runtime (what `fastnst-infer clip.mp4 --backend onnx` and the
webcam run per frame: the working size of the stroke, the network, the detail-preserving
enlargement), and on PyTorch. The peer: styletransfer-lite's `stylize_with(frame, painting)` in
its own venv (`--peer-python`), the same frame and painting, its default path. Also the whole
`fastnst-infer` run on 1080p clips of 10 and `--clip-frames` frames (decode, stylize, encode;
the difference gives the frame rate once started). Medians
of `--repeats` runs after a warm-up; milliseconds and frames per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import EVAL_DIR, machine, use_shared_data

from fastnst.model_files import FAST_SUFFIX, read_metadata
from fastnst.paintings import find_painting, style_config
from fastnst.styles import load_style, model_path
from fastnst.stylizer import stylize_frame

ROOT = Path(__file__).resolve().parents[1]
SHORT_CLIP = 10  # frames of the clip that measures start-up
PEER_CODE = """
import json, sys, time, statistics
from PIL import Image
from styletransfer_lite import StyleTransfer
frames, painting, repeats = json.loads(sys.argv[1])
engine = StyleTransfer(device="cpu")
out = {}
for path in frames:
    image = Image.open(path).convert("RGB")
    engine.stylize_with(image, painting)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.stylize_with(image, painting)
        times.append(time.perf_counter() - start)
    out[path] = statistics.median(times)
print(json.dumps(out))
"""


def median_seconds(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["starry_night-fast", "mosaic-fast", "starry_night"])
    parser.add_argument("--sizes", nargs="+",
                        default=["640x480", "1280x720", "1920x1080", "4032x3024"])
    parser.add_argument("--photo", default="golden_gate.jpg")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clip-frames", type=int, default=150)
    parser.add_argument("--peer-python", default=os.environ.get(
        "FASTNST_PEER_PYTHON", str(ROOT.parent / "peer-venv" / "bin" / "python")))
    args = parser.parse_args()
    use_shared_data()
    photo = cv2.imread(str(EVAL_DIR / args.photo))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    print(machine())
    print(f"\n{args.photo} enlarged to each size; default options (stroke 1); median of"
          f" {args.repeats}\n")
    print("| model | size | fastnst onnx ms (fps) | fastnst torch ms | peer ms (fps) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        frames = {}
        for w, h in sizes:
            frames[(w, h)] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(Path(work) / f"{w}x{h}.png"), frames[(w, h)])
        for spec in args.models:
            style = read_metadata(model_path(spec, "--models"))["style"]
            painting = str(find_painting(style_config(style.removesuffix(FAST_SUFFIX)).image))
            peer = {}
            if Path(args.peer_python).is_file():
                jobs = [str(Path(work) / f"{w}x{h}.png") for w, h in sizes]
                done = subprocess.run([args.peer_python, "-c", PEER_CODE,
                                       json.dumps([jobs, painting, args.repeats])],
                                      capture_output=True, text=True, check=True)
                peer = json.loads(done.stdout.strip().splitlines()[-1])
            backends = {kind: load_style(spec, backend=kind) for kind in ("onnx", "torch")}
            for (w, h), frame in frames.items():
                ms = {kind: 1000 * median_seconds(lambda b=b, f=frame: stylize_frame(b, f),
                                                  args.repeats)
                      for kind, b in backends.items()}
                theirs = peer.get(str(Path(work) / f"{w}x{h}.png"))
                peer_text = f"{1000 * theirs:.0f} ({1 / theirs:.1f})" if theirs else "-"
                print(f"| {spec} | {w}x{h} | {ms['onnx']:.0f} ({1000 / ms['onnx']:.1f}) |"
                      f" {ms['torch']:.0f} | {peer_text} |", flush=True)
        base = frames.get((1920, 1080), cv2.resize(photo, (1920, 1080)))
        seconds = {}
        for count in (SHORT_CLIP, args.clip_frames):  # two lengths: start-up and frame rate
            clip = Path(work) / f"clip{count}.mp4"
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30,
                                     (1920, 1080))
            for i in range(count):
                writer.write(np.roll(base, 4 * i, axis=1))
            writer.release()
            start = time.perf_counter()
            subprocess.run(["fastnst-infer", str(clip), "--style", args.models[0], "-o",
                            str(Path(work) / "out.mp4"), "-q", "--overwrite"], check=True)
            seconds[count] = time.perf_counter() - start
        n, total = args.clip_frames, seconds[args.clip_frames]
        rate = (n - SHORT_CLIP) / (total - seconds[SHORT_CLIP])
        print(f"\nfastnst-infer on 1080p clips, {args.models[0]}, its default path: {n} frames"
              f" in {total:.1f} s, {n / total:.1f} frames/s with start-up;"
              f" {SHORT_CLIP} frames in {seconds[SHORT_CLIP]:.1f} s; so {rate:.1f} frames/s"
              " once started (decoding and encoding included)")

if __name__ == "__main__":
    main()
