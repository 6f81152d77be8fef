"""Stylizing with a model: both backends agree, tiles blend without seams, colour and strength."""

from __future__ import annotations

import pytest
import torch
from conftest import smooth_image, tiny_model

from fastnst.color import rgb_to_yiq
from fastnst.export import export_onnx
from fastnst.styles import ModelFileError, load_model
from fastnst.stylizer import load_backend, run_tiled, stylize


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.safetensors")


class Pointwise:
    """A stand-in model whose output at a pixel depends only on that pixel."""

    style = "pointwise"

    def __call__(self, image):
        return image * 0.5 + 0.25


def test_onnx_and_torch_backends_agree(model, tmp_path):
    export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
    photo = smooth_image(45, 61)
    a = stylize(load_backend(str(model)), photo)
    b = stylize(load_backend(str(tmp_path / "tiny.onnx")), photo)
    assert a.shape == b.shape == photo.shape
    assert (a - b).abs().max() <= 1e-3
    with pytest.warns(UserWarning, match="tiles are normalised separately"):
        stylize(load_backend(str(tmp_path / "tiny.onnx")), photo, tile=32, overlap=8)
    # Tiny images work on both (the ONNX graph needs 5 px a side: padded outside it).
    tiny = smooth_image(3, 2)
    torch.testing.assert_close(stylize(load_backend(str(tmp_path / "tiny.onnx")), tiny),
                               stylize(load_backend(str(model)), tiny), atol=1e-3, rtol=0)


def test_tile_weights_cover_every_pixel_exactly_once():
    image = smooth_image(150, 230)
    torch.testing.assert_close(run_tiled(Pointwise(), image, tile=64, overlap=16),
                               Pointwise()(image))


def test_tiled_and_whole_outputs_differ_little_and_show_no_seams(model):
    # Tiles are normalised with the whole image's statistics, so they differ from the whole
    # image only where a convolution near a tile's edge misses the neighbour's pixels, which
    # the 32-px cross-fade hides. Measured here: mean |difference| 0.007 (0.22 when each tile
    # uses its own statistics); with the 60-minute starry_night model on golden_gate at 1024 px
    # in 512-px tiles: 0.0009 (0.10). The limit 0.02 is 5 levels of 255.
    # A seam would show as a jump along the tile borders: the change from one pixel column to
    # the next is no larger there than elsewhere.
    backend = load_backend(str(model))
    photo = smooth_image(300, 400)
    whole = stylize(backend, photo)
    tiled = stylize(backend, photo, tile=128, overlap=32)
    assert (whole - tiled).abs().mean() < 0.02
    step = (tiled[..., :, 1:] - tiled[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column
    borders = [96, 128, 192, 224, 288, 320]  # where tiles start and end (tile 128, step 96)
    assert step[borders].mean() < 1.5 * step.mean()


def test_preserve_color_keeps_the_photo_chroma_and_strength_blends(model):
    backend = load_backend(str(model))
    photo = smooth_image(40, 56)
    kept, plain = stylize(backend, photo, preserve_color=True), stylize(backend, photo)
    chroma = rgb_to_yiq(photo)[:, 1:]
    assert (rgb_to_yiq(kept)[:, 1:] - chroma).abs().mean() < 0.01  # up to clamping
    assert (rgb_to_yiq(plain)[:, 1:] - chroma).abs().mean() > 0.03
    torch.testing.assert_close(stylize(backend, photo, strength=0.0), photo)
    full = stylize(backend, photo)
    torch.testing.assert_close(stylize(backend, photo, strength=0.5), (full + photo) / 2)
    with pytest.raises(ValueError, match="strength"):
        stylize(backend, photo, strength=1.5)


def test_non_model_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"bad\.onnx: not a loadable ONNX model"):
        load_backend(str(bad))
