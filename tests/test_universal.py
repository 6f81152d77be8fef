"""Universal style transfer (fastnst.universal): the feature transform gives the painting's
statistics, and the decoders mirror VGG19's shapes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from fastnst.universal import DECODER_LAYERS, Decoder, wct


def _features(channels: int, n: int, seed: int, mix: torch.Tensor | None = None,
              shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(channels, n, generator=g)
    if mix is not None:
        x = mix @ x
    return (x + shift).reshape(1, channels, n // 10, 10)


def test_wct_gives_the_paintings_mean_and_covariance_and_keeps_the_photos_order():
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(6, 6, generator=g)  # the painting's features are correlated
    photo, painting = _features(6, 400, 2), _features(6, 900, 3, mix=mix, shift=2.0)
    out = wct(photo, painting).reshape(6, -1)
    target = painting.reshape(6, -1)
    torch.testing.assert_close(out.mean(1), target.mean(1), atol=1e-4, rtol=0)
    # Within the regularisation (WCT_EPS of the mean eigenvalue) and the Newton-Schulz steps.
    torch.testing.assert_close(torch.cov(out), torch.cov(target), atol=2e-2, rtol=1e-2)
    # Where the photo is bright the result is, in its whitened order: not the painting's pixels.
    whitened = photo.reshape(6, -1)
    assert torch.corrcoef(torch.stack([whitened[0], out[0]]))[0, 1].abs() > 0.1
    torch.testing.assert_close(wct(photo, painting, strength=0.0), photo)
    other = wct(photo, _features(6, 900, 4, mix=torch.randn(6, 6, generator=g)))
    assert (other - wct(photo, painting)).abs().mean() > 0.1  # the painting decides


def test_wct_under_bf16_autocast_is_the_float32_result():
    """Training in bf16-mixed (an AMX CPU, a GPU) runs a painting teacher under autocast: the
    whitening stays in float32 there, where in bfloat16 its roots came out NaN."""
    g = torch.Generator().manual_seed(2)
    photo = _features(64, 400, 2) * 300  # relu4_1's scale
    painting = _features(64, 900, 3, mix=torch.randn(64, 64, generator=g)) * 300
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = wct(photo, painting)
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed, wct(photo, painting))


def test_the_covariance_roots_are_roots_of_the_regularised_covariance():
    from fastnst.universal import WCT_EPS, WCT_FLOOR, covariance_roots

    g = torch.Generator().manual_seed(5)
    basis, _ = torch.linalg.qr(torch.randn(64, 64, generator=g))
    spread = torch.logspace(2, -4, 64)  # eigenvalues over six decades, as VGG19 features have
    cov = basis @ torch.diag(spread) @ basis.T
    root, inverse_root = covariance_roots(cov)
    regularised = cov + (WCT_EPS * spread.mean() + WCT_FLOOR) * torch.eye(64)
    torch.testing.assert_close(root @ root, regularised, atol=1e-3 * spread.max(), rtol=0)
    torch.testing.assert_close(root @ inverse_root, torch.eye(64), atol=2e-3, rtol=0)
    exact = torch.linalg.eigh(regularised.double())
    exact_root = exact.eigenvectors @ torch.diag(exact.eigenvalues.sqrt()) @ exact.eigenvectors.T
    assert (root.double() - exact_root).norm() / exact_root.norm() < 1e-3


@pytest.mark.parametrize("layer", DECODER_LAYERS)
def test_each_decoder_mirrors_vgg19_down_to_its_layer(layer):
    scale = 2 ** DECODER_LAYERS.index(layer)
    decoder = Decoder(layer)
    out = decoder(torch.zeros(2, decoder.channels, 48 // scale, 64 // scale))
    assert out.shape == (2, 3, 48, 64)


def _train_decoder(run_dir, photos, *extra):
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    from fastnst.train_decoder import run

    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose("decoder", return_hydra_config=True, overrides=[
            "layer=relu2_1", f"data.root={photos}", "data.crop_size=32", "data.short_side=40",
            "data.batch_size=2", "data.workers=0", "data.val_count=1", "data.val_size=32",
            "sample_every=2", "checkpoint_every=2", "optim.warmup_steps=1", "optim.lr=1e-3",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
            f"hydra.runtime.output_dir={run_dir}", *extra])
    HydraConfig.instance().set_config(cfg)
    return run(cfg)


def test_a_decoder_run_can_start_from_the_shipped_decoder(vgg_weights, tmp_path):
    from helpers import smooth_image
    from safetensors import safe_open

    from fastnst.config_checks import ConfigError
    from fastnst.images import write_image
    from fastnst.universal import load_decoder, shipped_decoders

    if "relu2_1" not in shipped_decoders():
        pytest.fail("no relu2_1 decoder ships in models/decoders/")
    photos = tmp_path / "photos"
    for i in range(2):
        write_image(smooth_image(40, 48, seed=i), photos / f"p{i}.jpg")
    out = _train_decoder(tmp_path / "runs" / "a", photos, "trainer.max_steps=1",
                         "optim.lr=1e-12", "init=shipped")
    shipped = load_decoder(shipped_decoders()["relu2_1"]).state_dict()
    with safe_open(str(out), "pt") as f:
        for key, value in shipped.items():  # one step at lr 1e-12: still the shipped weights
            torch.testing.assert_close(f.get_tensor(key), value, atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="a relu3_1 decoder, not relu2_1"):
        _train_decoder(tmp_path / "runs" / "b", photos, "trainer.max_steps=1",
                       f"init={shipped_decoders()['relu3_1']}")


def test_a_decoder_learns_to_reconstruct_photos_and_resumes(vgg_weights, tmp_path):
    from helpers import smooth_image
    from safetensors import safe_open

    from fastnst.images import write_image
    from fastnst.training.decoder import DecoderModule

    photos = tmp_path / "photos"
    for i in range(6):
        write_image(smooth_image(40, 48, seed=i), photos / f"p{i}.jpg")
    first = _train_decoder(tmp_path / "runs" / "a", photos, "trainer.max_steps=2")
    torch.manual_seed(0)  # the run's seed: its starting weights
    module = DecoderModule("relu2_1", str(vgg_weights))
    batch = torch.stack([smooth_image(32, 32, seed=i)[0] for i in range(2)])
    before = module.terms(batch)["total"].item()
    with safe_open(str(first), "pt") as f:
        assert f.metadata()["layer"] == "relu2_1" and f.metadata()["steps"] == "2"
        module.decoder.load_state_dict({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    assert module.terms(batch)["total"].item() < before  # two steps already reconstruct better
    resumed = _train_decoder(tmp_path / "runs" / "b", photos, "trainer.max_steps=4",
                             "resume=true")
    with safe_open(str(resumed), "pt") as f:
        assert f.metadata()["steps"] == "4"
    assert (tmp_path / "runs" / "b" / "samples").is_dir()
    # Shipped: float16, loadable, with a card naming its training.
    import importlib

    from helpers import REPO

    from fastnst.universal import load_decoder

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        ship = importlib.import_module("ship_decoder")
    finally:
        sys.path.remove(str(REPO / "scripts"))
    photo = write_image(smooth_image(40, 56, seed=9), tmp_path / "photo.png")
    shipped = ship.ship(resumed, smooth_image(32, 48, seed=9), photo.name, tmp_path / "ship")
    assert shipped == tmp_path / "ship" / "relu2_1.safetensors"
    with safe_open(str(shipped), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}  # noqa: SIM118
    assert load_decoder(shipped).layer == "relu2_1"
    card = (tmp_path / "ship" / "relu2_1.md").read_text()
    assert "4 steps of 2 crops of 32 px" in card and "photo.png" in card


def test_a_decoder_learns_to_paint_the_paintings_it_is_given(vgg_weights, tmp_path):
    from helpers import smooth_image, stripes
    from safetensors import safe_open

    from fastnst.images import write_image
    from fastnst.training.decoder import DecoderModule

    photos = tmp_path / "photos"
    for i in range(4):
        write_image(smooth_image(40, 48, seed=i), photos / f"p{i}.jpg")
    painting = write_image(stripes(48, 64), tmp_path / "art" / "lines.png")
    out = _train_decoder(tmp_path / "runs" / "a", photos, "trainer.max_steps=2",
                         f"paintings=[{painting}]", "hue_jitter=0.5")
    assert out.name == "painter.safetensors"
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["objective"] == "paint" and meta["layer"] == "relu2_1"
    assert set(json.loads(meta["losses"])) == {"content", "style", "total"}
    # The loss is the yardstick's, against the step's painting crops: a decoder whose images
    # are the crops themselves scores no style distance, the photo itself no content distance.
    module = DecoderModule("relu2_1", str(vgg_weights), paintings=[stripes(48, 64)],
                           hue_jitter=1.0, seed=3)
    crops = module.painting_crops(2, 32)
    assert crops.shape == (2, 3, 32, 32)
    torch.testing.assert_close(crops, module.painting_crops(2, 32))  # a resumed step's crops
    plain = DecoderModule("relu2_1", str(vgg_weights), paintings=[stripes(48, 64)], seed=3)
    assert (plain.painting_crops(2, 32) - crops).abs().mean() > 0.02  # hues turned
    batch = torch.stack([smooth_image(32, 32, seed=i)[0] for i in range(2)])
    painted = module.painting_terms(batch)
    assert painted["content"] > 0 and painted["style"] > 0
    assert torch.isclose(painted["total"], painted["content"] + painted["style"])
    step_crops = module.painting_crops(2, 32)
    assert module.loss(step_crops, content=batch)["style"] < 1e-6 * painted["style"]
    assert module.loss(batch, content=batch)["content"] == 0


def test_an_adain_decoder_trains_from_a_corpus_folder_and_says_its_transform(vgg_weights,
                                                                            tmp_path):
    from helpers import smooth_image, stripes

    from fastnst.images import write_image
    from fastnst.universal import load_decoder

    photos = tmp_path / "photos"
    for i in range(2):
        write_image(smooth_image(40, 48, seed=i), photos / f"p{i}.jpg")
    for i in range(3):  # a corpus: a folder of paintings (scripts/make_style_corpus.py)
        write_image(stripes(48, 64 + 8 * i), tmp_path / "corpus" / "train" / f"{i}.png")
    out = _train_decoder(tmp_path / "runs" / "a", photos, "trainer.max_steps=1",
                         f"paintings=[{tmp_path / 'corpus'}]", "transform=adain")
    decoder = load_decoder(out)
    assert decoder.transform == "adain" and decoder.layer == "relu2_1"
    from fastnst.config_checks import ConfigError

    with pytest.raises(ConfigError, match="transform=fft: must be one of wct, adain"):
        _train_decoder(tmp_path / "runs" / "b", photos, "transform=fft")


def test_adain_moments_give_each_channel_the_paintings_mean_and_deviation_only():
    from fastnst.universal import moments, transfer

    g = torch.Generator().manual_seed(1)
    photo = _features(6, 400, 2, mix=torch.randn(6, 6, generator=g)).reshape(6, -1)
    painting = (_features(6, 900, 3) * torch.arange(1, 7.0).view(1, 6, 1, 1) + 3).reshape(6, -1)
    out = transfer(photo, moments(photo, diagonal=True), moments(painting, diagonal=True))
    torch.testing.assert_close(out.mean(1), painting.mean(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(1), painting.std(1), atol=0, rtol=1e-2)  # WCT_EPS
    # The photo's correlations between channels are kept (WCT would make them the painting's).
    torch.testing.assert_close(torch.corrcoef(out), torch.corrcoef(photo), atol=1e-3, rtol=0)


def test_the_palette_step_gives_the_paintings_colours_and_keeps_the_order():
    from fastnst.universal import match_palette, moments

    g = torch.Generator().manual_seed(4)
    photo = (torch.rand(1, 3, 32, 40, generator=g) * 0.3 + 0.2)  # a dull, grey-green picture
    photo[:, 1] += 0.1
    painting = torch.rand(1, 3, 30, 30, generator=g) * torch.tensor([0.3, 0.1, 0.2]).view(
        1, 3, 1, 1) + torch.tensor([0.6, 0.2, 0.3]).view(1, 3, 1, 1)  # a red one
    target = moments(painting[0].flatten(1))
    out, own = match_palette(photo, target, 1.0)
    pixels, wanted = out[0].flatten(1), painting[0].flatten(1)
    torch.testing.assert_close(pixels.mean(1), wanted.mean(1), atol=2e-3, rtol=0)
    torch.testing.assert_close(torch.cov(pixels), torch.cov(wanted), atol=2e-4, rtol=0.05)
    # The brightest pixel of the photo is still among the brightest of the result.
    luma = torch.tensor([0.299, 0.587, 0.114])
    order = (luma @ photo[0].flatten(1)).argsort()
    assert (luma @ pixels)[order[-20:]].mean() > (luma @ pixels)[order[:20]].mean()
    torch.testing.assert_close(match_palette(photo, target, 0.0)[0], photo)
    again, _ = match_palette(photo, target, 1.0, own)  # tiles share the whole picture's
    torch.testing.assert_close(again, out)


def test_hue_turns_and_the_layout_comes_back_from_the_photo():
    from helpers import smooth_image

    from fastnst.color import restore_layout, rgb_to_yiq, rotate_hue

    image = smooth_image(32, 48, seed=5)
    turned = rotate_hue(image, 120.0)
    assert (turned - image).abs().mean() > 0.03
    kept = rgb_to_yiq(turned)[:, 0] - rgb_to_yiq(image)[:, 0]
    assert kept.abs().mean() < 0.02  # luma kept (up to clipping)
    torch.testing.assert_close(rotate_hue(image, 360.0), image, atol=1e-4, rtol=0)
    flat = torch.full_like(image, 0.5)
    torch.testing.assert_close(restore_layout(flat, image, 0.0), flat)
    back = restore_layout(flat, image, 1.0, block=8)
    coarse = torch.nn.functional.avg_pool2d(rgb_to_yiq(image)[:, :1], 8)
    got = torch.nn.functional.avg_pool2d(rgb_to_yiq(back)[:, :1], 8)
    assert (got - coarse).abs().mean() < 0.03  # the photo's light and shade, block by block
    assert (back[:, 0] - back[:, 1]).abs().max() < 1e-5  # no colour added to a grey result


def _painting_backend(tmp_path, painting, layers=("relu2_1", "relu1_1")):
    from fastnst.images import write_image
    from fastnst.universal import PaintingBackend, UniversalStylizer

    torch.manual_seed(0)
    decoders = [Decoder(layer) for layer in layers]
    for decoder in decoders:  # untrained, but giving mid-tones rather than clipped colours
        last = decoder.body[-1][-1]
        last.weight.data.mul_(0.05)
        last.bias.data.fill_(0.5)
    stylizer = UniversalStylizer(decoders)
    path = tmp_path / "my painting.png"
    write_image(painting, path)
    return PaintingBackend(path, stylizer, torch.device("cpu"))


def test_levels_run_deepest_first_and_any_size_keeps_its_shape(vgg_weights):
    from fastnst.universal import UniversalStylizer

    stylizer = UniversalStylizer([Decoder("relu1_1"), Decoder("relu3_1"), Decoder("relu2_1")])
    assert stylizer.layers == ["relu3_1", "relu2_1", "relu1_1"]
    from helpers import smooth_image, stripes

    out = stylizer(smooth_image(37, 50), stripes(40, 40))  # sides the pooling does not divide
    assert out.shape == (1, 3, 37, 50) and out.isfinite().all()


def test_a_painting_backend_follows_its_painting_and_tiles_agree(vgg_weights, tmp_path):
    from helpers import smooth_image, stripes

    from fastnst.stylize_options import StylizeOptions
    from fastnst.stylizer import stylize

    photo = smooth_image(96, 128, seed=3)
    backend = _painting_backend(tmp_path, stripes(64, 64))
    assert backend.style == "my_painting" and backend.styles == []
    other = _painting_backend(tmp_path, smooth_image(64, 64, seed=9))
    whole = stylize(backend, photo, StylizeOptions(stroke=0))
    assert (whole - stylize(other, photo, StylizeOptions(stroke=0))).abs().mean() > 0.02
    tiled = stylize(backend, photo, StylizeOptions(stroke=0, tile=64, overlap=16),
                    stats_size=128)
    # Each tile whitened with the whole picture's statistics: it matches the untiled run
    # except near tile edges, where the tile's receptive field is cut.
    assert (tiled - whole).abs().mean() < 0.025
    corner = whole[..., :48, :48]
    on_its_own = backend(photo[..., :64, :64])[..., :48, :48]
    with backend.shared_statistics(photo):
        shared = backend(photo[..., :64, :64])[..., :48, :48]
    assert (shared - corner).abs().max() < 1e-3 < 1e-2 < (on_its_own - corner).abs().mean()


def test_the_shipped_decoders_load_and_a_painting_decides_the_colours(
        vgg_weights, shipped_painter, tmp_path):
    from helpers import smooth_image, tinted
    from safetensors import safe_open

    import fastnst
    from fastnst.images import read_image, write_image
    from fastnst.universal import DECODER_LAYERS, load_decoder, shipped_decoders

    assert set(shipped_decoders()) == set(DECODER_LAYERS)
    assert all(load_decoder(f).layer == layer for layer, f in shipped_decoders().items())
    with safe_open(str(shipped_painter), "pt") as f:
        assert f.metadata()["objective"] == "paint"
    assert load_decoder(shipped_painter).layer == "relu4_1"
    photo = write_image(smooth_image(96, 128, seed=4), tmp_path / "photo.png")
    red = write_image(tinted((0.9, 0.25, 0.15)), tmp_path / "red.png")
    blue = write_image(tinted((0.15, 0.3, 0.9)), tmp_path / "blue.png")
    out_red = np.asarray(fastnst.stylize(photo, style=str(red)), np.float32) / 255
    out_blue = np.asarray(fastnst.stylize(photo, style=str(blue)), np.float32) / 255
    assert out_red.shape == (96, 128, 3)
    # Each result takes its painting's hue: the painting is not ignored.
    assert out_red[..., 0].mean() > out_red[..., 2].mean() + 0.05
    assert out_blue[..., 2].mean() > out_blue[..., 0].mean() + 0.2
    assert out_red[..., 0].mean() > out_blue[..., 0].mean() + 0.1
    assert out_blue[..., 2].mean() > out_red[..., 2].mean() + 0.2
    # The options apply as to any style: strength 0 is the photo, preserve_color its colours.
    model = fastnst.load(str(red))
    assert model.style == "red"
    plain = read_image(photo)[0].permute(1, 2, 0).numpy()
    none = np.asarray(model.image(photo, strength=0.0), np.float32) / 255
    assert np.abs(none - plain).max() < 2 / 255
    kept = np.asarray(model.image(photo, preserve_color=True), np.float32) / 255
    assert abs(kept[..., 0].mean() - kept[..., 2].mean()) < \
        abs(out_red[..., 0].mean() - out_red[..., 2].mean()) / 3


def test_fastnst_infer_paints_photos_and_videos_with_any_painting(
        vgg_weights, shipped_painter, tmp_path, capsys):
    import cv2
    from helpers import smooth_image, tinted

    from fastnst.images import read_image, write_image
    from fastnst.infer import main

    photo = write_image(smooth_image(80, 120, seed=2), tmp_path / "photo.jpg")
    painting = write_image(tinted((0.9, 0.8, 0.1)), tmp_path / "art" / "sun.png")
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 48))
    for i in range(3):
        writer.write(np.roll(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4,
                                     (48, 1, 3)), 3 * i, axis=1))
    writer.release()
    assert main([str(photo), str(clip), "--style", str(painting), "-o", str(tmp_path)]) == 0
    out = read_image(tmp_path / "photo_sun.jpg")
    assert out.shape[-2:] == (80, 120)
    assert out[0, 2].mean() < out[0, 0].mean() - 0.2  # yellow: little blue
    capture = cv2.VideoCapture(str(tmp_path / "clip_sun.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 3
    # Tiles run (whitened with the whole picture's statistics: tested above) and keep the hue;
    # tiles smaller than relu4_1's reach (about 200 px) change the strokes, so no closer match.
    assert main([str(photo), "--style", str(painting), "--stroke", "0", "--tile", "64",
                 "--overlap", "16",
                 "-o", str(tmp_path / "tiled.png")]) == 0
    assert main([str(photo), "--style", str(painting), "--stroke", "0",
                 "-o", str(tmp_path / "whole.png")]) == 0
    tiled, whole = (read_image(tmp_path / n) for n in ("tiled.png", "whole.png"))
    assert tiled.shape == whole.shape and tiled[0, 2].mean() < tiled[0, 0].mean() - 0.2
    # On ONNX Runtime, the painter's graph (exported once, cached): PyTorch's result within the
    # graph's tolerance, before the enlargement (fastnst.upsample) both share.
    assert main([str(photo), "--style", str(painting), "--backend", "onnx", "-o",
                 str(tmp_path / "onnx.png")]) == 0
    assert main([str(photo), "--style", str(painting), "-o", str(tmp_path / "torch.png")]) == 0
    on_onnx, on_torch = (read_image(tmp_path / n) for n in ("onnx.png", "torch.png"))
    assert on_onnx.shape == on_torch.shape
    assert (on_onnx - on_torch).abs().max() < 4 / 255
