"""Pack a subset of the training photos for a machine they must be copied to (the GPU loan).

    python scripts/pack_photos.py [--src ../shared/data/train] [--out .carry/photos]
                                  [--max-mib 56] [--short-side 288]

Every photo is scaled to `--short-side` pixels (training crops 256 px from photos of that size)
and saved as JPEG (quality 90), in a spread-out order (every k-th file, so no single source
folder dominates), until the next photo would pass `--max-mib`. The folder is what
`data.root=` reads; it is ignored by git (.carry/). Prints the count and size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import TRAIN_DIR

from fastnst.data import find_images
from fastnst.images import ImageError, read_image, resize, write_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=TRAIN_DIR)
    parser.add_argument("--out", type=Path, default=Path(".carry/photos"))
    parser.add_argument("--max-mib", type=float, default=56.0,
                        help="total size limit (the device tool carries 64 MiB in all)")
    parser.add_argument("--short-side", type=int, default=288, help="pixels")
    args = parser.parse_args(argv)
    files = sorted(find_images(args.src))
    order = [f for start in range(7) for f in files[start::7]]  # spread over the folders
    args.out.mkdir(parents=True, exist_ok=True)
    total, count, limit = 0, 0, args.max_mib * 2**20
    for i, source in enumerate(order):
        try:
            image = read_image(source)
        except ImageError as e:
            print(f"skipped: {e}")
            continue
        h, w = image.shape[-2:]
        scale = args.short_side / min(h, w)
        if scale < 1:
            image = resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
        target = args.out / f"{i:05d}.jpg"
        write_image(image, target, quality=90)
        size = target.stat().st_size
        if total + size > limit:
            target.unlink()
            break
        total, count = total + size, count + 1
    print(f"packed {count} of {len(files)} photos into {args.out}: {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
