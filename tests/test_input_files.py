"""Inputs of the second probe (issue 30, sections 2-3): a bare name is a shipped style even
where a file of that name is here, and a model file is refused by its size, then read once, so
that what is checked is what is loaded."""

from __future__ import annotations

import os

import pytest
from helpers import tiny_model

from fastnst import model_files
from fastnst.files import FileProblem, read_bounded
from fastnst.model_files import MAX_MODEL_BYTES, ModelFileError, load_model, read_metadata
from fastnst.paintings import is_image_path
from fastnst.styles import find_model, resolve_style


def test_a_file_named_like_a_shipped_style_does_not_shadow_it(tmp_path, monkeypatch):
    shipped = model_files.shipped_models()
    if "starry_night" not in shipped:
        pytest.skip("no shipped starry_night model")
    monkeypatch.chdir(tmp_path)
    tiny_model(tmp_path / "starry_night")  # a model file named like the style, no suffix
    assert find_model("starry_night") == shipped["starry_night"]
    assert resolve_style("starry_night").path == shipped["starry_night"]
    # Written as a path, it is the file.
    assert find_model("./starry_night").resolve() == tmp_path / "starry_night"
    # The Gatys baseline's style=udnie is the style udnie, not a file named udnie here.
    (tmp_path / "udnie").write_bytes(b"not a painting")
    assert not is_image_path("udnie") and is_image_path("./udnie")


def test_an_unknown_bare_name_says_how_to_use_the_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_model(tmp_path / "mine")
    with pytest.raises(ModelFileError, match=r"a file mine is here: write \./mine"):
        find_model("mine")


def test_a_model_file_larger_than_any_model_is_refused_unread(tmp_path):
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:  # sparse: takes no disk
        f.truncate(MAX_MODEL_BYTES + 1)
    for read in (read_metadata, load_model):
        with pytest.raises(ModelFileError, match=r"big\.safetensors: 256\.0 MB, more than"):
            read(big)
    with pytest.raises(FileProblem, match=r"more than the 1\.0 MB"):
        read_bounded(big, 10**6)


def test_a_model_is_read_once_and_those_bytes_are_loaded(tmp_path, monkeypatch):
    path = tiny_model(tmp_path / "mine.safetensors")
    opened = []
    real_open = os.open

    def counting_open(name, *args, **kwargs):
        if os.fspath(name) == os.fspath(path):
            opened.append(name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    _, meta = load_model(path)
    assert len(opened) == 1 and meta["style"] == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_model_is_not_called_missing(tmp_path):
    path = tiny_model(tmp_path / "mine.safetensors")
    path.chmod(0)
    with pytest.raises(ModelFileError, match="not readable"):
        load_model(path)


def test_a_folder_or_a_fifo_is_not_read_as_a_model(tmp_path):
    with pytest.raises(FileProblem, match="directory"):
        read_bounded(tmp_path, 10)
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(FileProblem, match="FIFO"):
        read_bounded(fifo, 10)  # returns at once: nothing writes to it
