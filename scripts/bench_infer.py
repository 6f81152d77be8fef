"""Benchmark inference: milliseconds per frame, PyTorch vs ONNX Runtime, johnson vs johnson_slim.

    python scripts/bench_infer.py [--sizes 640x480 1280x720 1920x1080] [--repeats 5]

Timing does not depend on the weights, so freshly initialised networks are used; each is exported
with fastnst.export (verified against PyTorch at a small size). Prints a Markdown table; CUDA
rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import build_network, machine, model_names
from common import devices as available_devices

from fastnst.export import export_onnx
from fastnst.stylizer import OnnxBackend, TorchBackend


def ms_per_frame(backend, image: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of `backend(image)` over `repeats` runs after one warm-up."""
    backend(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend(image)  # returns a CPU tensor: includes the copies a caller pays for
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080"])
    parser.add_argument("--models", nargs="+", default=model_names(), choices=model_names())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    devices = available_devices()
    print(machine())
    print("\n| device | model | backend | " + " | ".join(f"{w}x{h} ms" for w, h in sizes) + " |")
    print("|---|---|---|" + "---|" * len(sizes))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            net = build_network(name).eval()
            onnx_path = Path(tmp) / f"{name}.onnx"
            export_onnx(net, onnx_path, name, verify_sizes=[(64, 64)])
            for device in devices:
                backends = {"torch fp32": TorchBackend(net, name, device),
                            "onnxruntime fp32": OnnxBackend(onnx_path, device)}
                if device.type == "cuda":
                    backends["torch fp16"] = TorchBackend(copy.deepcopy(net), name, device,
                                                          half=True)
                for label, backend in backends.items():
                    cells = [ms_per_frame(backend, torch.rand(1, 3, h, w), args.repeats)
                             for w, h in sizes]
                    print(f"| {device.type} | {name} | {label} | "
                          + " | ".join(f"{c:.0f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
