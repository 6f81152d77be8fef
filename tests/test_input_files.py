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


def test_a_style_given_many_times_is_loaded_and_run_once(tmp_path, monkeypatch, capsys):
    from helpers import smooth_image

    from fastnst import infer
    from fastnst.images import write_image

    model = tiny_model(tmp_path / "mine.safetensors")
    photo = write_image(smooth_image(24, 24), tmp_path / "photo.png")
    loads = []
    real = infer.load_style
    monkeypatch.setattr(infer, "load_style", lambda *a, **k: loads.append(a) or real(*a, **k))
    again = ["--style", str(model), "--style", str(tmp_path / "." / "mine.safetensors")] * 100
    assert infer.main([str(photo), *again, "-o", str(tmp_path / "out")]) == 0
    assert len(loads) == 1 and len(list((tmp_path / "out").iterdir())) == 1
    assert "given more than once" in capsys.readouterr().err


def test_a_linked_subfolder_of_the_output_folder_receives_nothing(tmp_path, capsys):
    from helpers import smooth_image

    from fastnst import infer
    from fastnst.images import write_image

    model = tiny_model(tmp_path / "mine.safetensors")
    photos = tmp_path / "photos"
    write_image(smooth_image(24, 24), photos / "top.png")
    write_image(smooth_image(24, 24), photos / "sub" / "inner.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").symlink_to(outside)
    code = infer.main([str(photos), "--style", str(model), "-o", str(tmp_path / "out")])
    assert code == 1 and not list(outside.iterdir())
    assert (tmp_path / "out" / "top_mine.png").is_file()  # the other input still finished
    assert "leads outside" in capsys.readouterr().err


def _clip(path, frames: int) -> None:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    writer.release()


@pytest.mark.parametrize("script", [
    "ffconcat version 1.0\nfile 'other.mp4'\nfile 'other.mp4'\n",  # a concat script
    "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nother.mp4\n#EXT-X-ENDLIST\n",  # HLS
])
def test_a_video_that_is_a_script_reading_other_files_is_refused(tmp_path, capsys, script):
    from fastnst import infer

    model = tiny_model(tmp_path / "mine.safetensors")
    _clip(tmp_path / "other.mp4", 3)
    (tmp_path / "clip.mp4").write_text(script)
    out = tmp_path / "out"
    assert infer.main([str(tmp_path / "clip.mp4"), "--style", str(model), "-o", str(out),
                       "-q"]) == 1
    assert "its bytes are no MP4/MOV, Matroska/WebM or AVI file" in capsys.readouterr().err
    assert not list(tmp_path.glob("out/*"))
    # A real MP4 beside it still runs.
    assert infer.main([str(tmp_path / "other.mp4"), "--style", str(model), "-o", str(out),
                       "-q"]) == 0
    assert (out / "other_mine.mp4").is_file()
