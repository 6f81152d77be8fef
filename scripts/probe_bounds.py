"""The memory and time bounds of issue 30's resource bombs, measured: each hostile input is made
in a scratch folder and given to a fresh process of the real command; the table gives what the
command said, its exit status, its seconds and its peak resident memory.

    python scripts/probe_bounds.py [--work /tmp/probe_bounds]

A plain run on a small photo comes first, for the baseline of a process that imports torch.
Needs a few GB of free disk for the sparse and deflated files (sparse files take no space).
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from common import machine
from PIL import Image

GB = 1 << 30


# Run in the child: its own peak RSS (VmHWM of its address space, read at exit; getrusage would
# count the parent's size at the fork before the exec), printed last on stderr.
PEAK = ("import atexit, os, runpy, sys\n"
        "def peak():\n"
        "    kb = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    sys.stderr.write(f'\\nPEAK_KB {kb[0]}\\n'); sys.stderr.flush()\n"
        "atexit.register(peak)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def measured(args: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """Run `python -m module ...` (`args` without the interpreter); return (exit status,
    seconds, peak RSS in MB, the last line of stderr before the peak)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=cwd, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    peaks = [float(line.split()[1]) / 1024 for line in lines if line.startswith("PEAK_KB")]
    said = [line for line in lines if not line.startswith("PEAK_KB")]
    return proc.returncode, seconds, peaks[-1] if peaks else float("nan"), \
        (said[-1] if said else "")


def jpeg_declaring(path: Path, width: int, height: int) -> None:
    """A 16x16 JPEG whose frame header says width x height."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8)).save(
        buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def folding_graph(path: Path, side: int) -> None:
    """24 convolutions of a constant (1, 3, side, side): what ONNX Runtime folds at load."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fastnst.model_files import MODEL_FORMAT

    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c0"])]
    nodes += [helper.make_node("Conv", [f"c{i}", "w"], [f"c{i + 1}"], pads=[4] * 4)
              for i in range(24)]
    nodes.append(helper.make_node("Add", ["image", "c24"], ["stylized"]))
    dims = ["N", 3, "H", "W"]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, dims)],
        initializer=[numpy_helper.from_array(np.array([1, 3, side, side], np.int64), "shape"),
                     numpy_helper.from_array(np.full((3, 3, 9, 9), 1 / 243, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="format", value=MODEL_FORMAT)
    onnx.save(model, str(path))


def deflated_checkpoint(path: Path, gib: int) -> None:
    """A Lightning-like checkpoint whose archive holds a `gib` GiB tensor of zeros, deflated."""
    import torch

    plain = path.with_suffix(".plain")
    torch.save({"global_step": 1, "state_dict": {}, "fastnst": {"x": torch.zeros(gib * GB // 4)}},
               plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for entry in src.infolist():
            with src.open(entry) as r, dst.open(entry.filename, "w", force_zip64=True) as w:
                shutil.copyfileobj(r, w, 1 << 24)
    plain.unlink()


def sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def web_flood(work: Path, connections: int) -> tuple[int, float, float, str]:
    """fastnst-web with `connections` idle connections held open; then one ordinary request:
    its status and how long it waited."""
    import urllib.request

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    server = subprocess.Popen([sys.executable, "-m", "fastnst.web", "--port", str(number),
                               "--style", "mosaic-fast"], cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        server.stdout.readline()  # "open http://..." once it listens
        idle = []
        for _ in range(connections):
            with __import__("contextlib").suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", number), timeout=5))
        start = time.perf_counter()
        status = 0
        while time.perf_counter() - start < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{number}/", timeout=5) as r:
                    status = r.status
                break
            except OSError:
                time.sleep(0.2)
        seconds = time.perf_counter() - start
        for s in idle:
            s.close()
    finally:
        server.terminate()
        server.wait(10)
    return (0 if status == 200 else 1), seconds, float("nan"), f"HTTP {status} after the flood"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/probe_bounds"))
    parser.add_argument("--make-checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_checkpoint:
        deflated_checkpoint(args.make_checkpoint, 1)
        return
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    infer = ["fastnst.infer", "-q"]
    photo = work / "photo.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (240, 320, 3), np.uint8)).save(photo)
    jpeg_declaring(work / "bomb.jpg", 12_000, 12_000)
    folding_graph(work / "folding.onnx", 256)
    folding_graph(work / "filling.onnx", 1024)
    subprocess.run([sys.executable, __file__, "--make-checkpoint", str(work / "deflated.ckpt")],
                   check=True)  # in a child: a 1 GiB tensor must not inflate our own size
    sparse(work / "big.onnx", 8 * GB)
    sparse(work / "big.safetensors", 8 * GB)
    resume = ["fastnst.train", "resume=deflated.ckpt", "hydra.run.dir=run"]
    cases = [
        ("a plain run (baseline)", [*infer, "photo.jpg", "--style", "mosaic-fast", "-o", "o1"]),
        ("JPEG of 776 bytes declaring 12000x12000", [*infer, "bomb.jpg", "--style",
                                                     "mosaic-fast", "-o", "o2"]),
        ("ONNX: 24 convolutions of a 1x3x256x256 constant", [*infer, "photo.jpg", "--style",
                                                             "folding.onnx", "-o", "o3"]),
        ("ONNX: the same of 1x3x1024x1024", [*infer, "photo.jpg", "--style", "filling.onnx",
                                             "-o", "o4"]),
        ("8 GB sparse .onnx", [*infer, "photo.jpg", "--style", "big.onnx", "-o", "o5"]),
        ("8 GB sparse .safetensors, --backend onnx", [*infer, "photo.jpg", "--style",
                                                      "big.safetensors", "--backend", "onnx",
                                                      "-o", "o6"]),
        (f"checkpoint of {(work / 'deflated.ckpt').stat().st_size / 1e6:.1f} MB deflating to"
         " 1 GiB", resume),
        ("--style mosaic-fast 200 times", [*infer, "photo.jpg", *["--style", "mosaic-fast"] * 200,
                                           "-o", "o7"]),
    ]
    print(f"Machine: {machine()}\n")
    print("| input | exit | seconds | peak RSS (MB) | what the command said |")
    print("|---|---|---|---|---|")
    for name, command in cases:
        code, seconds, rss, said = measured(command, work)
        print(f"| {name} | {code} | {seconds:.1f} | {rss:.0f} | {said[:140]} |", flush=True)
    code, seconds, _, said = web_flood(work, 300)
    print(f"| fastnst-web: 300 idle connections, then a request | {code} | {seconds:.1f} | - |"
          f" {said} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
