"""Every command in the README runs as written, on small inputs: the README's own words, with
only the overrides that make a run small (2 steps, 64 px crops, a tiny photo). A command that
breaks, or a new kind of command this test does not know, fails it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO, smooth_image, stripes

from fastnst.images import write_image

README = REPO / "README.md"
SETUP = ("pip", "npm", "ruff", "apt-get")  # installs and the test command: .ci/run does them
SMALL_TRAINING = {"trainer.max_steps": "2", "trainer.max_time": "null", "data.crop_size": "64",
                  "data.short_side": "64", "data.batch_size": "1", "data.workers": "0",
                  "data.val_count": "1", "data.val_size": "64", "style_size": "64",
                  "sample_every": "100", "checkpoint_every": "100"}
SMALL_GATYS = {"size": "64", "iterations": "2"}
GPU_ONLY = ("trainer=gpu", "trainer=ddp")  # no GPU here: their config is composed, not run


def readme_blocks(language: str) -> list[str]:
    """The README's fenced code blocks in `language`."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def readme_commands() -> list[list[str]]:
    """Each command of the README's bash blocks, as argv (comments dropped, `&&` split)."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                commands.append(words[:cut])
                words = words[cut + 1:]
    return commands


def with_values(argv: list[str], values: dict[str, str]) -> list[str]:
    """`argv` with each `key=value` override of `values` replaced, or added."""
    keys = {arg.partition("=")[0]: i for i, arg in enumerate(argv)}
    out = list(argv)
    for key, value in values.items():
        if key in keys:
            out[keys[key]] = f"{key}={value}"
        else:
            out.append(f"{key}={value}")
    return out


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    if argv[:2] and argv[0] == "python" and argv[1].startswith("scripts/"):
        argv = [sys.executable, str(REPO / argv[1]), *argv[2:]]  # run from the checkout
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    elif shutil.which(argv[0]) is None:  # an entry point not on PATH: its module
        argv = [sys.executable, "-m", "fastnst." + argv[0].removeprefix("fastnst-"), *argv[1:]]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _inputs(here: Path) -> None:
    """The files the README's commands name, made small."""
    for path in ("photo.jpg", "photos/a.jpg", "photos/sub/b.jpg", "scans/c.png",
                 "path/to/photos/p1.jpg", "path/to/photos/p2.jpg", "MY_PHOTOS/m1.jpg",
                 "MY_PHOTOS/m2.jpg"):
        write_image(smooth_image(64, 96, seed=len(path)), here / path)
    write_image(stripes(96, 96), here / "path/to/painting.jpg")
    writer = cv2.VideoWriter(str(here / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 12,
                             (64, 48))
    for i in range(6):
        writer.write(np.roll(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4,
                                     (48, 1, 3)), 2 * i, axis=1))
    writer.release()


def test_the_readme_lists_the_commands_this_test_knows():
    kinds = {argv[0] for argv in readme_commands()}
    assert kinds <= {*SETUP, "export", "python", "fastnst-infer", "fastnst-export",
                     "fastnst-web"}, kinds
    assert sum(argv[0] == "fastnst-infer" for argv in readme_commands()) >= 6
    assert len(README.read_text().splitlines()) <= 160  # the reference lives in docs/


@pytest.mark.slow  # every README command: about four minutes
def test_every_readme_command_runs_as_written(vgg_weights, style_dir, tmp_path, monkeypatch):
    _inputs(tmp_path)
    ran = []
    for argv in readme_commands():
        if argv[0] in SETUP or argv[:3] == ["python", "-m", "pytest"]:
            continue
        if argv[0] == "export":  # the README's placeholders, made real
            monkeypatch.setenv("FASTNST_TRAIN_DIR", str(tmp_path / "path/to/photos"))
            monkeypatch.setenv("FASTNST_STYLE_DIR", str(style_dir))
            continue
        command = " ".join(argv)
        if argv[0] == "fastnst-web":
            _serves(argv, tmp_path)
        elif "--webcam" in argv:  # no camera here: it must get as far as opening one
            proc = _run(argv, tmp_path)
            assert proc.returncode == 1, (command, proc.stderr)
            assert "webcam 0: cannot open the camera" in proc.stderr, (command, proc.stderr)
            assert "Traceback" not in proc.stderr, proc.stderr
        else:
            if argv[:3] in (["python", "-m", "fastnst.train"], ["python", "-m", "fastnst.distill"]):
                argv = [*argv, "--cfg", "job"] if set(GPU_ONLY) & set(argv) else with_values(
                    argv, SMALL_TRAINING)
            elif argv[:3] == ["python", "-m", "fastnst.gatys"]:
                argv = with_values(argv, SMALL_GATYS)
            proc = _run(argv, tmp_path)
            assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-3000:])
        ran.append(command)
    assert len(ran) >= 19, ran  # every command past the setup ones
    assert (tmp_path / "photo_starry_night.jpg").is_file()
    assert (tmp_path / "stylized/sub/b_mosaic.jpg").is_file()
    assert (tmp_path / "clip_udnie.mp4").is_file() and (tmp_path / "out.png").is_file()
    assert (tmp_path / "photo_starry_night60-great_wave40.jpg").is_file()
    # Any painting, no training (universal style transfer): then the add_style run's model is
    # used with --style <that file>: its newest style, the painting, written to the same name.
    (tmp_path / "photo_painting.jpg").unlink()
    grown = sorted((tmp_path / "outputs/train/painting").glob("*/painting.safetensors"))
    assert grown, ran
    proc = _run(["fastnst-infer", "photo.jpg", "--style", str(grown[-1])], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "using its newest style, painting" in proc.stderr
    assert (tmp_path / "photo_painting.jpg").is_file()


def _serves(argv: list[str], here: Path) -> None:
    """`fastnst-web` starts and says where to open it (on any free port), then stops."""
    from fastnst.web import ORT_DIST, ORT_FILES

    proc = subprocess.Popen([*_entry(argv), "--port", "0"], cwd=here, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if not (ORT_DIST / ORT_FILES[0]).is_file():  # npm ci did not run: it says so
            assert "onnxruntime-web is not installed" in proc.communicate(timeout=120)[1]
            return
        line = proc.stdout.readline()
        assert line.startswith("fastnst-web: open http://127.0.0.1:"), (line, proc.poll())
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _entry(argv: list[str]) -> list[str]:
    if shutil.which(argv[0]):
        return argv
    return [sys.executable, "-m", "fastnst." + argv[0].removeprefix("fastnst-"), *argv[1:]]
