"""Ship a trained style: models/<style>.safetensors (fp16) and a model card.

    python scripts/ship_style.py outputs/train/starry_night/<run>/starry_night.safetensors
                                 [--quality "table or sentence from eval_quality.py"]
                                 [--photo PHOTO] [--data-note "a stand-in for MS-COCO"] [--out DIR]

The weights are stored in float16 (half the download; the network still runs in float32) after
checking that the outputs stay the same to the eye: the largest pixel difference on an evaluation
photo (--photo) is printed and written into the card. The ONNX export is made and verified here
too (its figures go into the card), but not shipped: users get it on demand, cached by content
hash (`fastnst-infer --backend onnx`, `fastnst-export`). The card (models/<style>.md) is made
from the model's own metadata: the painting of a packaged style from its config
(conf/style/<style>.yaml), that of a model trained from `style=path/to/painting.jpg` from the
training config it recorded; the data, schedule and losses as training recorded them.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

import torch
from common import EVAL_DIR, machine
from omegaconf import OmegaConf

from fastnst.export import export_onnx
from fastnst.files import atomic_path
from fastnst.images import read_image, resize_long_side
from fastnst.model_files import load_model, read_metadata, save_model
from fastnst.paintings import style_config, style_names
from fastnst.training.data import DataError, find_images
from fastnst.training.tasks import FAST_TEACHERS
from fastnst.transformer import DESIGNS

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models"


class CardError(ValueError):
    """A model whose card cannot be written; the message says why."""


def painting(meta: dict) -> dict:
    """What the card says of the model's painting: `title`, `artist`, `image` (a file name),
    `url`, `md5` (None when unknown) and the style's loss weights.

    A packaged style's config (conf/style/<style>.yaml) when the model was trained on that
    painting; otherwise the style config training recorded (a painting given by path: its file
    name, the style's name as its title, no artist, URL or md5)."""
    recorded = dict(meta.get("training", {}).get("style") or {})
    name = recorded.get("name") or meta["style"]  # <style>-fast is trained on <style>'s config
    if name in style_names():
        packaged = OmegaConf.to_container(style_config(name), resolve=True)
        assert isinstance(packaged, dict)
        if not recorded.get("image") or recorded["image"] == packaged["image"]:
            return packaged
    if not recorded.get("image"):
        raise CardError(f"{name}: not a packaged style ({', '.join(style_names())}) and the"
                        " model records no painting (training.style.image in its metadata)")
    return {"title": name, "artist": None, "url": None, "md5": None,
            **recorded, "image": Path(str(recorded["image"])).name}


def shown_folder(folder: str) -> str:
    """A recorded folder as the card shows it: relative to the repository when it lies beside it
    (`../shared/data/train`), else as recorded."""
    path = Path(folder)
    if path.is_absolute() and path.is_relative_to(REPO.parent):
        return os.path.relpath(path, REPO)
    return folder


def data_words(meta: dict, note: str | None) -> str:
    """The training photos, in words: the recorded `data.root`, its photos counted now (the
    metadata has no count), unreadable ones skipped in training, and `note`."""
    root = meta.get("training", {}).get("data", {}).get("root")
    if not root:
        words = "not recorded"
    else:
        try:
            words = f"the {len(find_images(root)):,} photos of {shown_folder(str(root))}"
        except DataError:  # not on this machine (any more)
            words = f"the photos of {shown_folder(str(root))}"
    if skipped := meta.get("skipped_images"):
        words += f", {skipped} unreadable skipped"
    return words + (f" ({note})" if note else "")


def start_words(train: dict) -> str:
    """Where training started, in words: a distillation's teacher, an `init=` model (with its
    own steps and time when its file is still there)."""
    words = []
    if train.get("teacher") and train.get("styles"):
        words.append(f"taught by {teachers_words(train)}")
    elif train.get("teacher"):
        words.append(f"distilled from the `{train['teacher']}` network")
    if train.get("init"):
        init = Path(str(train["init"]))
        words.append(f"started from `{init.name}`")
        if init.is_file():
            meta = read_metadata(init)
            recorded = meta.get("training", {})
            how = "training"
            if recorded.get("styles") and recorded.get("teacher"):
                distilled = not recorded.get("loss", {}).get("style_weight")
                how = ("distillation from " if distilled else "training towards ") \
                    + teachers_words(recorded)
            elif recorded.get("teacher"):
                how = f"training towards the `{recorded['teacher']}` network"
            words[-1] += (f" ({meta.get('steps', '?')} steps of {how},"
                          f" {meta.get('seconds', 0) / 60:.0f} minutes)")
    text = "; ".join(words)
    return f" {text[:1].upper()}{text[1:]}." if words else ""  # file names keep their case


def pixel_words(train: dict) -> str:
    """The pixel term and the teacher's part in the loss, in words ("" when neither is used)."""
    loss, words = train.get("loss", {}), ""
    if loss.get("pixel_weight"):
        pool = int(loss.get("pixel_pool", 1))
        words += f", pixel weight {loss['pixel_weight']:g}" + (
            f" on {pool} x {pool} block means" if pool > 1 else "")
    if train.get("teacher"):
        whose = (teachers_words(train) if train.get("styles")
                 else f"the `{train['teacher']}` network")
        words += f"; the content{' and pixel' if loss.get('pixel_weight') else ''} targets are" \
            f" {whose}'s results, not the photos"
    return words


def teachers_words(train: dict) -> str:
    """A multi-style run's teachers, in words (tasks.py: `teacher=fast` is each style's fast
    network, any other teacher its own network)."""
    return "each style's " + ("fast network" if train.get("teacher") == FAST_TEACHERS
                               else "network")


def factors_words(train: dict, styles: list[str]) -> str:
    """Each style's multiple of its own weight in a multi-style run, in words."""
    base, own = train.get("style_factor", 1), train.get("style_factors") or {}
    if not own:
        return f" times {base:g}"
    return " times " + ", ".join(f"{own.get(name, base):g} ({name})" for name in styles)


def styles_words(meta: dict) -> str:
    """A multi-style model's styles, in words: each name with its painting's title and artist."""
    words = []
    for name in meta["styles"]:
        cfg = OmegaConf.to_container(style_config(name)) if name in style_names() else {}
        assert isinstance(cfg, dict)
        words.append(f"`{name}`" + (f" ({cfg['title']}, {cfg['artist']})" if cfg else ""))
    return ", ".join(words)


def card(meta: dict, onnx_report, fp16_diff: float, quality: str | None, *,
         photo: str = "chicago.jpg", photo_size: int = 512, data_note: str | None = None,
         trained_on: str | None = None, started: str | None = None) -> str:
    """The model card, Markdown, from the model's metadata; `photo` (a file name) at
    `photo_size` px is where the float16 weights were compared, `data_note` is said of the
    training photos, `trained_on` names the hardware where the metadata does not, `started`
    where training started (default: `start_words`, which reads the `init=` file as it is now)."""
    style = meta["style"]
    multi = bool(meta.get("styles"))
    cfg = {"title": style, "artist": None, "image": None} if multi else painting(meta)
    train = meta.get("training", {})
    trainer, data, optim = train.get("trainer", {}), train.get("data", {}), train.get("optim", {})
    losses = meta.get("losses", {})
    loss = train.get("loss", {})  # what the network was trained with; the config may change
    checks = ", ".join(f"{w}x{h} {d:.1e}" for (h, w), d in onnx_report.max_abs_diff.items())
    title = style + (f": {cfg['title']}" if cfg.get("title") != style else "") + (
        f" ({cfg['artist']})" if cfg.get("artist") else "")
    source = (f", from {cfg['url']}" if cfg.get("url") else ", given by path when training") + (
        f" (md5 `{cfg['md5']}`)" if cfg.get("md5") else "")
    processes = meta.get("processes", 1)
    hardware = (f"{processes} x " if processes and processes > 1 else "") + str(
        meta.get("hardware") or trained_on or trainer.get("accelerator", "?"))
    steps, planned = meta.get("steps", "?"), trainer.get("max_steps")
    if isinstance(steps, int) and planned and steps < planned:  # stopped by max_time
        steps = (f"{steps} (of {planned} planned: stopped at its time limit, the learning rate"
                 " only partly decayed)")
    seconds = meta.get("seconds", 0)
    took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"
    architecture = DESIGNS[meta["architecture"].get("design", "johnson")]
    if multi:
        architecture = architecture.replace("the style's network", "each style's network")
    style_line = (
        f"- **Styles** ({len(meta['styles'])}, in the order of the `style_weights` input):"
        f" {styles_words(meta)}; each painting at {train.get('style_size', '?')} px long side,"
        " each style at its own weight (conf/style/)"
        f"{factors_words(train, meta['styles'])}." if multi else
        f"- **Style image:** `{cfg['image']}`{source}, used at"
        f" {train.get('style_size', '?')} px long side.")
    lines = [
        f"# {title}",
        "",
        style_line,
        f"- **Architecture:** {architecture}"
        + ("; multi-style: conditional instance norm, a scale and shift per style in every norm"
           " and residual block, the convolutions shared (fastnst.transformer)" if multi else "")
        + ","
        f" {json.dumps(meta['architecture'])}; input and output RGB in [0, 1], any size.",
        f"- **Loss:** VGG19 content ({', '.join(loss.get('content_layers', ['relu4_2']))}) +"
        f" Gram style ({', '.join(loss.get('style_layers', ['relu1_1..relu5_1']))}), content"
        f" weight {loss.get('content_weight', cfg.get('content_weight', '?'))}, style weight"
        + (" each style's (above)" if multi else
           f" {loss.get('style_weight', cfg.get('style_weight', '?'))}") + ", TV weight"
        f" {loss.get('tv_weight', cfg.get('tv_weight', '?'))}{pixel_words(train)}.",
        f"- **Training:** {steps} steps of {data.get('batch_size', '?')} crops"
        f" of {data.get('crop_size', '?')} px (photos scaled to a"
        f" {data.get('short_side') or data.get('crop_size', '?')} px short side), Adam lr"
        f" {optim.get('lr', '?')} with warm-up and cosine decay, on {hardware}"
        f" ({meta.get('precision', '?')} precision), {took};"
        f" data: {data_words(meta, data_note)}."
        f"{start_words(train) if started is None else started}",
        "- **Final losses** (mean of the last training steps): " + (", ".join(
            f"{k} {losses[k]:.3g}" for k in ("total", "content", "style") if k in losses)
            or "not recorded") + ".",
        f"- **Files:** `{style}.safetensors` (float16 weights; largest output difference from the"
        f" float32 network on {photo} at {photo_size} px: {fp16_diff:.4f}). Its ONNX export"
        " (float32) is made on demand by `fastnst-export --style NAME` or `fastnst-infer"
        f" --backend onnx`; ONNX Runtime vs PyTorch max difference at shipping: {checks}.",
    ]
    if quality:
        lines.append(f"- **Quality:** {quality}")
    lines += ["", f"Shipped with scripts/ship_style.py on: {machine()}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained <style>.safetensors")
    parser.add_argument("--quality", help="a line for the card, from eval_quality.py")
    parser.add_argument("--photo", type=Path, default=EVAL_DIR / "chicago.jpg",
                        help="the photo the float16 weights are checked on (default: %(default)s)")
    parser.add_argument("--photo-size", type=int, default=512,
                        help="its long side for the check, pixels (default: %(default)s)")
    parser.add_argument("--data-note", help="said of the training photos in the card, e.g."
                                            " 'a stand-in for MS-COCO'")
    parser.add_argument("--out", type=Path, default=SHIPPED,
                        help="folder for <style>.safetensors and <style>.md (default: the"
                             " repository's models/)")
    parser.add_argument("--hardware", help="what it was trained on, for models that did not"
                                           " record it (e.g. 'one NVIDIA H200')")
    parser.add_argument("--precision", help="training precision, for models that did not"
                                            " record it (e.g. 32-true)")
    args = parser.parse_args(argv)
    if not args.photo.is_file():
        parser.error(f"--photo {args.photo}: no such file")
    net, meta = load_model(args.model)
    style = meta["style"]
    if args.precision:
        meta.setdefault("precision", args.precision)
    try:
        if not meta.get("styles"):
            painting(meta)  # before anything is written
    except CardError as e:
        parser.error(str(e))
    args.out.mkdir(parents=True, exist_ok=True)
    started = start_words(meta.get("training", {}))  # before the new file replaces an init= one
    styles = meta.get("styles", [])
    half = save_model(copy.deepcopy(net).half(), args.out / f"{style}.safetensors", style,
                      extra={k: v for k, v in meta.items()
                             if k not in ("format", "style", "io", "architecture", "styles")},
                      styles=styles)
    shipped, _ = load_model(half)
    photo = resize_long_side(read_image(args.photo), args.photo_size)
    mixes = [(m,) for m in torch.eye(len(styles))] if styles else [()]  # every style
    with torch.no_grad():
        fp16_diff = max(float((shipped(photo, *m) - net(photo, *m)).abs().max()) for m in mixes)
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(net, Path(tmp) / f"{style}.onnx", style, styles=styles)
    with atomic_path(args.out / f"{style}.md") as tmp:
        tmp.write_text(card(meta, report, fp16_diff, args.quality, photo=args.photo.name,
                            photo_size=args.photo_size, data_note=args.data_note,
                            trained_on=args.hardware, started=started))
    print(f"shipped {style}: {half}, card {args.out / f'{style}.md'};"
          f" fp16 max difference {fp16_diff:.4f}")


if __name__ == "__main__":
    main()
