"""Pack what a GPU loan needs beside the repository into one git-ignored folder (`.carry/`).

    python scripts/pack_for_gpu.py [--out .carry] [--limit-mib 64] [--short-side 288]

The device tool copies the working tree plus named ignored folders, 64 MiB in all, to a machine
without internet whose Python has PyTorch and Lightning but not Hydra. So this packs:

- `vgg19.safetensors.gz`: the VGG19 weights in fp16, gzipped (about 23 MiB). The layers past
  conv5_1 are stored as zeros, since no loss reads them (relu5_1 is the deepest tap), and zeros
  compress to nothing. For training on the loan only: never ship it.
- `paintings/`: the paintings of the shipped styles; `eval/`: gpu_check's photo;
- `wheels/`: the pure-Python packages that machine lacks (hydra-core, omegaconf, antlr4), at the
  versions installed here, fetched with pip (PyPI must be reachable);
- `photos/`: training photos scaled to `--short-side` px and saved as JPEG (quality 90), in a
  spread-out order (every k-th file, so no source folder dominates), until the whole working
  tree would pass `--limit-mib` less 1 MiB.

On the machine, `source scripts/gpu_setup.sh` puts them to use. Prints what it packed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from common import EVAL_DIR, TRAIN_DIR, use_shared_data
from gpu_check import CHECK_PHOTO
from omegaconf import OmegaConf

from fastnst.images import ImageError, read_image, resize, write_image
from fastnst.model_files import FAST_SUFFIX, shipped_models
from fastnst.training.data import find_images
from fastnst.vgg import LAYERS, load_state

ROOT = Path(__file__).resolve().parents[1]
DEEPEST_TAP = "conv5_1"  # the last conv any loss reads (relu5_1); deeper ones are stored as zeros
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime")  # missing on the loaned machine
MIB = 2**20


def pack_vgg(dest: Path) -> None:
    """VGG19 (`$FASTNST_VGG19`) in fp16 with the convs past `DEEPEST_TAP` zeroed, gzipped."""
    from safetensors.torch import save_file

    state, _ = load_state()
    last = LAYERS.index(DEEPEST_TAP)
    kept = {k: (v if int(k.split(".")[1]) <= last else torch.zeros_like(v)).half().contiguous()
            for k, v in state.items()}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "vgg19.safetensors"
        save_file(kept, str(plain))
        with open(plain, "rb") as f, gzip.open(dest, "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g)


def pack_paintings(dest: Path) -> None:
    """The paintings of the shipped styles from `$FASTNST_STYLE_DIR`, by their configs' names."""
    dest.mkdir(parents=True, exist_ok=True)
    folder = Path(os.environ["FASTNST_STYLE_DIR"])
    configs = {ROOT / "conf" / "style" / f"{name.removesuffix(FAST_SUFFIX)}.yaml"
               for name in shipped_models()}
    for config in configs:
        if config.is_file():  # not the multi-style model's
            image = OmegaConf.load(config).image
            shutil.copyfile(folder / image, dest / image)


def pack_wheels(dest: Path) -> None:
    """`WHEELS` at the versions installed here (pip builds antlr4's, which PyPI has as source)."""
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                    *pins], check=True)


def pack_photos(src: Path, dest: Path, room: float, short_side: int) -> tuple[int, int, int]:
    """Photos into `dest` until `room` bytes are used; returns (packed, found, bytes)."""
    files = sorted(find_images(src))
    order = [f for start in range(7) for f in files[start::7]]  # spread over the folders
    dest.mkdir(parents=True, exist_ok=True)
    total, count = 0, 0
    for i, source in enumerate(order):
        try:
            image = read_image(source)
        except ImageError as e:
            print(f"skipped: {e}")
            continue
        h, w = image.shape[-2:]
        scale = short_side / min(h, w)
        if scale < 1:
            image = resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
        target = dest / f"{i:05d}.jpg"
        write_image(image, target, quality=90)
        size = target.stat().st_size
        if total + size > room:
            target.unlink()
            break
        total, count = total + size, count + 1
    return count, len(files), total


def tree_bytes(paths: list[Path]) -> int:
    """Bytes of the files under `paths`."""
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*"))
               if f.is_file())


def tracked_bytes() -> int:
    """Bytes of the files that travel anyway: tracked, or untracked and not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tree_bytes([ROOT / name for name in listed.split("\0") if name])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".carry")
    parser.add_argument("--src", type=Path, default=TRAIN_DIR, help="training photos")
    parser.add_argument("--limit-mib", type=float, default=64.0,
                        help="what the device tool carries in all, the repository included")
    parser.add_argument("--short-side", type=int, default=288, help="pixels")
    parser.add_argument("--no-wheels", action="store_true", help="skip pip (tests, offline)")
    args = parser.parse_args(argv)
    use_shared_data()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    pack_vgg(args.out / "vgg19.safetensors.gz")
    pack_paintings(args.out / "paintings")
    (args.out / "eval").mkdir()
    shutil.copyfile(EVAL_DIR / CHECK_PHOTO, args.out / "eval" / CHECK_PHOTO)
    if not args.no_wheels:
        pack_wheels(args.out / "wheels")
    used = tracked_bytes() + tree_bytes([args.out])
    room = (args.limit_mib - 1) * MIB - used
    if room <= 0:
        print(f"pack_for_gpu: {used / MIB:.1f} MiB before any photo, over --limit-mib",
              file=sys.stderr)
        return 1
    count, found, size = pack_photos(args.src, args.out / "photos", room, args.short_side)
    print(f"packed into {args.out}: VGG19, {len(list((args.out / 'paintings').iterdir()))}"
          f" paintings, {count} of {found} photos ({size / MIB:.1f} MiB); with the repository"
          f" {(used + size) / MIB:.1f} MiB of {args.limit_mib:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
