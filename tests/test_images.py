"""Image reading (modes, formats, EXIF, size limits), atomic writing and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile import make_corpus, missing, png_declaring
from PIL import Image

from fastnst import images
from fastnst.images import ImageError, read_image, resize_long_side, write_image

RGB = (200, 100, 50)


def _solid(mode: str, size=(8, 6), color=RGB) -> Image.Image:
    if mode == "1":
        return Image.new("1", size, 1)
    img = Image.new("RGB", size, color)
    return img.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else img.convert(mode)


def _assert_color(x: torch.Tensor, rgb, atol=2 / 255):
    assert x.shape[:2] == (1, 3) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    expected = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1) / 255
    torch.testing.assert_close(x, expected.expand_as(x), atol=atol, rtol=0)


@pytest.mark.parametrize(("suffix", "mode", "expected"), [
    (".jpg", "RGB", RGB), (".png", "RGB", RGB), (".webp", "RGB", RGB), (".tif", "RGB", RGB),
    (".bmp", "RGB", RGB), (".png", "P", RGB), (".gif", "P", RGB),
    (".png", "L", (124, 124, 124)), (".jpg", "L", (124, 124, 124)), (".png", "1", (255,) * 3),
])
def test_reads_common_formats_and_modes_as_rgb(tmp_path, suffix, mode, expected):
    path = tmp_path / f"img{suffix}"
    options = {"quality": 100} if suffix in (".jpg", ".webp") else {}
    if suffix == ".webp":
        options["lossless"] = True
    _solid(mode).save(path, **options)
    x = read_image(path)
    assert x.shape == (1, 3, 6, 8)
    _assert_color(x, expected, atol=4 / 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    _solid("CMYK").save(path, quality=100)
    assert Image.open(path).mode == "CMYK"
    _assert_color(read_image(path), RGB, atol=6 / 255)


def test_16_bit_png_keeps_its_range(tmp_path):
    # A 16-bit gray value of one quarter; an 8-bit conversion would clip it to white.
    path = tmp_path / "gray16.png"
    Image.fromarray(np.full((5, 7), 16384, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    _assert_color(read_image(path), (0.25 * 255,) * 3, atol=1e-4)


def test_transparency_is_composited_over_white(tmp_path):
    path = tmp_path / "rgba.png"
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., :3] = RGB
    arr[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    Image.fromarray(arr, "RGBA").save(path)
    x = read_image(path)
    _assert_color(x[..., :2, :], RGB)
    _assert_color(x[..., 2:, :], (255, 255, 255))


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(path, exif=exif, quality=100)
    x = read_image(path)
    assert x.shape == (1, 3, 40, 20)
    assert x[0, 2, 5, 10] > 0.9 and x[0, 0, 35, 10] > 0.9  # blue on top after the rotation


def test_max_size_shrinks_the_long_side_but_never_enlarges(tmp_path):
    path = tmp_path / "wide.png"
    _solid("RGB", size=(400, 200)).save(path)
    assert read_image(path, max_size=100).shape == (1, 3, 50, 100)
    assert read_image(path, max_size=1000).shape == (1, 3, 200, 400)


def test_large_jpeg_is_decoded_at_reduced_scale_and_resized(tmp_path):
    path = tmp_path / "big.jpg"
    _solid("RGB", size=(3000, 2000)).save(path)
    x = read_image(path, max_size=300)
    assert x.shape == (1, 3, 200, 300)
    _assert_color(x, RGB, atol=4 / 255)


def test_resize_long_side_keeps_aspect():
    x = torch.rand(1, 3, 30, 60)
    assert resize_long_side(x, 20).shape == (1, 3, 10, 20)
    assert resize_long_side(x, 120).shape == (1, 3, 60, 120)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp"])
def test_write_then_read_round_trips(tmp_path, suffix):
    from helpers import smooth_image

    x = smooth_image(16, 24)
    path = write_image(x, tmp_path / f"out{suffix}", quality=100)
    y = read_image(path)
    assert y.shape == x.shape
    if suffix in (".png", ".tif", ".bmp"):  # lossless: only the 8-bit rounding
        assert (y - x).abs().max() <= 0.5 / 255 + 1e-6
    else:  # lossy, with subsampled chroma
        assert (y - x).abs().mean() <= 0.02
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temp file left


def test_written_files_get_the_usual_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = write_image(torch.rand(1, 3, 4, 4), tmp_path / "out.png")
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600


def test_write_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ImageError, match=r"out\.xyz: unknown output format"):
        write_image(torch.rand(1, 3, 4, 4), tmp_path / "out.xyz")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    write_image(torch.zeros(1, 3, 8, 8), path)
    before = path.read_bytes()

    def crash_mid_write(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        write_image(torch.ones(1, 3, 8, 8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return [*make_corpus(root), missing(root)]


def test_hostile_corpus_is_read_or_refused_in_one_line(corpus):
    assert len(corpus) >= 20
    for case in corpus:
        if case.valid:
            x = read_image(case.path)
            assert x.shape == (1, 3, *case.size), case.name
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0, case.name
            continue
        with pytest.raises(ImageError) as info:
            read_image(case.path)
        message = str(info.value)
        assert message.startswith(f"{os.fsdecode(case.path)}: "), case.name
        assert case.problem in message and "\n" not in message, (case.name, message)
        assert info.value.path == case.path


def test_over_the_pixel_limit_says_by_how_much(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_declaring(13_000, 12_000))
    with pytest.raises(ImageError, match="13000x12000 \\(156 MP\\), over the 150 MP limit"):
        read_image(path)


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "small.png"
    _solid("RGB", size=(20, 20)).save(path)
    with pytest.raises(ImageError, match="over the"):
        read_image(path, max_pixels=100)
    assert images.MAX_PIXELS > 8000 * 6000  # a 48 MP photo is fine by default


# --- property-based: any bytes give an image or an ImageError; valid images read back right ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TMP_OK = [HealthCheck.function_scoped_fixture]  # each example overwrites its own file

_HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
            b"II*\x00", b"BM"]


@settings(max_examples=150, deadline=None, suppress_health_check=_TMP_OK)
@given(header=st.sampled_from(_HEADERS), body=st.binary(max_size=2048))
def test_any_bytes_give_an_image_or_an_image_error(tmp_path, header, body):
    path = tmp_path / "fuzz.img"
    path.write_bytes(header + body)
    try:
        x = read_image(path)
    except ImageError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
    else:
        assert x.dim() == 4 and x.shape[:2] == (1, 3)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=_TMP_OK)
@given(width=st.integers(1, 40), height=st.integers(1, 40),
       mode=st.sampled_from(["RGB", "L", "RGBA", "P"]), suffix=st.sampled_from([".png", ".tif",
                                                                               ".bmp", ".gif"]),
       seed=st.integers(0, 2**16))
def test_random_valid_images_read_back_exactly(tmp_path, width, height, mode, suffix, seed):
    if suffix == ".bmp" and mode == "RGBA":
        mode = "RGB"
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "P" or suffix == ".gif":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE)
        expected = np.asarray(img.convert("RGB"))
    elif mode == "L":
        img = img.convert("L")
        expected = np.repeat(np.asarray(img)[..., None], 3, axis=2)
    elif mode == "RGBA":
        img = img.convert("RGBA")  # fully opaque: compositing must not change anything
        expected = rgb
    else:
        expected = rgb
    path = tmp_path / f"valid{suffix}"
    img.save(path)
    x = read_image(path)
    assert x.shape == (1, 3, height, width)
    got = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_grid_sizes_rows_and_columns_to_their_largest_image():
    from fastnst.images import grid

    a, b, c = torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 6, 8), torch.zeros(1, 3, 12, 4)
    out = grid([[a, b], [c]], gap=2)
    assert out.shape == (1, 3, 10 + 2 + 12, 20 + 2 + 8)
    assert out[..., 0:10, 0:20].max() == 0  # a fills its cell
    assert out[..., 12:24, 8:12].max() == 0 and out[..., 12:24, 0:8].min() == 1  # c centred
    assert out[..., 10:12, :].min() == 1  # the gap is white
