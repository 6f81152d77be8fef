"""The Gatys per-image baseline: optimisers, coarse-to-fine, colour, averaging, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ctrl_c_default, smooth_image, stripes, wait_for_file
from hostile import make_corpus, missing

from fastnst.baseline import (
    GatysInterrupted,
    GatysOptions,
    GatysResult,
    level_sizes,
    style_weight_factor,
    stylize,
)
from fastnst.color import rgb_to_yiq
from fastnst.config_checks import ConfigError
from fastnst.images import read_image, write_image
from fastnst.losses import PerceptualLoss

STYLE_LAYERS = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0}


@pytest.fixture
def loss(vgg_weights) -> PerceptualLoss:
    return PerceptualLoss({"relu3_2": 1.0}, STYLE_LAYERS, style_weight=20.0)


def _total(result, level=-1, i=-1) -> float:
    return result.losses[level][i]["total"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisers_lower_the_loss(loss, optimizer):
    result = stylize(
        smooth_image(48, 64),
        [stripes(64, 64)],
        loss,
        GatysOptions(size=64, iterations=12, optimizer=optimizer),
        progress=False,
    )
    assert result.image.shape == (1, 3, 48, 64)
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1
    assert len(result.losses[0]) == 13  # before each iteration, and after the last
    assert _total(result) < 0.5 * _total(result, i=0)


def test_lbfgs_beats_adam_at_equal_iterations(loss):
    args = (smooth_image(48, 48), [stripes(48, 48)], loss)
    lbfgs = stylize(*args, GatysOptions(size=48, iterations=15, optimizer="lbfgs"), progress=False)
    adam = stylize(*args, GatysOptions(size=48, iterations=15, optimizer="adam"), progress=False)
    assert _total(lbfgs) < _total(adam)


def test_coarse_to_fine_starts_each_level_from_the_last(loss):
    result = stylize(
        smooth_image(60, 80),
        [stripes(64, 64)],
        loss,
        GatysOptions(size=80, levels=2, iterations=8),
        progress=False,
    )
    assert result.sizes == [40, 80] and level_sizes(1024, 3) == [256, 512, 1024]
    assert result.image.shape == (1, 3, 60, 80)
    assert result.iterations == 16
    # The fine level starts from the upsampled coarse result, far below a content start.
    plain = stylize(
        smooth_image(60, 80),
        [stripes(64, 64)],
        loss,
        GatysOptions(size=80, iterations=1),
        progress=False,
    )
    assert _total(result, level=1, i=0) < _total(plain, i=0)


def test_preserve_color_keeps_the_photo_chroma(loss):
    content = smooth_image(48, 48)
    result = stylize(
        content,
        [stripes(48, 48)],
        loss,
        GatysOptions(size=48, iterations=6, preserve_color=True),
        progress=False,
    )
    yiq_out, yiq_in = rgb_to_yiq(result.image), rgb_to_yiq(content)
    assert (yiq_out[:, 1:] - yiq_in[:, 1:]).abs().mean() < 0.01  # chroma kept (up to clamping)
    assert (yiq_out[:, :1] - yiq_in[:, :1]).abs().mean() > 0.01  # luminance stylized
    plain = stylize(
        content, [stripes(48, 48)], loss, GatysOptions(size=48, iterations=6), progress=False
    )
    assert (rgb_to_yiq(plain.image)[:, 1:] - yiq_in[:, 1:]).abs().mean() > 0.02


def test_average_returns_the_mean_of_the_last_iterates(loss):
    seen = []
    result = stylize(
        smooth_image(32, 32),
        [stripes(32, 32)],
        loss,
        GatysOptions(size=32, iterations=6, average=3),
        on_iteration=lambda size, i, img: seen.append(img.clone()),
        progress=False,
    )
    torch.testing.assert_close(result.image, torch.stack(seen[-3:]).mean(0).clamp(0, 1))


def test_style_weight_schedule_is_linear():
    assert style_weight_factor(0, 11, 0.0) == 1.0
    assert style_weight_factor(5, 11, 0.0) == pytest.approx(0.5)
    assert style_weight_factor(10, 11, 0.0) == 0.0
    assert style_weight_factor(10, 11, 1.0) == 1.0


def test_decaying_style_weight_is_used(loss):
    args = (smooth_image(32, 32), [stripes(32, 32)], loss)
    const = stylize(*args, GatysOptions(size=32, iterations=4), progress=False)
    decay = stylize(
        *args, GatysOptions(size=32, iterations=4, style_weight_end=0.25), progress=False
    )
    assert decay.losses[0][0]["style"] == pytest.approx(const.losses[0][0]["style"])
    assert decay.losses[0][-1]["style"] < const.losses[0][-1]["style"]


def test_noise_init_is_seeded(loss):
    args = (smooth_image(32, 32), [stripes(32, 32)], loss)
    options = [GatysOptions(size=32, iterations=2, init="noise", seed=s) for s in (1, 1, 2)]
    a, b, c = (stylize(*args, o, progress=False) for o in options)
    torch.testing.assert_close(a.image, b.image)
    assert (a.image - c.image).abs().max() > 0.1


def test_style_init_starts_from_the_painting(loss):
    result = stylize(
        smooth_image(32, 32),
        [stripes(32, 32)],
        loss,
        GatysOptions(size=32, iterations=1, init="style"),
        progress=False,
    )
    assert result.losses[0][0]["style"] < 1e-3 * result.losses[0][0]["content"]


def test_bad_options_are_rejected_in_one_line_naming_the_option():
    with pytest.raises(ConfigError, match=r"^optimizer='sgd': must be one of lbfgs, adam$"):
        GatysOptions(optimizer="sgd")
    with pytest.raises(ConfigError, match=r"^init='zeros': must be one of content, noise, style$"):
        GatysOptions(init="zeros")
    with pytest.raises(ConfigError, match=r"^levels=0: must be an integer in \[1, 10\]$"):
        GatysOptions(levels=0)


def test_ctrl_c_keeps_the_image_optimised_so_far(loss):
    content = smooth_image(24, 24)

    def ctrl_c_after_3(size: int, iteration: int, image: torch.Tensor) -> None:
        if iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(GatysInterrupted) as stop:
        stylize(
            content,
            [stripes(24, 24)],
            loss,
            GatysOptions(size=24, iterations=50),
            progress=False,
            on_iteration=ctrl_c_after_3,
        )
    assert (stop.value.done, stop.value.size, stop.value.result.iterations) == (3, 24, 3)
    image = stop.value.result.image
    assert image.shape == content.shape and 0 <= float(image.min()) <= float(image.max()) <= 1
    assert float((image - content).abs().mean()) > 0.01  # moved away from the photo
    assert isinstance(stop.value, KeyboardInterrupt)  # callers that only know Ctrl-C still work


def _cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "fastnst.gatys", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.slow  # a subprocess, or seconds of work
def test_cli_with_a_painting_path_writes_result_and_intermediates(vgg_weights, tmp_path):
    content, style = tmp_path / "photo.png", tmp_path / "my painting.png"
    write_image(smooth_image(40, 56), content)
    write_image(stripes(64, 64), style)
    out = tmp_path / "out" / "result.jpg"
    proc = _cli(f"content={content}", f"style={style}", f"output={out}", "size=48",
                "iterations=4", "save_every=2", "levels=2", "progress=false")
    assert proc.returncode == 0, proc.stderr
    assert read_image(out).shape == (1, 3, 34, 48)
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["result.24px.iter0002.jpg", "result.24px.iter0004.jpg",
                     "result.48px.iter0002.jpg", "result.48px.iter0004.jpg", "result.jpg"]
    assert f"wrote {out}" in proc.stdout


@pytest.mark.slow  # a subprocess, or seconds of work
def test_cli_ctrl_c_writes_the_result_so_far_and_says_where(vgg_weights, tmp_path, reap):
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    write_image(smooth_image(40, 56), content)
    write_image(stripes(64, 64), style)
    out = tmp_path / "out" / "result.png"
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.gatys", f"content={content}",
                             f"style={style}", f"output={out}", "size=48", "iterations=100000",
                             "save_every=1", "progress=false"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_default)
    reap(proc)
    third = out.with_name("result.48px.iter0003.png")
    wait_for_file(third, proc)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    line = err.strip().splitlines()[-1]
    done = int(line.split("after ")[1].split(" of")[0])
    assert line == (f"fastnst-gatys: interrupted after {done} of 100000 iterations at 48 px;"
                    f" the result so far is in {out}")
    assert done >= 3 and read_image(out).shape == (1, 3, 34, 48)
    kept = {p.name for p in out.parent.iterdir()}
    assert {"result.png", third.name} <= kept and not [n for n in kept if ".tmp" in n]


@pytest.mark.slow  # a subprocess, or seconds of work
def test_cli_with_a_named_style_and_blend(vgg_weights, style_dir, tmp_path, monkeypatch):
    content = tmp_path / "photo.png"
    write_image(smooth_image(32, 32), content)
    monkeypatch.chdir(tmp_path)  # the default output goes to the working directory
    proc = _cli(f"content={content}", "style=starry_night", "blend={the_scream: 0.5}",
                "size=32", "iterations=2", "preserve_color=true", "progress=false",
                env_extra={"FASTNST_STYLE_DIR": str(style_dir)})
    assert proc.returncode == 0, proc.stderr
    # Relative output: <photo stem>_<style>.png in the working directory.
    assert "wrote photo_starry_night.png" in proc.stdout
    assert (tmp_path / "photo_starry_night.png").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["content=/no/such/photo.jpg"], "/no/such/photo.jpg: no such file"),
    ([], "no photo: give content=PHOTO"),
    (["style=/no/such/painting.jpg", "content=PHOTO"],
     "painting /no/such/painting.jpg: no such file"),
    # udnie.jpg is in $FASTNST_STYLE_DIR: a mistyped folder must not fall back to it.
    (["style=/no/such/dir/udnie.jpg", "content=PHOTO"],
     "painting /no/such/dir/udnie.jpg: no such file"),
    (["size=0", "content=PHOTO"], "size=0: must be an integer in [16, 16384]"),
    (["iterations=-1", "content=PHOTO"], "iterations=-1: must be an integer in [1, 1000000]"),
    (["style.style_weight=-2.5", "content=PHOTO"],
     "style.style_weight=-2.5: must be a number in [0, inf]"),
    # Refused before the optimisation: with 100,000 iterations the run would not end.
    (["output=OUT/result.gif", "content=PHOTO"], "result.gif: unknown output format '.gif'"),
    (["output=PHOTO/result.png", "content=PHOTO"], "result.png: cannot write here"),
    (["output=OUT/" + "g" * 300 + ".png", "content=PHOTO"],
     "a name of 304 bytes; a file name has at most 255"),
    (["blend=5", "content=PHOTO"], "blend=5: give styles and their weights"),
    (["blend=[udnie]", "content=PHOTO"], "blend=['udnie']: give styles and their weights"),
    (["seed=12345678901234567890123", "content=PHOTO"],
     "seed=12345678901234567890123: must be an integer in [0, 4294967295]"),
], ids=["missing photo", "no photo", "missing painting", "mistyped folder", "size 0",
        "negative iterations", "negative style weight", "gif output", "output under a file",
        "name too long", "blend a number", "blend a list", "seed too long"])
@pytest.mark.slow  # a subprocess, or seconds of work
def test_cli_errors_are_one_line_with_exit_status_1_or_2_for_usage(vgg_weights, tmp_path, args,
                                                                   message):
    content = tmp_path / "photo.png"
    write_image(smooth_image(16, 16), content)
    styles = tmp_path / "styles"
    write_image(stripes(32, 32), styles / "udnie.jpg")
    args = [a.replace("PHOTO", str(content)).replace("OUT", str(tmp_path)) for a in args]
    proc = _cli("progress=false", "iterations=100000", "size=16", *args,
                env_extra={"FASTNST_STYLE_DIR": str(styles)})
    usage = "must be" in message or "give " in message  # asked for what cannot be
    assert proc.returncode == (2 if usage else 1), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "styles"]


def test_hostile_corpus_through_the_baseline(vgg_weights, tmp_path):
    from hydra import compose, initialize_config_module

    from fastnst.gatys import run
    from fastnst.images import ImageError
    from fastnst.paintings import expand_style_path

    style = tmp_path / "painting.png"
    write_image(stripes(32, 32), style)
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=expand_style_path(
            [f"style={style}", "size=32", "iterations=1", "progress=false"]))
    too_small = {"sliver_2x300.png"}  # 1 px high at size=32: VGG19 needs 16 (1x1 is enlarged)
    for case in [*make_corpus(tmp_path / "corpus"), missing(tmp_path)]:
        cfg.content, cfg.output = str(case.path), str(tmp_path / "out" / f"{case.path.stem}.png")
        if case.valid and case.path.name not in too_small:
            assert read_image(run(cfg)).shape[:2] == (1, 3), case.name
            continue
        with pytest.raises(ImageError) as info:
            run(cfg)
        assert str(info.value).startswith(f"{os.fsdecode(case.path)}: "), case.name
        assert "\n" not in str(info.value)
        if case.path.name in too_small:
            assert "too small" in str(info.value)


def test_a_diverged_optimisation_writes_nothing(vgg_weights, tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from fastnst import gatys
    from fastnst.paintings import expand_style_path

    style, content = tmp_path / "painting.png", tmp_path / "photo.png"
    write_image(stripes(32, 32), style)
    write_image(smooth_image(32, 32), content)

    def diverged(content, *args, **kwargs):
        return GatysResult(image=torch.full_like(content, float("nan")))

    monkeypatch.setattr(gatys, "stylize", diverged)
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=expand_style_path(
            [f"style={style}", f"content={content}", f"output={tmp_path / 'out.png'}",
             "size=32", "iterations=1", "progress=false"]))
    with pytest.raises(RuntimeError, match=r"out\.png: the optimisation diverged \(NaN or inf"):
        gatys.run(cfg)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow  # a subprocess, or seconds of work
def test_names_with_escape_codes_are_printed_escaped(vgg_weights, tmp_path):
    content, style = tmp_path / "photo\x1b[31m.png", tmp_path / "paint\x1b]0;x\x07ing.png"
    write_image(smooth_image(40, 56), content)
    write_image(stripes(64, 64), style)
    output = tmp_path / "o\x1b[2J.png"
    # Quoted: Hydra's grammar reads `[` as a list (style= is quoted for it by fastnst).
    proc = _cli(f"content='{content}'", f"style={style}", f"output='{output}'", "size=32",
                "iterations=1", "progress=false")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr
    assert "o\\x1b[2J.png" in proc.stdout
