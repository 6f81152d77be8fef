"""What a new user meets first: mistakes answered in one line that says what to do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastnst import paintings
from fastnst.config_checks import ConfigError, check_overrides
from fastnst.download import DownloadError


@pytest.mark.parametrize(("args", "message"), [
    (["photo.jpg"], "'photo.jpg': arguments are key=value overrides, for example"
                    " content=photo.jpg"),
    (["style=starry_nite"], "style=starry_nite: unknown style; did you mean starry_night?"),
    (["style=image"], "style=image needs the painting: give style=path/to/painting.jpg"),
])
def test_overrides_hydra_would_answer_with_boilerplate_are_one_line(args, message):
    with pytest.raises(ConfigError) as error:
        check_overrides(args)
    assert str(error.value).startswith(message)


def test_good_overrides_pass():
    check_overrides(["style=starry_night", "style=art/my painting.jpg", "size=256",
                     "--cfg", "job", "+blend={udnie: 0.5}", "~loss.content_layers.relu4_2"])


@pytest.mark.slow  # a subprocess, or seconds of work
def test_a_failed_training_start_exits_2_or_1_and_leaves_no_run_folder(tmp_path):
    for args, status in ((["style=starry_nite"], 2), (["data.root=/no/such/folder"], 1)):
        proc = subprocess.run([sys.executable, "-m", "fastnst.train", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert proc.returncode == status, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert list(tmp_path.iterdir()) == []  # no empty outputs/train/<style>/<date> left


def test_an_offline_painting_says_where_it_looked_and_what_to_set(monkeypatch):
    def offline(url, dest, md5=None):
        raise DownloadError(f"{url}: download failed (no network)")

    monkeypatch.setattr(paintings, "download", offline)
    with pytest.raises(paintings.StyleError) as error:
        paintings.find_painting("starry_night.jpg", url="https://example.org/s.jpg")
    message = str(error.value)
    assert "not found (looked in starry_night.jpg, " in message
    assert "download failed (no network)" in message
    assert message.endswith("set FASTNST_STYLE_DIR to the folder that holds it")


@pytest.mark.slow  # two subprocesses
def test_help_lists_examples_and_only_the_groups_a_command_uses():
    out = {tool: subprocess.run([sys.executable, "-m", f"fastnst.{tool}", "--help"],
                                capture_output=True, text=True, timeout=120).stdout
           for tool in ("train", "gatys")}
    assert "Examples:" in out["train"] and "trainer: cpu, ddp, gpu" in out["train"]
    assert "python -m fastnst.gatys content=photo.jpg style=starry_night" in out["gatys"]
    assert "trainer:" not in out["gatys"] and "data:" not in out["gatys"]
