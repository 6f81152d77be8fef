"""Ship a trained style: models/<style>.safetensors (fp16) and a model card.

    python scripts/ship_style.py outputs/train/starry_night/<run>/starry_night.safetensors
                                 [--quality "table or sentence from eval_quality.py"]

The weights are stored in float16 (half the download; the network still runs in float32) after
checking that the outputs stay the same to the eye: the largest pixel difference on an evaluation
photo is printed and written into the card. The ONNX export is made and verified here too (its
figures go into the card), but not shipped: users get it on demand, cached by content hash
(`fastnst-infer --backend onnx`, `fastnst-export`). The card (models/<style>.md) is made
from the model's own metadata.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from common import SHARED, machine

from fastnst.export import export_onnx
from fastnst.files import atomic_path
from fastnst.images import read_image, resize_long_side
from fastnst.model_files import load_model, save_model
from fastnst.paintings import style_config

SHIPPED = Path(__file__).resolve().parents[1] / "models"


def card(meta: dict, onnx_report, fp16_diff: float, quality: str | None) -> str:
    """The model card, Markdown, from the model's metadata."""
    style = meta["style"]
    cfg = style_config(style)
    train = meta.get("training", {})
    trainer, data, optim = train.get("trainer", {}), train.get("data", {}), train.get("optim", {})
    losses = meta.get("losses", {})
    loss = train.get("loss", {})  # what the network was trained with; the config may change
    checks = ", ".join(f"{w}x{h} {d:.1e}" for (h, w), d in onnx_report.max_abs_diff.items())
    lines = [
        f"# {style}: {cfg.title} ({cfg.artist})",
        "",
        f"- **Style image:** `{cfg.image}`, from {cfg.url} (md5 `{cfg.md5}`), used at"
        f" {train.get('style_size', '?')} px long side.",
        "- **Architecture:** TransformerNet (Johnson et al. 2016),"
        f" {json.dumps(meta['architecture'])}, reflection padding, instance norm,"
        " resize-convolution upsampling; input and output RGB in [0, 1], any size.",
        f"- **Loss:** VGG19 content ({', '.join(loss.get('content_layers', ['relu4_2']))}) +"
        f" Gram style ({', '.join(loss.get('style_layers', ['relu1_1..relu5_1']))}), content"
        f" weight {loss.get('content_weight', cfg.content_weight)}, style weight"
        f" {loss.get('style_weight', cfg.style_weight)}, TV weight"
        f" {loss.get('tv_weight', cfg.tv_weight)}.",
        f"- **Training:** {meta.get('steps', '?')} steps of {data.get('batch_size', '?')} crops"
        f" of {data.get('crop_size', '?')} px (photos scaled to a"
        f" {data.get('short_side') or data.get('crop_size', '?')} px short side), Adam lr"
        f" {optim.get('lr', '?')} with warm-up and cosine decay, on"
        f" {trainer.get('accelerator', '?')} ({meta.get('precision', '?')} precision),"
        f" {meta.get('seconds', 0) / 60:.0f} minutes; data: the 3,440 photos of"
        " ../shared/data/train (a stand-in for MS-COCO).",
        "- **Final losses** (mean of the last training steps): " + ", ".join(
            f"{k} {losses[k]:.3g}" for k in ("total", "content", "style") if k in losses) + ".",
        f"- **Files:** `{style}.safetensors` (float16 weights; largest output difference from the"
        f" float32 network on chicago.jpg at 512 px: {fp16_diff:.4f}). Its ONNX export (float32)"
        " is made on demand by `fastnst-export --style NAME` or `fastnst-infer --backend onnx`;"
        f" ONNX Runtime vs PyTorch max difference at shipping: {checks}.",
    ]
    if quality:
        lines.append(f"- **Quality:** {quality}")
    lines += ["", f"Shipped with scripts/ship_style.py on: {machine()}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained <style>.safetensors")
    parser.add_argument("--quality", help="a line for the card, from eval_quality.py")
    parser.add_argument("--photo", type=Path, default=SHARED / "data" / "eval" / "chicago.jpg")
    parser.add_argument("--precision", help="training precision, for models that did not"
                                            " record it (e.g. 32-true)")
    args = parser.parse_args()
    net, meta = load_model(args.model)
    style = meta["style"]
    if args.precision:
        meta.setdefault("precision", args.precision)
    half = save_model(copy.deepcopy(net).half(), SHIPPED / f"{style}.safetensors", style,
                      extra={k: v for k, v in meta.items()
                             if k not in ("format", "style", "io", "architecture")})
    shipped, _ = load_model(half)
    photo = resize_long_side(read_image(args.photo), 512)
    with torch.no_grad():
        fp16_diff = float((shipped(photo) - net(photo)).abs().max())
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(net, Path(tmp) / f"{style}.onnx", style)
    with atomic_path(SHIPPED / f"{style}.md") as tmp:
        tmp.write_text(card(meta, report, fp16_diff, args.quality))
    print(f"shipped {style}: {half}, card {style}.md;"
          f" fp16 max difference {fp16_diff:.4f}")


if __name__ == "__main__":
    main()
