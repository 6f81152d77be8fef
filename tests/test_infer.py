"""fastnst-infer: inputs, output naming, overwrite, bad inputs, video and flicker reduction."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import (
    FakeCamera,
    FakeWindow,
    ctrl_c_default,
    smooth_image,
    tiny_model,
    wait_for_file,
)
from hostile import PicklePayload, make_corpus, missing

from fastnst.images import read_image, write_image
from fastnst.infer import main
from fastnst.stylize_options import StylizeOptions


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "models" / "tiny.safetensors")


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "in"
    write_image(smooth_image(40, 56, seed=1), root / "a.jpg")
    write_image(smooth_image(33, 21, seed=2), root / "nested" / "b.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def test_folder_with_a_corrupt_file_writes_all_the_others(model, photos, tmp_path, capsys):
    out = tmp_path / "out"
    status = main([str(photos), "--style", str(model), "-o", str(out), "-q"])
    assert status == 1  # a partial failure
    assert (out / "a_tiny.jpg").is_file() and (out / "nested" / "b_tiny.png").is_file()
    assert read_image(out / "nested" / "b_tiny.png").shape == (1, 3, 33, 21)
    captured = capsys.readouterr()
    assert "2 written" in captured.out and "1 failed" in captured.out
    # Said once, as it happened (a list at the end only for several failures among outputs)
    assert captured.err.count(f"{photos / 'broken.jpg'}: ") == 1
    assert "kept" not in captured.out  # nothing was


@pytest.mark.slow  # a subprocess, or seconds of work
def test_ctrl_c_keeps_the_finished_outputs_and_says_where(tmp_path, reap):
    model = tiny_model(tmp_path / "wide.safetensors", channels=32, blocks=5)  # ~0.1 s a photo
    for i in range(40):
        write_image(smooth_image(160, 200, seed=i), tmp_path / "in" / f"p{i:02d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.infer", str(tmp_path / "in"),
                             "--style", str(model), "-o", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_default)
    reap(proc)
    wait_for_file(out / "p00_wide.png", proc)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    written = sorted(out.iterdir())
    assert 1 <= len(written) < 40 and not [p for p in written if ".tmp" in p.name]
    assert err.strip().splitlines()[-1] == (f"fastnst-infer: interrupted; {len(written)} outputs"
                                            f" finished, the last in {out}")
    for path in written:  # each one whole
        assert read_image(path).shape == (1, 3, 160, 200)


def test_single_output_file_globs_and_overwrite(model, photos, tmp_path, capsys):
    target = tmp_path / "result.webp"
    assert main([str(photos / "a.jpg"), "--style", str(model), "-o", str(target), "-q"]) == 0
    first = target.stat().st_mtime_ns
    assert main([str(photos / "a.jpg"), "--style", str(model), "-o", str(target), "-q"]) == 0
    assert target.stat().st_mtime_ns == first and "1 kept" in capsys.readouterr().out
    assert main([str(photos / "a.jpg"), "--style", str(model), "-o", str(target), "-q",
                 "--overwrite", "--strength", "0"]) == 0
    assert target.stat().st_mtime_ns != first
    # A file output with several inputs is a usage error; a glob that matches nothing fails.
    assert main([str(photos / "*.jpg"), str(photos / "nested"), "--style", str(model),
                 "-o", str(target)]) == 2
    assert main([str(photos / "*.tif"), "--style", str(model), "-o", str(tmp_path)]) == 1
    # Two styles into one file would overwrite each other.
    other = tiny_model(tmp_path / "other.safetensors", seed=3)
    assert main([str(photos / "a.jpg"), "--style", str(model), "--style", str(other), "-o",
                 str(target)]) == 2


def test_unknown_style_and_missing_model_are_one_line_errors(photos, tmp_path, capsys):
    assert main([str(photos), "--style", "no_such_style"]) == 2  # a usage error
    assert main([str(photos), "--style", str(tmp_path / "gone.safetensors")]) == 1
    assert main([str(photos), "--style", "starry_nite"]) == 2
    assert main([str(photos), "--style", str(tmp_path / "gone.jpg")]) == 1  # a painting
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4
    assert err[0].startswith("fastnst-infer: error: no_such_style: unknown style; shipped styles:")
    assert err[2].startswith("fastnst-infer: error: starry_nite: unknown style; did you mean"
                             " starry_night?")
    assert err[3] == f"fastnst-infer: error: {tmp_path / 'gone.jpg'}: no such file"
    assert err[1] == f"fastnst-infer: error: {tmp_path / 'gone.safetensors'}: no such file"


def _write_video(path, frames: list[np.ndarray], fps: float = 12.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()


def _read_video(path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def test_video_keeps_size_frame_rate_and_frame_count(model, tmp_path):
    still = (smooth_image(48, 64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    _write_video(tmp_path / "clip.mp4", [np.roll(still, 2 * i, axis=1) for i in range(9)])
    out = tmp_path / "clip_out.mp4"
    assert main([str(tmp_path / "clip.mp4"), "--style", str(model), "-o", str(out), "-q"]) == 0
    frames, fps = _read_video(out)
    assert len(frames) == 9 and frames[0].shape == (48, 64, 3) and fps == pytest.approx(12.0)
    for method in ("dis", "farneback"):  # --smooth: the same frames, steadied along the flow
        smoothed = tmp_path / f"clip_{method}.mp4"
        assert main([str(tmp_path / "clip.mp4"), "--style", str(model), "-o", str(smoothed),
                     "-q", "--smooth", "0.8", "--flow-method", method]) == 0
        assert len(_read_video(smoothed)[0]) == 9
    (tmp_path / "not_a_video.mp4").write_bytes(b"nothing")
    assert main([str(tmp_path / "not_a_video.mp4"), "--style", str(model), "-o",
                 str(tmp_path / "x.mp4"), "-q"]) == 1
    assert not (tmp_path / "x.mp4").exists()


def test_frames_stylized_two_at_a_time_come_back_in_order_and_errors_in_place():
    import threading
    import time

    from fastnst.video import mapped_ahead

    running, most = set(), []

    def slow(i: int) -> int:
        running.add(i)
        most.append(len(running))
        time.sleep(0.02 if i % 2 else 0.001)  # odd items finish after the next even one
        running.discard(i)
        if i == 7:
            raise ValueError("frame 7")
        return i * i

    got = []
    with pytest.raises(ValueError, match="frame 7"):
        for item, out in mapped_ahead(slow, range(20), workers=2):
            got.append((item, out))
    assert got == [(i, i * i) for i in range(7)] and max(most) == 2
    started = []
    stream = mapped_ahead(lambda i: started.append(i) or i, range(1000), workers=2)
    assert [next(stream) for _ in range(3)] == [(0, 0), (1, 1), (2, 2)]
    stream.close()  # closing stops it: no more calls are made
    assert len(started) <= 6 and not [t for t in threading.enumerate()
                                       if t.name.startswith("frames")]


def test_video_frames_follow_max_size_and_the_pixel_limit(model, tmp_path, capsys, monkeypatch):
    from fastnst import video

    still = (smooth_image(48, 64)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    _write_video(tmp_path / "clip.mp4", [still] * 3)
    small = tmp_path / "small.mp4"
    assert main([str(tmp_path / "clip.mp4"), "--style", str(model), "-o", str(small), "-q",
                 "--max-size", "32"]) == 0
    frames, _ = _read_video(small)
    assert len(frames) == 3 and frames[0].shape == (24, 32, 3)
    monkeypatch.setattr(video, "MAX_PIXELS", 2000)  # frames declared larger: refused unread
    capsys.readouterr()
    assert main([str(tmp_path / "clip.mp4"), "--style", str(model), "-o",
                 str(tmp_path / "big.mp4"), "-q"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"fastnst-infer: {tmp_path / 'clip.mp4'}: its frames are 64x48 (0 MP), over the"
        " 0 MP limit"]
    assert not (tmp_path / "big.mp4").exists()


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A `(h, w, 3)` uint8 picture with detail everywhere (flow needs texture to follow)."""
    rng = np.random.default_rng(seed)
    base = smooth_image(h, w, seed)[0].permute(1, 2, 0).numpy()
    detail = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)[..., None]
    return ((0.6 * base + 0.4 * detail) * 255).clip(0, 255).astype(np.uint8)


def _jittery(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in stylization that flickers: the frame's colours plus fresh noise each time."""
    return (frame[..., ::-1] * 0.8 + rng.normal(0, 12, frame.shape)).clip(0, 255).astype(np.uint8)


def test_the_flow_smoother_steadies_a_pan_along_the_motion_and_passes_a_cut():
    from fastnst.temporal import FlickerFilter, FlowSmoother

    rng = np.random.default_rng(0)
    scene = _textured(96, 200)
    frames = [np.ascontiguousarray(scene[:, 3 * i:3 * i + 120]) for i in range(12)]  # a pan
    results = {"none": [], "flow": [], "simple": []}
    smoothers = {"flow": FlowSmoother(0.8), "simple": FlickerFilter(0.8)}
    for frame in frames:
        stylized = _jittery(frame, rng)
        results["none"].append(stylized)
        for name, smoother in smoothers.items():
            results[name].append(smoother(frame, stylized))

    def warping_error(outs):  # frame t moved 3 px left is frame t+1, away from the edge
        return np.mean([((b[:, 8:-8].astype(float) - a[:, 11:-5]) ** 2).mean()
                        for a, b in itertools.pairwise(outs[3:])])

    none, flow = (warping_error(results[k]) for k in ("none", "flow"))
    assert flow < 0.4 * none, (flow, none)  # the strokes follow the pan

    def ghosting(outs):  # distance from the flicker-free stylization of each frame
        return np.mean([np.abs(o.astype(float) - f[..., ::-1] * 0.8)[:, 8:-8].mean()
                        for o, f in zip(outs[3:], frames[3:], strict=True)])

    # Blending in place smears the moving scene; blending along the flow does not.
    assert ghosting(results["flow"]) < 0.7 * ghosting(results["simple"])
    # A cut: the new scene passes through, not the old one's strokes.
    cut = _textured(96, 120, seed=5)
    out = smoothers["flow"](cut, cut[..., ::-1])
    assert np.abs(out.astype(int) - cut[..., ::-1]).mean() < 8


def test_the_flicker_filter_steadies_still_scenes():
    from fastnst.temporal import FlickerFilter

    rng = np.random.default_rng(0)
    frame = _textured(32, 32)
    filt, plain, smoothed = FlickerFilter(0.7), [], []
    for _ in range(8):  # a still scene whose stylization jitters from frame to frame
        stylized = _jittery(frame, rng)
        plain.append(stylized)
        smoothed.append(filt(frame, stylized))
    assert _change(smoothed[2:]) < 0.5 * _change(plain[2:])


def _change(frames: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive frames."""
    return float(np.mean([np.abs(a.astype(float) - b).mean()
                          for a, b in itertools.pairwise(frames)]))


def test_webcam_loop_cycles_styles_and_quits_on_q(tmp_path):
    from fastnst.styles import load_style
    from fastnst.webcam import run_webcam

    backends = [load_style(str(tiny_model(tmp_path / f"{name}.safetensors", seed=i)))
                for i, name in enumerate(("first", "second"))]
    camera, window = FakeCamera(200), FakeWindow({2: ["n"], 5: ["p"], 8: ["n"], 10: ["q"]})
    assert run_webcam(camera, window, backends) == 10
    titles = [title for _, title in window.shown]
    # A frame already being stylized when a key is pressed keeps its style: one at the most.
    assert titles[:2] == ["fastnst - first"] * 2 and titles[3:5] == ["fastnst - second"] * 2
    assert titles[6:8] == ["fastnst - first"] * 2 and titles[9] == "fastnst - second"
    assert window.shown[0][0] == (24, 32, 3)
    assert camera.released and window.closed
    # The camera running out of frames also ends the loop cleanly, after its last frame.
    assert run_webcam(FakeCamera(3, period=0.05), FakeWindow({}), backends) == 3
    # Frames are shrunk to max_size before they are stylized.
    window = FakeWindow({})
    assert run_webcam(FakeCamera(2), window, backends, StylizeOptions(max_size=16)) >= 1
    assert {shape for shape, _ in window.shown} == {(12, 16, 3)}
    # --smooth in the live view: the flow smoother steadies the shown frames.

    window = FakeWindow({2: ["n"]})
    assert run_webcam(FakeCamera(6, period=0.05), window, backends,
                      StylizeOptions(smooth=0.5)) >= 4


def test_a_slow_frame_never_freezes_the_window(tmp_path):
    from fastnst.styles import load_style
    from fastnst.webcam import run_webcam

    backend = load_style(str(tiny_model(tmp_path / "slow.safetensors")))

    def slow(backend, image, options):
        time.sleep(2.0)
        return image

    window = FakeWindow({0: ["q"]})
    start = time.perf_counter()
    assert run_webcam(FakeCamera(100), window, [backend], stylize=slow) == 0
    assert time.perf_counter() - start < 1.0  # q answered while the first frame is stylized


def test_no_camera_is_a_clear_error(model, monkeypatch, capsys):
    class Closed:
        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", lambda index: Closed())
    assert main(["--webcam", "3", "--style", str(model)]) == 1
    assert capsys.readouterr().err.strip() == (
        "fastnst-infer: error: webcam 3: cannot open the camera (none connected, no permission,"
        " or in use by another program)")


@pytest.mark.slow  # a subprocess, or seconds of work
def test_shipped_styles_run_by_name_with_both_backends(tmp_path, capsys):
    from fastnst.model_files import is_multi_style, read_metadata, shipped_models

    everything = shipped_models()
    shipped = {s: p for s, p in everything.items() if not is_multi_style(p)}
    assert len(shipped) >= 6 and "starry_night" in shipped
    # Every style ships with its fast network, and --fast picks it.
    fast = {s for s in shipped if s.endswith("-fast")}
    assert {f"{s}-fast" for s in set(shipped) - fast} == fast
    # ... and the multi-style model holds every one of them.
    assert read_metadata(everything["multi"])["styles"] == sorted(set(shipped) - fast)
    write_image(smooth_image(48, 64), tmp_path / "q.png")
    assert main([str(tmp_path / "q.png"), "--style", "mosaic", "--fast", "-o",
                 str(tmp_path / "fast"), "-q"]) == 0
    assert (tmp_path / "fast" / "q_mosaic-fast.png").is_file()
    assert main(["--list-styles"]) == 0
    assert set(shipped) <= set(capsys.readouterr().out.split())
    write_image(smooth_image(48, 64), tmp_path / "p.png")
    for style, path in shipped.items():
        assert read_metadata(path)["style"] == style
        assert path.with_suffix(".md").is_file(), style
        assert not path.with_suffix(".onnx").exists(), f"{style}: ONNX files are made on demand"
        for backend in ("torch", "onnx"):
            assert main([str(tmp_path / "p.png"), "--style", style, "--backend", backend,
                         "-o", str(tmp_path / f"{style}_{backend}.png"), "-q"]) == 0
        torch_out, onnx_out = (read_image(tmp_path / f"{style}_{b}.png") for b in ("torch", "onnx"))
        # fp16 weights (torch) vs the fp32 export (onnx): the same picture to the eye. Measured
        # on this image: at most 3/255 on a few pixels (mosaic), a mean well under 1/255.
        diff = (torch_out - onnx_out).abs()
        assert diff.max() <= 4 / 255 and diff.mean() <= 0.5 / 255, style
    for backend in ("torch", "onnx"):  # a blend of the multi-style model, by name
        assert main([str(tmp_path / "p.png"), "--style", "starry_night:0.5,mosaic:0.5",
                     "--backend", backend, "-o", str(tmp_path / f"blend_{backend}.png"),
                     "-q"]) == 0
    diff = (read_image(tmp_path / "blend_torch.png") - read_image(tmp_path / "blend_onnx.png"))
    assert diff.abs().max() <= 4 / 255


def test_hostile_corpus_writes_every_valid_image_and_names_every_bad_one(model, tmp_path,
                                                                         capsys):
    cases = make_corpus(tmp_path / "corpus")
    gone = missing(tmp_path)
    out = tmp_path / "out"
    status = main([str(tmp_path / "corpus"), str(gone.path), "--style", str(model), "-o",
                   str(out), "-q"])
    assert status == 1  # a partial failure, not a crash (3) or a usage error (2)
    err = capsys.readouterr().err
    written = {p.name.rsplit("_tiny", 1)[0]: p for p in out.iterdir()}
    for case in cases:
        if case.valid:
            assert read_image(written.pop(case.path.stem)).shape[-2:] == case.size, case.name
        elif not case.path.is_dir():  # a folder named like an image is searched, not read
            # Names that are not UTF-8 are shown with backslash escapes.
            shown = os.fsdecode(case.path).encode("utf-8", "backslashreplace").decode()
            assert f"failed: {shown}: " in err, case.name
    assert f"failed: {gone.path}: no such file" in err
    assert not written  # nothing else was written, no temporary files left behind


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".pth"])
def test_pickled_checkpoints_are_refused_by_infer_and_export_without_running(tmp_path, capsys,
                                                                             suffix):
    from fastnst.export import main as export_main

    marker = tmp_path / "pwned"
    evil = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": PicklePayload(marker)}, evil)  # a real PyTorch file, pickle inside
    write_image(smooth_image(16, 16), tmp_path / "p.png")
    assert main([str(tmp_path / "p.png"), "--style", str(evil), "-o", str(tmp_path / "o.png"),
                 "-q"]) != 0
    assert export_main(["--style", str(evil), "-o", str(tmp_path / "e.onnx")]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 2 and all(f"{evil}: a PyTorch (pickle) file, refused" in line
                                 for line in err), err
    assert not marker.exists()
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "e.onnx").exists()


def test_blends_from_the_command_line_and_the_webcam_keys(tmp_path, capsys):
    from fastnst.styles import load_style
    from fastnst.webcam import run_webcam

    multi = tiny_model(tmp_path / "multi.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b"))
    write_image(smooth_image(24, 32), tmp_path / "q.png")
    out = tmp_path / "out"
    assert main([str(tmp_path / "q.png"), "--style", "a:0.6,b:0.4", "--style", "b", "--multi",
                 str(multi), "-o", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["q_a60-b40.png", "q_b.png"]
    assert main([str(tmp_path / "q.png"), "--style", "a:0.6,z:0.4", "--multi", str(multi),
                 "-o", str(out), "-q"]) == 2
    assert "z: not a style of the multi-style model" in capsys.readouterr().err
    # The webcam: b steps the blend towards the next style, n goes on to it.
    views = [load_style(s, multi=str(multi)) for s in ("a", "b")]
    window = FakeWindow({1: ["b"], 3: ["b"], 5: ["n"], 7: ["q"]})
    assert run_webcam(FakeCamera(200), window, views) == 7
    titles = [title.removeprefix("fastnst - ") for _, title in window.shown]
    # A frame already being stylized when a key is pressed keeps its mix: one at the most.
    assert titles[0] == "a" and titles[2] == "a75-b25" and titles[4] == "a50-b50"
    assert titles[6] == "b"


def test_the_default_backend_is_onnx_runtime_for_moving_pictures_on_a_cpu():
    import argparse

    from fastnst.infer import chosen_backend

    def args(**given):
        return argparse.Namespace(**{"backend": "auto", "half": False, "device": "cpu",
                                     "style": ["udnie-fast"], **given})

    assert chosen_backend(args(), moving=True) == "onnx"  # videos, the webcam
    assert chosen_backend(args(), moving=False) == "torch"  # still images
    assert chosen_backend(args(half=True), moving=True) == "torch"  # bf16 is PyTorch's
    assert chosen_backend(args(backend="torch"), moving=True) == "torch"  # as given
    assert chosen_backend(args(backend="onnx"), moving=False) == "onnx"
    # A painting runs on PyTorch (universal style transfer has no ONNX graph yet).
    assert chosen_backend(args(style=["udnie-fast", "art/painting.jpg"]), moving=True) == "torch"
