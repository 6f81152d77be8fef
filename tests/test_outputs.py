"""No command deletes or replaces what the user had (issue 30, section 1): the clean-up of
killed writes removes only fastnst's own temporary files, and every command (infer, Gatys,
training, export) refuses an output that is one of its inputs, keeps an existing one unless
told to overwrite, and says what a broken link at the output is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import smooth_image, stripes, tiny_model
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

from fastnst import export, infer
from fastnst.config_checks import ConfigError
from fastnst.files import STALE_SECONDS, OutputExists, WriteError, atomic_path, check_output
from fastnst.images import read_image, write_image
from fastnst.paintings import expand_style_path

OLD = STALE_SECONDS + 3600  # two hours: what the probe's files were


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


# --- The clean-up of killed writes ---------------------------------------------------------


def _left_by_a_killed_write(dest: Path) -> Path:
    """The temporary file a write to `dest` killed mid-way leaves: made by atomic_path itself."""
    from fastnst.files import _create_temporary

    return _create_temporary(dest)


def test_the_clean_up_removes_only_temporary_files_that_fastnst_made(tmp_path):
    dest = tmp_path / "photo_tiny.png"
    stale = _left_by_a_killed_write(dest)
    _left_by_a_killed_write(dest)  # another run's, writing now: kept
    _age(stale, OLD)
    # The user's own files, two hours old: the probe's three, and near misses of our naming.
    users = [".notes.20240101.tmp", ".thesis.tex.autosave.tmp.tex",
             ".backup.tar.gz.20240101.tmp.gz", ".photo_tiny.png.ab3_x9zq.tmp.png",
             ".photo_tiny.png.backup", "photo_tiny.png.tmp"]
    for name in users:
        (tmp_path / name).write_bytes(b"the user's")
    # Our exact pattern with wrong check digits, and with right ones but not as we make them:
    # readable by others (a user's copy), and with a second name (a hard link).
    forged = tmp_path / (stale.name[:-12] + "0000.tmp.png")
    copied = tmp_path / stale.name.replace("photo_tiny", "copy_tiny")
    forged.write_bytes(b"the user's")
    copied.write_bytes(stale.read_bytes())
    os.chmod(copied, 0o644)
    linked = _left_by_a_killed_write(tmp_path / "linked.png")
    os.link(linked, tmp_path / "kept.png")
    os.chmod(tmp_path / users[0], 0o600)  # private, but not our naming
    for path in [*(tmp_path / n for n in users), forged, copied, linked]:
        _age(path, OLD)
    before = {p.name for p in tmp_path.iterdir()}
    write_image(smooth_image(8, 8), dest)
    assert {p.name for p in tmp_path.iterdir()} == (before - {stale.name}) | {dest.name}


def test_a_temporary_name_fits_any_legal_output_name(tmp_path):
    for name in ["x" * 251 + ".png", "é" * 125 + ".png", "a" * 200 + "." + "b" * 50]:
        with atomic_path(tmp_path / name) as tmp:
            assert len(os.fsencode(tmp.name)) <= 255 and tmp.name.startswith(".")
            tmp.write_text("x")
        assert (tmp_path / name).read_text() == "x"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- The one check of an output ------------------------------------------------------------


def test_check_output_refuses_inputs_folders_links_and_existing_files(tmp_path):
    photo = write_image(smooth_image(8, 8), tmp_path / "photo.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / "alias.png").symlink_to(photo)
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone" / "x.png")
    for output, inputs in [(photo, [photo]), (tmp_path / "sub" / ".." / "photo.png", [photo]),
                           (tmp_path / "alias.png", [photo])]:
        with pytest.raises(WriteError, match="is one of this run's inputs"):
            check_output(output, inputs, overwrite=True)
    with pytest.raises(WriteError, match=r"dangling\.png \(a link to .*gone/x\.png\): is a broken"
                                         r" link; not written \(--overwrite replaces the link\)"):
        check_output(tmp_path / "dangling.png")
    check_output(tmp_path / "dangling.png", overwrite=True)  # the link is replaced, not followed
    with pytest.raises(WriteError, match=r"sub: is a directory"):
        check_output(tmp_path / "sub", overwrite=True)
    with pytest.raises(OutputExists, match=r"photo\.png: exists; kept \(overwrite=true replaces"):
        check_output(photo, overwrite_with="overwrite=true")
    check_output(photo, overwrite=True)
    check_output(tmp_path / "new" / "deeper" / "x.png")


# --- fastnst-infer -------------------------------------------------------------------------


def test_infer_says_what_a_broken_link_at_the_output_is(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.safetensors")
    photo = write_image(smooth_image(24, 32), tmp_path / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "photo_tiny.png"
    link.symlink_to(tmp_path / "nowhere.png")
    assert infer.main([str(photo), "--style", str(model), "-o", str(out), "-q"]) == 1
    printed = capsys.readouterr()
    assert "is a broken link; not written" in printed.err and "kept" not in printed.out
    assert "0 written, 1 failed" in printed.out and link.is_symlink()
    assert infer.main([str(photo), "--style", str(model), "-o", str(out), "-q",
                       "--overwrite"]) == 0
    assert not link.is_symlink() and read_image(link).shape == (1, 3, 24, 32)
    assert not (tmp_path / "nowhere.png").exists()  # replaced, not written through


def test_infer_never_replaces_the_painting_or_model_it_paints_with(vgg_weights, tmp_path,
                                                                   capsys):
    photo = write_image(smooth_image(24, 32), tmp_path / "photo.png")
    painting = write_image(stripes(32, 32), tmp_path / "art.png")
    model = tiny_model(tmp_path / "tiny.safetensors")
    before = {p: p.read_bytes() for p in (photo, painting, model)}
    for style, output in ((painting, painting), (painting, tmp_path / "." / "art.png"),
                          (model, tmp_path / "tiny.safetensors")):
        code = infer.main([str(photo), "--style", str(style), "-o", str(output), "-q",
                           "--overwrite"])
        printed = capsys.readouterr()
        assert code != 0, output
        assert "style file" in printed.err or "is a file" in printed.err or \
            "not a folder" in printed.err, printed.err
    # A folder run whose default names would land on a painting: skipped, the others written.
    plan = infer.plan([(photo, None)], tmp_path, ["art"], [tmp_path / "photo_art.png"])
    assert plan.jobs == [] and "this run's style files" in plan.failed[0]
    assert {p: p.read_bytes() for p in before} == before


# --- fastnst-export ------------------------------------------------------------------------


@pytest.mark.slow  # a subprocess, or seconds of work
def test_export_keeps_an_existing_file_and_makes_a_folder_to_be(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.safetensors")
    kept = tmp_path / "mine.onnx"
    kept.write_bytes(b"the user's")
    assert export.main(["--style", str(model), "-o", str(kept)]) == 1
    assert "mine.onnx: exists; kept (--overwrite replaces it)" in capsys.readouterr().err
    assert kept.read_bytes() == b"the user's"
    assert export.main(["--style", str(model), "-o", str(tmp_path / "new") + "/"]) == 0
    assert (tmp_path / "new" / "tiny.onnx").is_file()
    assert export.main(["--style", str(model), "-o", str(kept), "--overwrite"]) == 0
    assert kept.read_bytes() != b"the user's"
    assert export.main(["--style", str(model), "-o", str(model)]) == 1  # .safetensors
    assert "an ONNX model is written as .onnx" in capsys.readouterr().err


# --- The Gatys baseline --------------------------------------------------------------------


def _gatys(*overrides: str):
    from fastnst.gatys import run

    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=expand_style_path(
            ["size=32", "progress=false", *overrides]))
    return run(cfg)


@pytest.fixture
def photo_and_painting(tmp_path) -> tuple[Path, Path]:
    return (write_image(smooth_image(32, 32), tmp_path / "photo.png"),
            write_image(stripes(32, 32), tmp_path / "painting.png"))


def test_gatys_never_replaces_its_photo_or_paintings(vgg_weights, tmp_path,
                                                     photo_and_painting):
    photo, painting = photo_and_painting
    other = write_image(stripes(24, 24), tmp_path / "other.png")
    before = {p: p.read_bytes() for p in (photo, painting, other)}
    # 10**6 iterations: refused before the optimisation, or the test would not end.
    for output in (photo, painting, other, tmp_path / "." / "photo.png"):
        with pytest.raises(WriteError, match="is one of this run's inputs"):
            _gatys(f"content={photo}", f"style={painting}", f"output={output}",
                   "iterations=1000000", "overwrite=true", f"blend={{{other}: 0.5}}")
    assert {p: p.read_bytes() for p in before} == before


def test_gatys_keeps_an_existing_output_and_snapshots_unless_overwrite(
        vgg_weights, tmp_path, photo_and_painting):
    photo, painting = photo_and_painting
    out = tmp_path / "result.png"
    out.write_bytes(b"the user's")
    base = [f"content={photo}", f"style={painting}", f"output={out}"]
    with pytest.raises(OutputExists, match=r"result\.png: exists; kept \(overwrite=true"):
        _gatys(*base, "iterations=1000000")
    assert out.read_bytes() == b"the user's"
    out.unlink()
    snapshot = tmp_path / "result.32px.iter0002.png"
    snapshot.write_bytes(b"the user's")
    with pytest.raises(OutputExists, match=r"result\.32px\.iter0002\.png: a snapshot this run"
                                           " would write exists; kept"):
        _gatys(*base, "iterations=1000000", "save_every=2")
    assert snapshot.read_bytes() == b"the user's" and not out.exists()
    # Snapshots this run would not write do not stop it (another size, iteration or cadence).
    _gatys(*base, "iterations=3", "save_every=3")
    assert snapshot.read_bytes() == b"the user's" and read_image(out).shape == (1, 3, 32, 32)
    _gatys(*base, "iterations=2", "save_every=2", "overwrite=true")
    assert read_image(snapshot).shape == (1, 3, 32, 32)


# --- Training ------------------------------------------------------------------------------


def _train(run_dir: Path, *overrides: str) -> Path | None:
    from fastnst.training.run import run

    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[
            *overrides, "data.crop_size=32", "data.short_side=40", "data.batch_size=1",
            "data.workers=0", "data.val_count=1", "data.val_size=32", "style_size=32",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
            f"hydra.runtime.output_dir={run_dir}"])
    HydraConfig.instance().set_config(cfg)
    return run(cfg)


@pytest.fixture
def photos(tmp_path) -> Path:
    for i in range(2):
        write_image(smooth_image(40, 48, seed=i), tmp_path / "photos" / f"p{i}.jpg")
    return tmp_path / "photos"


def test_training_checks_its_output_before_training(tmp_path, photos, photo_and_painting):
    photo, painting = photo_and_painting
    init = tiny_model(tmp_path / "init.safetensors")
    model = tiny_model(tmp_path / "other.safetensors")
    before = {p: p.read_bytes() for p in (photo, init, model)}
    base = [*expand_style_path([f"style={painting}"]), f"data.root={photos}",
            "trainer.max_steps=1000000", "model.channels=8", "model.blocks=2"]
    cases = [
        (photo, ConfigError, r"photo\.png: a model is written as \.safetensors"),
        (tmp_path / "model.onnx", ConfigError, r"model\.onnx: a model is written as"),
        (init, WriteError, "is one of this run's inputs"),
        (model, OutputExists, r"other\.safetensors: exists; kept \(overwrite=true replaces"),
        (tmp_path / ("m" * 300 + ".safetensors"), WriteError,
         r"m{40}\.\.\.: a name of 312 bytes; a file name has at most 255"),
    ]
    for output, error, message in cases:
        with pytest.raises(error, match=message):
            _train(tmp_path / "run", *base, f"init={init}", f"output={output}")
    with pytest.raises(WriteError, match="is one of this run's inputs"):  # even so
        _train(tmp_path / "run", *base, f"init={init}", f"output={init}", "overwrite=true")
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "model.onnx").exists()


def test_training_output_a_folder_to_be(vgg_weights, tmp_path, photos, photo_and_painting):
    _, painting = photo_and_painting
    base = [*expand_style_path([f"style={painting}"]), f"data.root={photos}",
            "trainer.max_steps=1", "model.channels=8", "model.blocks=1", "sample_every=1"]
    _train(tmp_path / "run", *base, f"output={tmp_path / 'newdir'}/")
    assert (tmp_path / "newdir" / "painting.safetensors").is_file()
    assert not (tmp_path / "newdir").is_file()


def _train_decoder(run_dir: Path, *overrides: str) -> Path | None:
    from fastnst.train_decoder import run

    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose("decoder", return_hydra_config=True, overrides=[
            *overrides, "layer=relu2_1", "data.crop_size=32", "data.short_side=40",
            "data.batch_size=1", "data.workers=0", "data.val_count=1", "data.val_size=32",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
            f"hydra.runtime.output_dir={run_dir}"])
    HydraConfig.instance().set_config(cfg)
    return run(cfg)


def test_decoder_training_checks_its_output_before_training(tmp_path, photos,
                                                            photo_and_painting):
    from safetensors.torch import save_file

    photo, painting = photo_and_painting
    init = tmp_path / "init.safetensors"
    save_file({"x": __import__("torch").zeros(1)}, str(init))
    other = tmp_path / "other.safetensors"
    other.write_bytes(init.read_bytes())
    before = {p: p.read_bytes() for p in (photo, painting, init, other)}
    base = [f"data.root={photos}", "trainer.max_steps=1000000", f"paintings=[{painting}]",
            f"init={init}"]
    cases = [
        (painting, ConfigError, r"painting\.png: a model is written as \.safetensors"),
        (init, WriteError, "is one of this run's inputs"),
        (photo.with_suffix(".jpg"), ConfigError, r"photo\.jpg: a model is written as"),
        (other, OutputExists, r"other\.safetensors: exists; kept \(overwrite=true replaces"),
    ]
    write_image(smooth_image(32, 32), photo.with_suffix(".jpg"))
    before[photo.with_suffix(".jpg")] = photo.with_suffix(".jpg").read_bytes()
    for output, error, message in cases:
        for extra in ([], ["overwrite=true"]):
            if error is OutputExists and extra:
                continue  # replacing a file that is no input is what overwrite=true is for
            with pytest.raises(error, match=message):
                _train_decoder(tmp_path / "run", *base, f"output={output}", *extra)
    assert {p: p.read_bytes() for p in before} == before


# --- Names too long for the file system ------------------------------------------------------


def test_names_too_long_are_one_line_and_long_inputs_get_outputs_that_fit(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.safetensors")
    photo = write_image(smooth_image(20, 24), tmp_path / ("p" * 250 + ".png"))  # legal: 254
    too_long = tmp_path / ("o" * 300 + ".png")
    assert infer.main([str(photo), "--style", str(model), "-o", str(too_long), "-q"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"fastnst-infer: error: {'o' * 40}...: a name of 304 bytes; a file name has at most 255"]
    assert export.main(["--style", str(model), "-o", str(tmp_path / ("e" * 300 + ".onnx"))]) == 1
    assert "a name of 305 bytes" in capsys.readouterr().err
    out = tmp_path / "out"
    assert infer.main([str(photo), "--style", str(model), "-o", str(out), "-q"]) == 0
    (written,) = out.iterdir()
    assert written.name.endswith("_tiny.png") and len(written.name) == 255
    # A legal output name of 254 bytes: the temporary name beside it is cut to fit.
    longest = tmp_path / ("l" * 250 + ".png")
    assert infer.main([str(photo), "--style", str(model), "-o", str(longest), "-q"]) == 0
    assert read_image(longest).shape == (1, 3, 20, 24)
