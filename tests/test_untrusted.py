"""Untrusted model files, images, videos and file names cannot write outside the outputs, run
programs, forge output lines or destroy the user's files (the classes of issue 13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from helpers import smooth_image, tiny_model
from PIL import EpsImagePlugin, Image

from fastnst import export, infer
from fastnst.files import atomic_path
from fastnst.images import ImageError, read_image, write_image
from fastnst.model_files import load_model, save_model, style_label

EVIL_STYLE = "../../escaped/owned\n\x1b[31mfastnst-infer: 0 failed\u202e"


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "models" / "tiny.safetensors")


def _photo(path, seed: int = 0):
    return write_image(smooth_image(24, 32, seed=seed), path)


def _frames(n: int) -> list[np.ndarray]:
    still = (smooth_image(24, 32)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    return [np.roll(still, 2 * i, axis=1) for i in range(n)]


def _video(path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (32, 24))
    for frame in _frames(n):
        writer.write(frame)
    writer.release()


def _frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_style_labels_are_a_safe_bounded_character_set():
    assert style_label("starry_night") == "starry_night"
    assert style_label(EVIL_STYLE) == "escaped_owned_31mfastnst-infer_0_failed"
    assert style_label("-rf") == "rf" and style_label("../..") == "style"
    assert len(style_label("x" * 10_000)) == 64


# --- 1. A model file does not choose where outputs go ------------------------------------


def test_a_model_naming_its_style_with_a_path_writes_only_inside_the_output(tmp_path,
                                                                            monkeypatch, capsys):
    net, _ = load_model(tiny_model(tmp_path / "tiny.safetensors"))
    evil = save_model(net, tmp_path / "models" / "evil.safetensors", EVIL_STYLE)
    photo = _photo(tmp_path / "in" / "photo.png")
    out = tmp_path / "a" / "b" / "out"
    assert infer.main([str(photo), "--style", str(evil), "-o", str(out), "-q"]) == 0
    label = style_label(EVIL_STYLE)
    assert [p.name for p in out.iterdir()] == [f"photo_{label}.png"]
    assert not (tmp_path / "a" / "escaped").exists()
    # fastnst-export's default name is the label too, in the current folder; and the ONNX
    # file's own metadata (untrusted as well) gives the same label.
    monkeypatch.chdir(tmp_path / "a")
    assert export.main(["--style", str(evil)]) == 0
    onnx_file = tmp_path / "a" / f"{label}.onnx"
    assert onnx_file.is_file() and not (tmp_path / "escaped").exists()
    _set_onnx_style(onnx_file, EVIL_STYLE)
    assert infer.main([str(photo), "--style", str(onnx_file), "-o", str(out), "-q"]) == 0
    assert [p.name for p in out.iterdir()] == [f"photo_{label}.png"]  # kept: it exists
    printed = capsys.readouterr()
    assert "\x1b" not in printed.out + printed.err and "\u202e" not in printed.out + printed.err


def _set_onnx_style(path, style: str) -> None:
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "style":
            prop.value = style
    onnx.save(model, str(path))


# --- 2. Images are decoded only by plain raster decoders ---------------------------------


@pytest.mark.parametrize("fmt", ["EPS", "PPM", "TGA", "PCX", "SGI", "ICO", "DDS"])
def test_only_plain_raster_formats_are_decoded_whatever_the_name(fmt, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: ran.append(a))
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(path, format=fmt)
    with pytest.raises(ImageError, match=r"photo\.jpg: not an image, or a format that is not"
                                         r" read \(only JPEG, PNG, WEBP, TIFF, BMP, GIF\)"):
        read_image(path)
    assert not ran  # Ghostscript never ran on the EPS


# --- 3. A video's file name is a file, not an FFmpeg URL ---------------------------------


def test_a_video_named_like_an_ffmpeg_protocol_reads_that_file(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _video(tmp_path / "other.mp4", 5)
    _video(tmp_path / "three.mp4", 3)
    os.replace(tmp_path / "three.mp4", tmp_path / "concat:other.mp4")  # 3 frames of its own
    out = tmp_path / "out"
    assert infer.main(["concat:other.mp4", "--style", str(model), "-o", str(out), "-q"]) == 0
    assert _frame_count(out / "concat:other_tiny.mp4") == 3  # not the 5 of other.mp4
    assert infer.main(["*:*.mp4", "--style", str(model), "-o", str(out / "glob"), "-q"]) == 0
    assert _frame_count(out / "glob" / "concat:other_tiny.mp4") == 3


# --- 4. Never a broken result reported as written ----------------------------------------


@pytest.mark.parametrize(("source", "output", "message"), [
    ("clip.mp4", "out.jpg", "clip.mp4 is a video; its result must be .mp4"),
    ("clip.mp4", "out.png", "clip.mp4 is a video; its result must be .mp4"),
    ("photo.png", "out.mp4", "photo.png is an image; its result must be .bmp .jpeg"),
    ("photo.png", "result.gif", "fastnst writes images as .bmp .jpeg .jpg .png .tif .tiff"
                                " .webp and videos as .mp4"),
    ("clip.mp4", "out.mov", "and videos as .mp4"),
])
def test_an_output_of_the_wrong_kind_is_a_usage_error_up_front(model, tmp_path, capsys, source,
                                                               output, message):
    _video(tmp_path / "clip.mp4", 2)
    _photo(tmp_path / "photo.png")
    capsys.readouterr()
    assert infer.main([str(tmp_path / source), "--style", str(model), "-o",
                       str(tmp_path / output)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / output).exists()  # neither a file nor a folder named result.gif


# --- 5. Never destroy what the user had ----------------------------------------------------


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(model, tmp_path, capsys):
    photo = _photo(tmp_path / "same.png")
    before = photo.read_bytes()
    assert infer.main([str(photo), "--style", str(model), "-o", str(photo), "--overwrite",
                       "-q"]) == 1
    assert photo.read_bytes() == before
    assert f"{photo}: its output {photo} is one of the inputs; not replaced, skipped" in \
        capsys.readouterr().err
    # A folder written into itself: x_tiny.png is an input and x.png's output.
    folder = tmp_path / "album"
    _photo(folder / "x.png", seed=1)
    made_before = _photo(folder / "x_tiny.png", seed=2).read_bytes()
    assert infer.main([str(folder), "--style", str(model), "-o", str(folder), "--overwrite",
                       "-q"]) == 1
    assert (folder / "x_tiny.png").read_bytes() == made_before
    assert sorted(p.name for p in folder.iterdir()) == ["x.png", "x_tiny.png", "x_tiny_tiny.png"]


def test_inputs_named_alike_get_distinct_outputs(model, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    _photo(folder / "x.png", seed=1)
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(folder / "x.gif")  # -> .png too
    write_image(smooth_image(24, 32, seed=3), folder / "a.JPG")
    write_image(smooth_image(24, 32, seed=4), folder / "a.jpg")
    write_image(smooth_image(24, 32, seed=5), folder / "y.bmp")  # y_tiny.bmp: no clash
    out = tmp_path / "out"
    # a.jpg named a second time, relatively, is still one input, not a clash with itself
    monkeypatch.chdir(folder)
    assert infer.main([str(folder), "a.jpg", "--style", str(model), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_JPG_tiny.jpg", "a_jpg_tiny.jpg", "x_gif_tiny.png", "x_png_tiny.png", "y_tiny.bmp"]
    err = capsys.readouterr().err
    assert (f"note: {folder / 'a.JPG'} and {folder / 'a.jpg'} would share the output"
            f" {out / 'a_tiny.jpg'}; writing a_JPG_tiny.jpg, a_jpg_tiny.jpg") in err
    assert f"note: {folder / 'x.gif'} and {folder / 'x.png'} would share the output" in err


def test_an_output_that_appears_meanwhile_is_kept_not_replaced(model, tmp_path, monkeypatch,
                                                               capsys):
    photo = _photo(tmp_path / "photo.png")
    output = tmp_path / "out" / "photo_tiny.png"
    real_read = infer.read_image

    def another_run_writes_it_first(path, **kwargs):
        output.parent.mkdir(exist_ok=True)
        output.write_bytes(b"the other run's result")
        return real_read(path, **kwargs)

    monkeypatch.setattr(infer, "read_image", another_run_writes_it_first)
    assert infer.main([str(photo), "--style", str(model), "-o", str(tmp_path / "out"),
                       "-q"]) == 0
    assert output.read_bytes() == b"the other run's result"
    assert "0 written, 1 kept" in capsys.readouterr().out
    assert not [p for p in output.parent.iterdir() if ".tmp" in p.name]


def test_exclusive_creation_drops_the_result_when_the_name_is_taken(tmp_path):
    dest = tmp_path / "x.txt"
    with pytest.raises(FileExistsError), atomic_path(dest, replace=False) as tmp:
        tmp.write_text("mine")
        dest.write_text("theirs")
    assert dest.read_text() == "theirs" and list(tmp_path.iterdir()) == [dest]


@pytest.mark.slow  # a subprocess, or seconds of work
def test_sigterm_during_a_video_cleans_up_like_ctrl_c(tmp_path, reap):
    wide = tiny_model(tmp_path / "wide.safetensors", channels=32, blocks=5)
    clip = tmp_path / "clip.mp4"
    still = (smooth_image(240, 320)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (320, 240))
    for i in range(200):
        writer.write(np.roll(still, i, axis=1))
    writer.release()
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.infer", str(clip), "--style",
                             str(wide), "-o", str(out), "-q"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    reap(proc)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(".tmp" in p.name for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    try:
        err = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:  # where it hangs: faulthandler prints every thread
        proc.send_signal(signal.SIGABRT)
        pytest.fail(f"no exit 60 s after SIGTERM; its threads:\n{proc.communicate()[1]}")
    assert proc.returncode == 130, err
    assert list(out.iterdir()) == []  # no hidden temporary file left


# --- 6. Clear errors, early, for every bad value -----------------------------------------


def test_special_files_are_named_for_what_they_are(model, tmp_path, capsys):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe\.jpg: not a regular file \(a FIFO\)"):
        read_image(fifo)
    with pytest.raises(ImageError, match=r"/dev/zero: not a regular file \(a character device\)"):
        read_image("/dev/zero")
    assert infer.main([str(fifo), "--style", str(model), "-o", str(tmp_path / "out"),
                       "-q"]) == 1
    assert "pipe.jpg: not a regular file (a FIFO)" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_named_not_its_temporary_file(model, tmp_path,
                                                                          capsys):
    photo = _photo(tmp_path / "photo.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder would go")
    assert infer.main([str(photo), "--style", str(model), "-o", str(blocker / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastnst-infer: error: {blocker / 'x.png'}: cannot write here")
    assert ".tmp" not in err
    assert infer.main([str(photo), "--style", str(model), "-o", "/proc/fastnst_out", "-q"]) == 1
    err = capsys.readouterr().err
    assert "/proc/fastnst_out/" in err and ": cannot write" in err and ".tmp" not in err


def test_file_names_with_newlines_and_escapes_cannot_forge_output_lines(model, tmp_path,
                                                                        capsys):
    bad = tmp_path / "in" / "x\nfastnst-infer: 99 written\x1b[2K.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image")
    _photo(tmp_path / "in" / "good.png")
    assert infer.main([str(tmp_path / "in"), "--style", str(model), "-o", str(tmp_path / "out"),
                       "-q"]) == 1
    printed = capsys.readouterr()
    lines = (printed.out + printed.err).splitlines()
    assert len(lines) == 2 and "\x1b" not in printed.err
    assert all(line.startswith(("fastnst-infer: ", "1 written")) for line in lines)
    assert "x\\nfastnst-infer: 99 written\\x1b[2K.jpg" in printed.err


@pytest.mark.parametrize(("args", "message"), [
    (["--max-size", "0"], "argument --max-size: 0: must be an integer in [16, 65536]"),
    (["--max-size", "-1"], "argument --max-size: -1: must be an integer in [16, 65536]"),
    (["--tile", "-5"], "argument --tile: -5: must be an integer in [0, inf]"),
    (["--strength", "2"], "argument --strength: 2: must be a number in [0, 1]"),
    (["--smooth", "1"], "argument --smooth: 1: must be a number in [0, 1)"),
    (["--flow-method", "x"], "argument --flow-method: invalid choice: 'x'"),
    (["--tile", "256", "--overlap", "200"], "overlap=200: must be at most half of tile=256"),
])
def test_infer_options_out_of_range_are_usage_errors(model, tmp_path, capsys, args, message):
    photo = _photo(tmp_path / "photo.png")
    with pytest.raises(SystemExit) as stop:
        infer.main([str(photo), "--style", str(model), *args])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_export_checks_its_output_and_opset_before_exporting(model, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        export.main(["--style", str(model), "--opset", "99"])
    assert stop.value.code == 2
    assert "argument --opset: 99: must be an integer in [11, 22]" in capsys.readouterr().err
    folder = tmp_path / "exports"
    folder.mkdir()
    assert export.main(["--style", str(model), "-o", str(folder)]) == 0
    assert [p.name for p in folder.iterdir()] == ["tiny.onnx"]
    assert export.main(["--style", str(model), "-o", str(tmp_path / "m.pt")]) == 1
    assert "an ONNX model is written as .onnx" in capsys.readouterr().err
