"""Style configs and paintings: lookup order, checked download, `style=<path>` overrides."""

from __future__ import annotations

import hashlib

import pytest
import torch
from helpers import stripes

from fastnst.download import cache_dir
from fastnst.images import write_image
from fastnst.paintings import (
    StyleError,
    expand_style_path,
    find_painting,
    load_painting,
    style_config,
    style_names,
)

SHIPPED_IMAGES = {"starry_night", "great_wave", "the_scream", "composition_vii", "shipwreck",
                  "udnie", "woman_with_hat", "la_muse", "rain_princess", "mosaic", "candy",
                  "feathers"}


def test_every_style_config_is_complete():
    assert set(style_names()) == SHIPPED_IMAGES
    for name in style_names():
        cfg = style_config(name)
        assert cfg.name == name and cfg.image == f"{name}.jpg"
        assert cfg.url.startswith("https://") and len(cfg.md5) == 32
        assert cfg.content_weight > 0 and cfg.style_weight > 0 and cfg.tv_weight >= 0


def test_every_painting_is_found_and_matches_its_md5(style_dir):
    for name in style_names():
        cfg = style_config(name)
        path = find_painting(cfg.image, cfg.url, cfg.md5)
        assert path.parent == style_dir
        assert hashlib.md5(path.read_bytes()).hexdigest() == cfg.md5, name


def test_unknown_style_lists_the_known_ones():
    with pytest.raises(StyleError, match=r"unknown style 'picasso'.*starry_night"):
        style_config("picasso")


def test_missing_painting_says_where_it_looked(tmp_path):
    with pytest.raises(StyleError, match="FASTNST_STYLE_DIR"):
        find_painting("nowhere.jpg")


def test_painting_is_downloaded_into_the_cache_once(tmp_path):
    served = tmp_path / "served.png"
    write_image(stripes(16, 16), served)
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    path = find_painting("painting.png", served.as_uri(), md5)
    assert path == cache_dir() / "styles" / "painting.png"
    served.unlink()  # a second lookup finds the cached copy
    assert find_painting("painting.png", served.as_uri(), md5) == path


def test_painting_with_a_wrong_checksum_is_refused(tmp_path):
    served = tmp_path / "served.png"
    write_image(stripes(16, 16), served)
    with pytest.raises(StyleError, match="md5"):
        find_painting("painting.png", served.as_uri(), "0" * 32)


def test_load_painting_takes_names_and_paths(style_dir, tmp_path):
    assert load_painting("mosaic", max_size=64).shape[-1] == 64
    path = tmp_path / "mine.png"
    write_image(stripes(20, 30), path)
    assert load_painting(str(path)).shape == (1, 3, 20, 30)


def test_style_path_override_becomes_the_generic_image_style(tmp_path):
    from hydra import compose, initialize_config_module

    path = tmp_path / "it's a=b painting.jpg"
    out = expand_style_path(["content=a.jpg", f"style={path}"])
    assert out[0] == "content=a.jpg" and out[1] == "style=image"
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=out)
    assert cfg.style.image == str(path) and cfg.style.name == "it's a=b painting"
    assert expand_style_path(["style=starry_night"]) == ["style=starry_night"]


def test_a_path_with_a_folder_must_be_that_file_not_a_namesake_elsewhere(tmp_path, monkeypatch):
    styles = tmp_path / "styles"
    write_image(stripes(16, 16), styles / "udnie.jpg")
    monkeypatch.setenv("FASTNST_STYLE_DIR", str(styles))
    assert find_painting("udnie.jpg") == styles / "udnie.jpg"  # a bare name is looked for
    for typo in ("/no/such/dir/udnie.jpg", "no_dir/udnie.jpg", "./udnie.jpg"):
        with pytest.raises(StyleError, match=f"painting {typo}: no such file"):
            find_painting(typo)
    with pytest.raises(StyleError, match="not a file \\(a directory\\)"):
        find_painting(str(styles) + "/")
    monkeypatch.chdir(tmp_path)
    # As a training or Gatys override: a bare name stays bare (and is looked for), a path
    # is made absolute (and must exist).
    assert expand_style_path(["style=udnie.jpg"])[1] == "style.image='udnie.jpg'"
    assert expand_style_path(["style=x/udnie.jpg"])[1] == f"style.image='{tmp_path}/x/udnie.jpg'"


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` and holds no pixels: what a decoder sees
    first, before any pixel is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0)) + chunk(b"IEND", b""))


def test_paintings_too_small_thin_or_large_are_one_line_before_any_work(tmp_path, monkeypatch):
    """Third probe, sections 3 and 4: a 1x1 PNG, a 10000x3 panorama and a 132 MP PNG as
    paintings are ImageErrors naming the file and the size (the large one from its header,
    never decoded), in fastnst.load and in a decoder run's paintings= alike."""
    import fastnst
    from fastnst.images import ImageError
    from fastnst.train_decoder import training_paintings

    monkeypatch.setenv("FASTNST_VGG19", str(tmp_path / "no_weights.h5"))  # never reached
    write_image(torch.rand(1, 3, 1, 1), tmp_path / "dot.png")
    write_image(torch.rand(1, 3, 3, 10000), tmp_path / "pano.png")
    (tmp_path / "huge.png").write_bytes(_png_header(11500, 11500))
    cases = {"dot.png": "a painting of 1x1 pixels is too small or too thin",
             "pano.png": "a painting of 10000x3 pixels is too small or too thin",
             "huge.png": r"11500x11500 \(132 MP\), over the 40 MP limit"}
    for name, message in cases.items():
        with pytest.raises(ImageError, match=message):
            fastnst.load(str(tmp_path / name))
        with pytest.raises(ImageError, match=message):
            training_paintings([str(tmp_path / name)])
    with pytest.raises(ImageError, match="at least 16 pixels on its short side"):
        fastnst.load(str(tmp_path / "dot.png"))
