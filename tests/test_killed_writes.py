"""A writer killed (SIGKILL) in the middle of writing leaves the previous file whole, never a
truncated one: images, style models and training checkpoints. A plain, non-atomic write under
the same kill is the control that shows the test can see truncation."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastnst.images import read_image
from fastnst.model_files import load_model

# Writes version 0, says "ready", then rewrites the file with versions 1, 0, 1, ... until killed.
WRITER = r"""
import sys
from pathlib import Path

import torch

kind, dest = sys.argv[1], Path(sys.argv[2])
g = torch.Generator().manual_seed(0)
if kind == "image":
    from fastnst.images import write_image
    versions = [torch.rand(1, 3, 1200, 1200, generator=g) for _ in range(2)]
    def write(v): write_image(v, dest)
elif kind == "model":
    from fastnst.model_files import save_model
    from fastnst.transformer import TransformerNet
    versions = [TransformerNet() for _ in range(2)]
    def write(v): save_model(v, dest, "s")
else:
    versions = [{"w": torch.randn(4_000_000, generator=g)} for _ in range(2)]
    if kind == "checkpoint":
        from fastnst.training.checkpoints import AtomicCheckpointIO
        def write(v): AtomicCheckpointIO().save_checkpoint(v, dest)
    else:  # "plain": torch.save straight onto the file
        def write(v): torch.save(v, dest)
write(versions[0])
print("ready", flush=True)
i = 0
while True:
    i += 1
    write(versions[i % 2])
"""

FILES = {"image": "out.png", "model": "style.safetensors", "checkpoint": "last.ckpt",
         "plain": "plain.ckpt"}


def _whole(kind: str, path: Path) -> bool:
    """Whether `path` holds a complete file of its kind."""
    try:
        if kind == "image":
            return read_image(path).shape == (1, 3, 1200, 1200)
        if kind == "model":
            return load_model(path)[0] is not None
        return torch.load(path, weights_only=True)["w"].numel() == 4_000_000
    except Exception:
        return False


def _kill_while_writing(kind: str, folder: Path, rng: random.Random) -> Path:
    folder.mkdir()
    dest = folder / FILES[kind]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(dest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "ready\n", proc.communicate()[1][-2000:]
    time.sleep(rng.uniform(0.05, 0.8))
    if kind != "plain":  # an atomic writer: kill while its temporary file is there (mid-write)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                p.name.startswith(".") for p in folder.iterdir()):
            time.sleep(0.0005)
    proc.kill()
    proc.wait(timeout=30)
    return dest


@pytest.mark.slow  # a subprocess, or seconds of work
@pytest.mark.parametrize("kind", ["image", "model", "checkpoint"])
def test_a_writer_killed_mid_write_leaves_the_old_file_whole(kind, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    for attempt in range(4):  # until a kill lands inside a write (nearly always the first)
        dest = _kill_while_writing(kind, tmp_path / str(attempt), rng)
        assert _whole(kind, dest), f"seed {seed}: {dest} is not whole"
        # Only hidden temporary files of the interrupted write are left beside it (ours,
        # `.<name>.*.tmp<suffix>`, and for safetensors the library's own `.tmp*`).
        leftovers = [p for p in dest.parent.iterdir() if p != dest]
        assert all(p.name.startswith(".") and "tmp" in p.name for p in leftovers), leftovers
        if leftovers:
            return
    pytest.fail(f"seed {seed}: no kill landed inside a write in 4 attempts")


def test_the_control_a_plain_write_killed_mid_write_is_truncated(tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    for attempt in range(4):
        if not _whole("plain", _kill_while_writing("plain", tmp_path / str(attempt), rng)):
            return  # what the atomic writers above never leave
    pytest.fail(f"seed {seed}: a plain write was never caught half-done in 4 attempts")
