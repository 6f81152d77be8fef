"""ONNX export: dynamic sizes, metadata, checker, verification against PyTorch; nothing written
when verification fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import smooth_image, tiny_model

from fastnst import export
from fastnst.export import ExportError, export_onnx
from fastnst.images import read_image, write_image
from fastnst.model_files import MODEL_FORMAT, load_model


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.safetensors")


def test_export_matches_pytorch_at_full_hd_and_odd_sizes(model, tmp_path):
    net, _ = load_model(model)
    report = export_onnx(net, tmp_path / "tiny.onnx", "tiny")
    assert set(report.max_abs_diff) == {(256, 256), (1080, 1920), (333, 517)}
    assert max(report.max_abs_diff.values()) <= 1e-3
    onnx.checker.check_model(str(tmp_path / "tiny.onnx"))
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "tiny.onnx")).metadata_props}
    assert meta["format"] == MODEL_FORMAT and meta["style"] == "tiny"
    assert meta["architecture"] == '{"channels": 8, "blocks": 2, "design": "johnson"}'
    assert meta["min_side"] == "9"
    # Batch, height and width are all dynamic.
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 41, 9)  # down to min_side
    with torch.no_grad():
        expected = net(x).numpy()
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (2, 3, 41, 9) and np.abs(got - expected).max() <= 1e-3


@pytest.mark.slow  # seconds of export and verification
def test_the_fast_design_exports_verified_and_loads_as_an_untrusted_file(tmp_path):
    from fastnst.styles import load_style
    from fastnst.stylizer import stylize

    fast = tiny_model(tmp_path / "quick.safetensors", channels=12, blocks=2, design="fast")
    net, _ = load_model(fast)
    report = export_onnx(net, tmp_path / "quick.onnx", "quick")
    assert max(report.max_abs_diff.values()) <= 1e-3  # 256x256, 1920x1080 and 517x333
    nodes = onnx.load(str(tmp_path / "quick.onnx")).graph.node
    pads = [n for n in nodes if n.op_type == "Pad"]
    assert "DepthToSpace" in {n.op_type for n in nodes}  # the pixel shuffle
    # One reflection pad around the image (EDGE_PAD); the convs pad inside themselves.
    assert [[a.s for a in n.attribute if a.name == "mode"] for n in pads] == [[b"reflect"]]
    photo = smooth_image(45, 61)
    a = stylize(load_style(str(tmp_path / "quick.onnx")), photo)  # passes the graph checks
    b = stylize(load_style(str(fast)), photo)
    assert (a - b).abs().max() <= 1e-3


def test_fp16_export_is_smaller_and_close(model, tmp_path):
    net, _ = load_model(model)
    report = export_onnx(net, tmp_path / "half.onnx", "tiny", fp16=True,
                         verify_sizes=[(64, 64), (37, 53)])
    export_onnx(net, tmp_path / "full.onnx", "tiny", verify_sizes=[(64, 64)])
    assert max(report.max_abs_diff.values()) <= 2e-2
    assert (tmp_path / "half.onnx").stat().st_size < 0.7 * (tmp_path / "full.onnx").stat().st_size


def test_failed_verification_writes_nothing(model, tmp_path, monkeypatch):
    net, _ = load_model(model)
    monkeypatch.setattr(export, "TOLERANCE", {False: -1.0, True: -1.0})  # nothing can pass
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(net, tmp_path / "bad.onnx", "tiny", verify_sizes=[(32, 32)])
    assert list(tmp_path.iterdir()) == [model]


def test_cli_exports_and_reports_unknown_styles(model, tmp_path, capsys):
    assert export.main(["--style", str(model), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()
    assert export.main(["--style", "no_such_style"]) == 2
    assert "no_such_style: unknown style" in capsys.readouterr().err


def test_demo_stylizes_with_only_numpy_pillow_and_onnxruntime(model, tmp_path):
    net, _ = load_model(model)
    export_onnx(net, tmp_path / "m.onnx", "tiny", verify_sizes=[(32, 32)])
    write_image(smooth_image(30, 44), tmp_path / "photo.png")
    demo = Path(__file__).resolve().parents[1] / "scripts" / "onnx_demo.py"
    # torch and fastnst made unimportable: the demo must not need them.
    argv = ["demo", str(tmp_path / "m.onnx"), str(tmp_path / "photo.png"),
            str(tmp_path / "out.png")]
    code = ("import runpy, sys; sys.modules['torch'] = sys.modules['fastnst'] = None;"
            f" sys.argv = {argv!r}; runpy.run_path({str(demo)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    ours = stylize_photo(net, read_image(tmp_path / "photo.png"))
    theirs = read_image(tmp_path / "out.png")
    assert theirs.shape == (1, 3, 30, 44)
    assert (theirs - ours).abs().max() <= 1.5 / 255  # the same, up to 8-bit rounding


def test_demo_blends_a_multi_style_model_with_only_numpy_pillow_and_onnxruntime(tmp_path):
    multi = tiny_model(tmp_path / "multi.safetensors", channels=12, blocks=1, design="fast",
                       styles=("a", "b"))
    net, meta = load_model(multi)
    export_onnx(net, tmp_path / "m.onnx", "multi", styles=meta["styles"], verify_sizes=[(32, 32)])
    write_image(smooth_image(30, 44), tmp_path / "photo.png")
    demo = Path(__file__).resolve().parents[1] / "scripts" / "onnx_demo.py"
    argv = ["demo", str(tmp_path / "m.onnx"), str(tmp_path / "photo.png"),
            str(tmp_path / "out.png"), "--mix", "a:3,b:1"]
    code = ("import runpy, sys; sys.modules['torch'] = sys.modules['fastnst'] = None;"
            f" sys.argv = {argv!r}; runpy.run_path({str(demo)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "style a:3,b:1" in proc.stdout
    with torch.no_grad():
        ours = (net(read_image(tmp_path / "photo.png"), torch.tensor([0.75, 0.25])) * 255
                ).round() / 255
    assert (read_image(tmp_path / "out.png") - ours).abs().max() <= 1.5 / 255


def stylize_photo(net, photo):
    with torch.no_grad():
        return (net(photo) * 255).round() / 255
