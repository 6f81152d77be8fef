"""`import fastnst`: stylize, load and list_styles, and the README's example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, smooth_image, tiny_model
from PIL import Image

import fastnst
from fastnst.images import to_pil, write_image


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.safetensors")


def test_a_path_a_pil_image_and_an_array_give_the_same_picture(model, tmp_path):
    photo = write_image(smooth_image(30, 40), tmp_path / "photo.png")
    from_path = fastnst.stylize(photo, style=str(model))
    pil = Image.open(photo)
    from_pil = fastnst.stylize(pil, style=str(model))
    from_array = fastnst.stylize(np.asarray(pil), style=str(model))
    assert from_path.size == (40, 30) and from_path.mode == "RGB"
    assert np.array_equal(np.asarray(from_path), np.asarray(from_pil))
    assert np.array_equal(np.asarray(from_path), np.asarray(from_array))
    assert not np.array_equal(np.asarray(from_path), np.asarray(pil))  # it did something
    assert fastnst.stylize(photo, style=str(model), max_size=20).size == (20, 15)
    # strength 0 gives the photo back
    assert np.abs(np.asarray(fastnst.stylize(photo, style=str(model), strength=0.0), int)
                  - np.asarray(pil, int)).max() <= 1


def test_load_gives_a_reusable_model_for_frames_on_both_backends(model):
    frame = np.asarray(to_pil(smooth_image(24, 32)))
    torch_model = fastnst.load(str(model))
    onnx_model = fastnst.load(str(model), backend="onnx")
    a, b = torch_model(frame), onnx_model(frame)
    assert a.shape == b.shape == (24, 32, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    assert torch_model.style == "tiny"
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB array"):
        torch_model(frame.astype(np.float32))


def test_the_api_blends_a_multi_style_model_like_the_command_line(tmp_path):
    multi = tiny_model(tmp_path / "multi.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b"))
    photo = write_image(smooth_image(24, 32), tmp_path / "photo.png")
    blend = fastnst.load("a:0.5,b:0.5", multi=str(multi))
    assert blend.style == "a50-b50"
    a, b, ab = (np.asarray(fastnst.stylize(photo, style=s, multi=str(multi)), float)
                for s in ("a", "b", "a:1,b:1"))
    assert np.abs(ab - np.asarray(blend.image(photo), float)).max() == 0
    assert np.abs(a - b).mean() > 3 and np.abs(ab - a).mean() < np.abs(b - a).mean()


def test_a_multi_style_model_alone_is_its_newest_style_in_the_api_and_the_cli(tmp_path,
                                                                              capsys):
    from fastnst import infer
    from fastnst.model_files import read_metadata, shipped_models

    multi = tiny_model(tmp_path / "grown.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b", "c"))
    photo = write_image(smooth_image(24, 32), tmp_path / "photo.png")
    assert fastnst.load(str(multi)).style == "c"
    assert np.array_equal(np.asarray(fastnst.stylize(photo, style=str(multi))),
                          np.asarray(fastnst.stylize(photo, style="c", multi=str(multi))))
    assert infer.main([str(photo), "--style", str(multi), "-o", str(tmp_path / "out"),
                       "-q"]) == 0
    assert (tmp_path / "out" / "photo_c.png").is_file()
    assert f"{multi} is a multi-style model of a, b, c; using its newest style, c" in \
        capsys.readouterr().err
    # The shipped one by name, the same rule.
    newest = read_metadata(shipped_models()["multi"])["styles"][-1]
    assert fastnst.load("multi").style == newest


def test_stylize_options_are_keywords_checked_like_the_flags(model, tmp_path):
    from fastnst.config_checks import ConfigError
    from fastnst.errors import UsageError

    photo = write_image(smooth_image(24, 32), tmp_path / "photo.png")
    with pytest.raises(ConfigError, match=r"strength=2: must be a number in \[0, 1\]"):
        fastnst.stylize(photo, style=str(model), strength=2)
    with pytest.raises(UsageError, match="strenght: not a stylize option; they are max_size"):
        fastnst.stylize(photo, style=str(model), strenght=0.5)


def test_list_styles_and_version():
    from fastnst.model_files import shipped_models

    assert fastnst.list_styles() == sorted(shipped_models()) and "starry_night" in \
        fastnst.list_styles()
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version and fastnst.__version__ == version.group(1)


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    write_image(smooth_image(48, 64), Path("photo.jpg"))
    exec(compile(code, "README.md", "exec"), {})
    assert Image.open("photo_starry_night.jpg").size == (64, 48)
    assert "(480, 640, 3) mosaic-fast" in capsys.readouterr().out
