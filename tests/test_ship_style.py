"""scripts/ship_style.py: shipping a model trained from a painting given by path."""

from __future__ import annotations

import importlib

import pytest
from helpers import REPO, smooth_image, stripes, tiny_model
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from fastnst.images import write_image
from fastnst.model_files import load_model, read_metadata, save_model
from fastnst.paintings import expand_style_path


@pytest.fixture
def ship_style(monkeypatch):
    """The script as a module (scripts/ on sys.path, as when it runs)."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("ship_style")


def trained_from_path(tmp_path, painting, photos, with_training=True, steps=7):
    """A tiny model file with the metadata fastnst.train writes for `style=<painting path>`,
    after `steps` of a 7-step schedule."""
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose("train", overrides=expand_style_path(
            [f"style={painting}", f"data.root={photos}", "data.crop_size=32",
             "trainer.max_steps=7"]))
    config = OmegaConf.to_container(cfg, resolve=True)
    net, _ = load_model(tiny_model(tmp_path / "tiny.safetensors"))
    extra = {"training": config} if with_training else {}
    extra |= {"steps": steps, "losses": {"content": 2.0, "style": 1.25, "tv": 0.0, "total": 3.25},
              "seconds": 90.0, "skipped_images": 0, "processes": 1, "precision": "32-true",
              "hardware": "Test Accelerator 9000"}
    return save_model(net, tmp_path / "run" / f"{painting.stem}.safetensors",
                      cfg.style.name, extra=extra)


@pytest.mark.slow  # exports and verifies ONNX
def test_ships_a_model_trained_from_a_painting_path(ship_style, tmp_path):
    painting, photos, photo = tmp_path / "harbour_at_dusk.png", tmp_path / "photos", \
        tmp_path / "street.png"
    write_image(stripes(40, 56), painting)
    photos.mkdir()
    for i in range(3):
        write_image(smooth_image(36, 48, seed=i), photos / f"p{i}.jpg")
    write_image(smooth_image(30, 44), photo)
    model = trained_from_path(tmp_path, painting, photos)

    ship_style.main([str(model), "--out", str(tmp_path / "out"), "--photo", str(photo),
                     "--photo-size", "40"])

    shipped = tmp_path / "out" / "harbour_at_dusk.safetensors"
    assert read_metadata(shipped)["style"] == "harbour_at_dusk"
    assert load_model(shipped)[0].config == load_model(model)[0].config
    text = (tmp_path / "out" / "harbour_at_dusk.md").read_text()
    assert text.startswith("# harbour_at_dusk\n")
    assert "**Style image:** `harbour_at_dusk.png`, given by path when training" in text
    assert "http" not in text and "md5" not in text  # no URL for a painting given by path
    assert "7 steps of 4 crops of 32 px" in text
    assert "on Test Accelerator 9000 (32-true precision), 90 s;" in text
    assert f"data: the 3 photos of {ship_style.shown_folder(str(photos))}." in text
    assert "total 3.25, content 2, style 1.25" in text
    assert "on street.png at 40 px" in text
    for fixed in ("3,440", "shared/data/train", "MS-COCO", "chicago"):  # no hard-coded data set
        assert fixed not in text
    # A run stopped by its time limit before its schedule's end says so.
    (tmp_path / "stopped").mkdir()
    stopped = trained_from_path(tmp_path / "stopped", painting, photos, steps=3)
    ship_style.main([str(stopped), "--out", str(tmp_path / "out2"), "--photo", str(photo),
                     "--photo-size", "40", "--hardware", "ignored: the metadata names it"])
    text = (tmp_path / "out2" / "harbour_at_dusk.md").read_text()
    assert "3 (of 7 planned: stopped at its time limit" in text
    assert "Test Accelerator 9000" in text


def test_refuses_an_unknown_style_without_its_painting(ship_style, tmp_path):
    painting, photo = tmp_path / "unknown_painting.png", tmp_path / "street.png"
    write_image(smooth_image(30, 44), photo)
    model = trained_from_path(tmp_path, painting, tmp_path, with_training=False)
    with pytest.raises(SystemExit) as exit_info:
        ship_style.main([str(model), "--out", str(tmp_path / "out"), "--photo", str(photo)])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow  # exports and verifies ONNX
def test_ships_a_multi_style_model_with_its_styles_in_the_card(ship_style, tmp_path):
    photo = tmp_path / "street.png"
    write_image(smooth_image(30, 44), photo)
    multi = tiny_model(tmp_path / "blends.safetensors", channels=12, blocks=1, design="fast",
                       styles=("starry_night", "mosaic"))
    ship_style.main([str(multi), "--out", str(tmp_path / "out"), "--photo", str(photo),
                     "--photo-size", "40"])
    shipped = tmp_path / "out" / "blends.safetensors"
    assert read_metadata(shipped)["styles"] == ["starry_night", "mosaic"]
    net, _ = load_model(shipped)
    assert net.config.styles == 2 and next(iter(net.state_dict().values())).dtype.is_floating_point
    text = (tmp_path / "out" / "blends.md").read_text()
    assert "**Styles** (2, in the order of the `style_weights` input): `starry_night` (The" \
           " Starry Night, Vincent van Gogh), `mosaic`" in text
    assert "multi-style: conditional instance norm" in text and "Style image" not in text


def test_the_card_names_a_pixel_term_and_the_teachers_targets(ship_style):
    assert ship_style.pixel_words({"loss": {"pixel_weight": 0.0}}) == ""
    words = ship_style.pixel_words({"teacher": "udnie",
                                    "loss": {"pixel_weight": 1e8, "pixel_pool": 4}})
    assert words == (", pixel weight 1e+08 on 4 x 4 block means; the content and pixel targets"
                     " are the `udnie` network's results, not the photos")
    assert ship_style.pixel_words({"teacher": "udnie", "loss": {}}) == (
        "; the content targets are the `udnie` network's results, not the photos")


def test_start_words_name_what_the_init_file_was_trained_towards(ship_style, tmp_path):
    net, _ = load_model(tiny_model(tmp_path / "tiny.safetensors"))
    runs = {"plain": {}, "towards": {"teacher": "udnie"},
            "multi": {"teacher": "udnie", "styles": ["udnie", "mosaic"]}}
    words = {}
    for name, training in runs.items():
        init = save_model(net, tmp_path / f"{name}.safetensors", "udnie",
                          extra={"training": training, "steps": 5, "seconds": 120.0})
        words[name] = ship_style.start_words({"init": str(init)})
    assert words["plain"] == " Started from `plain.safetensors` (5 steps of training, 2 minutes)."
    assert "(5 steps of training towards the `udnie` network, 2 minutes)" in words["towards"]
    assert "distillation from each style's network" not in words["towards"]
    assert "(5 steps of distillation from each style's network" in words["multi"]
    assert ship_style.start_words({"teacher": "udnie"}) == " Distilled from the `udnie` network."
    assert ship_style.start_words({}) == ""
    # A multi-style run taught by each style's fast network, with factors of its own.
    fast = {"teacher": "fast", "styles": "all", "style_factor": 1,
            "style_factors": {"mosaic": 14}, "loss": {"pixel_weight": 1e8, "pixel_pool": 4}}
    assert ship_style.start_words(fast) == " Taught by each style's fast network."
    assert ship_style.pixel_words(fast).endswith(
        "targets are each style's fast network's results, not the photos")
    assert ship_style.factors_words(fast, ["udnie", "mosaic"]) == " times 1 (udnie), 14 (mosaic)"
    assert ship_style.factors_words({"style_factor": 16}, ["udnie"]) == " times 16"
