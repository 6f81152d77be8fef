"""The fast style networks against their teachers, on the same photos: the quality bar of
distillation.

    python scripts/eval_fast.py [--models models/starry_night-fast.safetensors ...]
                                [--photos chicago.jpg ...] [--size 256] [--picture docs/fast.jpg]

For each fast model (default: every shipped `*-fast` model) its teacher is the model its
metadata names (`training.teacher`), else the shipped model of its style; for a painting with
no model, its universal results (fastnst.training.tasks.load_teacher). Both are judged with
the Gatys baseline's definitions (fastnst.quality: style = Gram MSE over relu1_1..relu5_1
against the painting at 256 px, content = relu4_2 MSE against the photo, both unweighted) and
the structure figure (luminance SSIM at 64 px, photo vs result). The bar: structure within 0.05
of the teacher's and style loss within 25% of the teacher's, both averaged over the photos.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import EVAL_DIR, caption, machine, use_shared_data
from omegaconf import OmegaConf

from fastnst.images import grid, read_image, resize_long_side, write_image
from fastnst.model_files import FAST_SUFFIX, load_model, shipped_models
from fastnst.paintings import read_painting
from fastnst.quality import PAINTING_SIDE, Scores, gatys_yardstick, judge
from fastnst.training.tasks import load_teacher

STRUCTURE_MARGIN = 0.05  # the fast network's structure may be at most this much below
STYLE_MARGIN = 1.25  # and its style loss at most this factor above the teacher's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path,
                        help="fast model files (default: the shipped *-fast models)")
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument("--photos", nargs="+", help="file names in --eval-dir (default: all)")
    parser.add_argument("--size", type=int, default=256, help="photo long side, pixels")
    parser.add_argument("--picture", type=Path,
                        help="also write a picture: photo, teacher and fast network per style")
    parser.add_argument("--picture-photos", nargs="+", default=["chicago.jpg", "kodim23.jpg"])
    args = parser.parse_args()
    use_shared_data()
    models = args.models or sorted(p for name, p in shipped_models().items()
                                   if name.endswith("-fast"))
    if not models:
        parser.error("no shipped fast models: give --models")
    names = args.photos or sorted(p.name for p in args.eval_dir.iterdir()
                                  if p.suffix.lower() in (".jpg", ".png"))
    photos = {n: resize_long_side(read_image(args.eval_dir / n), args.size) for n in names}
    loss = gatys_yardstick()
    print(machine())
    print(f"\n{len(names)} photos at {args.size} px; Gatys definitions, unweighted; structure:"
          " luminance SSIM at 64 px. Bar: structure within"
          f" {STRUCTURE_MARGIN}, style loss within {STYLE_MARGIN - 1:.0%} of the teacher's\n")
    print("| fast model | steps | minutes | structure (teacher / fast) | style (teacher / fast)"
          " | content (teacher / fast) | ms / photo (teacher / fast) | bar |")
    print("|---|---|---|---|---|---|---|---|")
    shown = [n for n in args.picture_photos if n in photos] if args.picture else []
    rows: list[list[torch.Tensor]] = []
    passed = 0
    for model in models:
        net, meta = load_model(model)
        training = meta.get("training", {})
        # A fast network fine-tuned after its distillation records no teacher: its style's.
        teacher_spec = training.get("teacher") or meta["style"].removesuffix(FAST_SUFFIX)
        style = OmegaConf.create(training["style"])
        painting = read_painting(style, max_size=PAINTING_SIDE)
        # A painting's fast network was taught by its universal results (load_teacher).
        teacher = load_teacher(str(teacher_spec), style, painting)
        loss.set_style([resize_long_side(painting, PAINTING_SIDE)])
        scores: dict[str, list[Scores]] = {"teacher": [], "fast": []}
        seconds = {"teacher": 0.0, "fast": 0.0}
        for photo in photos.values():
            for key, network in (("teacher", teacher), ("fast", net)):
                start = time.perf_counter()
                with torch.inference_mode():
                    result = network(photo)
                seconds[key] += time.perf_counter() - start
                scores[key].append(judge(loss, result, photo))
        t, f = Scores.mean(scores["teacher"]), Scores.mean(scores["fast"])
        ok = f.structure >= t.structure - STRUCTURE_MARGIN and f.style <= STYLE_MARGIN * t.style
        passed += ok
        ms = {k: 1000 * v / len(photos) for k, v in seconds.items()}
        print(f"| {meta['style']} | {meta.get('steps', '?')} | {meta.get('seconds', 0) / 60:.1f}"
              f" | {t.structure:.2f} / {f.structure:.2f} | {t.style:.3g} / {f.style:.3g}"
              f" ({f.style / t.style:.2f}x) | {t.content:.3g} / {f.content:.3g}"
              f" | {ms['teacher']:.0f} / {ms['fast']:.0f} | {'pass' if ok else 'FAIL'} |",
              flush=True)
        if shown:
            with torch.inference_mode():
                cells = [[photos[n], teacher(photos[n]), net(photos[n])] for n in shown]
            rows.append([caption(meta["style"], 160), *[c for cell in cells for c in cell]])
    print(f"\n{passed} of {len(models)} fast models meet the bar")
    if shown:
        header = [caption("", 160)] + [caption(label, args.size) for _ in shown
                                       for label in ("photo", "teacher", "fast")]
        write_image(grid([header, *rows]), args.picture, quality=88)
        print(f"wrote {args.picture}")


if __name__ == "__main__":
    main()
