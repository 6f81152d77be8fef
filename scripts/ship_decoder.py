"""Ship trained universal style transfer decoders: models/decoders/<layer>.safetensors (fp16)
and a card beside each; a painting decoder (`paintings=`) as models/decoders/painter.safetensors.

    python scripts/ship_decoder.py outputs/decoder/relu4_1/<run>/decoder_relu4_1.safetensors ...
                                   [--photo PHOTO] [--out models/decoders]

The weights are stored in float16 after checking that a reconstruction stays the same to the
eye: the largest pixel difference between the float32 and float16 decoders' reconstructions
of an evaluation photo (--photo, at 256 px) goes into the card, with the reconstruction's mean
error, the training (steps, crops, minutes) and the final losses, from the file's metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import EVAL_DIR, machine, use_shared_data
from safetensors import safe_open
from safetensors.torch import save_file

from fastnst.files import atomic_path
from fastnst.images import read_image, resize_long_side
from fastnst.universal import DECODER_FORMAT, PAINTER, load_decoder
from fastnst.vgg import VGGFeatures

ROOT = Path(__file__).resolve().parents[1]


def ship(path: Path, photo: torch.Tensor, photo_name: str, out_dir: Path) -> Path:
    """Write `path`'s decoder in float16 with its card into `out_dir`; return the file."""
    decoder = load_decoder(path)
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    layer = meta["layer"]
    encoder = VGGFeatures([layer])
    half = load_decoder(path)
    half.load_state_dict({k: v.half().float() for k, v in decoder.state_dict().items()})
    with torch.no_grad():
        features = encoder(photo, [layer])[layer]
        full, rounded = decoder(features).clamp(0, 1), half(features).clamp(0, 1)
    painter = meta.get("objective") == "paint"
    name = PAINTER if painter else layer
    target = out_dir / f"{name}.safetensors"
    with atomic_path(target) as tmp:
        save_file({k: v.half().contiguous() for k, v in decoder.state_dict().items()}, str(tmp),
                  metadata={**meta, "format": DECODER_FORMAT})
    training = json.loads(meta.get("training", "{}"))
    losses = json.loads(meta.get("losses", "{}"))
    data = training.get("data", {})
    if painter:
        card = _painter_card(meta, training, losses, data, photo_name,
                             float((full - rounded).abs().max()))
    else:
        card = _reconstruction_card(meta, layer, training, losses, data, photo_name,
                                    float((full - photo).abs().mean()),
                                    float((full - rounded).abs().max()))
    with atomic_path(out_dir / f"{name}.md") as tmp:
        tmp.write_text(card)
    return target


def _reconstruction_card(meta: dict, layer: str, training: dict, losses: dict, data: dict,
                         photo_name: str, error: float, rounding: float) -> str:
    """The card of a decoder trained to reconstruct photos."""
    return (f"# Decoder from VGG19 {layer} (universal style transfer)\n\n"
            f"- **What:** turns VGG19's features at {layer} back into the image"
            " (fastnst.universal.Decoder, mirroring VGG19 down to that layer); trained on photos"
            " only, with no painting (docs/universal.md).\n"
            f"- **Training:** {meta.get('steps')} steps of {data.get('batch_size')} crops of"
            f" {data.get('crop_size')} px (photos scaled to a {data.get('short_side')} px short"
            f" side), Adam lr {training.get('optim', {}).get('lr')} with warm-up and cosine"
            " decay; pixel error plus the normalised feature error at every relu<b>_1 down to"
            f" {layer} (feature weight {training.get('feature_weight')}); data: the 3,440 photos"
            " of ../shared/data/train." + _started_from(training.get("init")) + "\n"
            f"- **Final losses** (mean of the last steps): pixel {losses.get('pixel', 0):.4g},"
            f" features {losses.get('features', 0):.4g}.\n"
            f"- **Reconstruction** of {photo_name} at 256 px: mean absolute error"
            f" {error:.4f}; float16 against float32 weights: largest difference"
            f" {rounding:.4f}.\n\n"
            f"Shipped with scripts/ship_decoder.py on: {machine()}.\n")


def _painter_card(meta: dict, training: dict, losses: dict, data: dict, photo_name: str,
                  rounding: float) -> str:
    """The card of a decoder trained to paint (`paintings=`)."""
    names = ", ".join(str(p) for p in training.get("paintings", []))
    return (f"# Painting decoder from VGG19 {meta['layer']} (any painting, no training)\n\n"
            f"- **What:** paints a photo's VGG19 {meta['layer']} features once they are whitened"
            " and coloured with a painting's (fastnst.universal; docs/universal.md).\n"
            f"- **Training:** {meta.get('steps')} steps of {data.get('batch_size')} crops of"
            f" {data.get('crop_size')} px (photos scaled to a {data.get('short_side')} px short"
            f" side), each with a crop of a random painting of: {names} (hues turned at random"
            f" {training.get('hue_jitter')} of the time); Adam lr"
            f" {training.get('optim', {}).get('lr')} with warm-up and cosine decay; the Gatys"
            " yardstick (content at relu4_2, Gram style at relu1_1..relu5_1) at style weight"
            f" {training.get('style_weight')}; photos: ../shared/data/train."
            + (f" Started from the {meta['layer']} decoder shipped beside it (`init=shipped`)."
               if training.get("init") == "shipped" else _started_from(training.get("init")))
            + "\n"
            f"- **Final losses** (mean of the last steps): content {losses.get('content', 0):.4g},"
            f" style {losses.get('style', 0):.4g}.\n"
            f"- float16 against float32 weights, decoding {photo_name} at 256 px: largest"
            f" difference {rounding:.4f}.\n\n"
            f"Shipped with scripts/ship_decoder.py on: {machine()}.\n")


def _started_from(init: object) -> str:
    """The card's words for a run's `init=` (nothing for random weights)."""
    if not init:
        return ""
    if init == "shipped":
        return (" Started from the decoder of its layer shipped then (`init=shipped`; its card"
                " is in git history).")
    return f" Started from `{Path(str(init)).name}`."


PHOTO_NAME = "chicago.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoders", nargs="+", type=Path)
    parser.add_argument("--photo", type=Path, default=EVAL_DIR / PHOTO_NAME)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "decoders")
    args = parser.parse_args()
    use_shared_data()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = resize_long_side(read_image(args.photo), 256)
    h, w = (side // 8 * 8 for side in photo.shape[-2:])  # sides that relu4_1's pooling divides
    for path in args.decoders:
        print(f"shipped {ship(path, photo[..., :h, :w], args.photo.name, args.out)}")


if __name__ == "__main__":
    main()
