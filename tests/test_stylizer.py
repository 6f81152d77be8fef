"""Stylizing with a model: both backends agree, tiles blend without seams, colour and strength."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import ctrl_c_default, smooth_image, tiny_model

from fastnst.color import rgb_to_yiq
from fastnst.export import export_onnx
from fastnst.model_files import ModelFileError, load_model
from fastnst.styles import MultiStyle, load_style, resolve_style
from fastnst.stylize_options import StylizeOptions
from fastnst.stylizer import BadResultError, run_tiled, stylize, stylize_frame


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.safetensors")


class Pointwise:
    """A stand-in model whose output at a pixel depends only on that pixel."""

    style = "pointwise"

    def __call__(self, image):
        return image * 0.5 + 0.25


def test_onnx_and_torch_backends_agree(model, tmp_path):
    export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
    photo = smooth_image(45, 61)
    a = stylize(load_style(str(model)), photo)
    b = stylize(load_style(str(tmp_path / "tiny.onnx")), photo)
    assert a.shape == b.shape == photo.shape
    assert (a - b).abs().max() <= 1e-3
    # Tiny images work on both (the ONNX graph needs 5 px a side: padded outside it).
    tiny = smooth_image(3, 2)
    torch.testing.assert_close(stylize(load_style(str(tmp_path / "tiny.onnx")), tiny),
                               stylize(load_style(str(model)), tiny), atol=1e-3, rtol=0)


def test_frames_take_the_numpy_path_on_onnx_and_match_the_tensor_path(model, tmp_path):
    from fastnst.images import from_bgr, shrink_frame, to_rgb_array

    export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
    onnx, torch_backend = load_style(str(tmp_path / "tiny.onnx")), load_style(str(model))
    bgr = np.ascontiguousarray(to_rgb_array(smooth_image(45, 61))[..., ::-1])
    fast = stylize_frame(onnx, bgr)
    assert fast.shape == (45, 61, 3) and fast.dtype == np.uint8
    reference = to_rgb_array(stylize(onnx, from_bgr(bgr)))  # the tensor path, same graph
    assert np.abs(fast.astype(int) - reference).max() <= 1
    assert np.abs(stylize_frame(torch_backend, bgr).astype(int) - reference).max() <= 1
    assert np.abs(fast.astype(int) - bgr[..., ::-1]).mean() > 5  # stylized, not the frame
    # Options the numpy path lacks take the tensor path, on either backend.
    kept = stylize_frame(onnx, bgr, StylizeOptions(strength=0.0))
    assert np.abs(kept.astype(int) - bgr[..., ::-1]).max() <= 1
    # Shrinking keeps the aspect ratio; a frame within the size is the same object.
    assert shrink_frame(bgr, 30).shape == (22, 30, 3) and shrink_frame(bgr, 61) is bgr


def test_tile_weights_cover_every_pixel_exactly_once():
    image = smooth_image(150, 230)
    for overlap in (16, 0):  # 0: tiles meet edge to edge
        torch.testing.assert_close(run_tiled(Pointwise(), image, tile=64, overlap=overlap),
                                   Pointwise()(image))


@pytest.mark.parametrize("kind", ["torch", "onnx"])
def test_tiled_and_whole_outputs_differ_little_and_show_no_seams(model, tmp_path, kind):
    # PyTorch tiles are normalised with the whole image's statistics; ONNX Runtime's graph
    # normalises each tile by its own, so each ONNX tile takes the mean and spread, and the
    # result its coarse tone, from a run of the whole image (stylizer.toned_like). Tiles then
    # differ from the whole image where a convolution near a tile's edge misses the neighbour's
    # pixels (the 32-px cross-fade hides it) and, on ONNX, in fine texture. Measured here: mean
    # |difference| 0.007 torch, 0.054 ONNX, 0.22 when each tile keeps its own tone; at 32 px
    # (the tone) 0.005, 0.013 and 0.19. With starry_night-fast on golden_gate at 1958 px in
    # 512-px tiles: 3.2, 9.2 and 27 levels of 255.
    # A seam would show as a jump along the tile borders: the change from one pixel column to
    # the next is no larger there than elsewhere.
    import torch.nn.functional as F

    if kind == "onnx":
        export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
        model = tmp_path / "tiny.onnx"
    backend = load_style(str(model))
    photo = smooth_image(300, 400)
    whole = stylize(backend, photo, StylizeOptions(stroke=0))  # tiles at the photo's size
    tiled = stylize(backend, photo, StylizeOptions(stroke=0, tile=128, overlap=32))
    assert (whole - tiled).abs().mean() < (0.02 if kind == "torch" else 0.08)
    tone = [F.interpolate(x, size=(24, 32), mode="area") for x in (whole, tiled)]
    assert (tone[0] - tone[1]).abs().mean() < 0.02
    step = (tiled[..., :, 1:] - tiled[..., :, :-1]).abs().mean(dim=(0, 1, 2))  # per column
    borders = [96, 128, 192, 224, 288, 320]  # where tiles start and end (tile 128, step 96)
    assert step[borders].mean() < 1.5 * step.mean()


def test_preserve_color_keeps_the_photo_chroma_and_strength_blends(model):
    backend = load_style(str(model))
    photo = smooth_image(40, 56)
    kept = stylize(backend, photo, StylizeOptions(preserve_color=True))
    plain = stylize(backend, photo)
    chroma = rgb_to_yiq(photo)[:, 1:]
    assert (rgb_to_yiq(kept)[:, 1:] - chroma).abs().mean() < 0.01  # up to clamping
    assert (rgb_to_yiq(plain)[:, 1:] - chroma).abs().mean() > 0.03
    torch.testing.assert_close(stylize(backend, photo, StylizeOptions(strength=0.0)), photo)
    full = stylize(backend, photo)
    torch.testing.assert_close(stylize(backend, photo, StylizeOptions(strength=0.5)),
                               (full + photo) / 2)
    with pytest.raises(ValueError, match="strength"):
        stylize(backend, photo, StylizeOptions(strength=1.5))


@pytest.mark.slow  # a subprocess, or seconds of work
def test_onnx_backend_of_a_model_file_exports_once_and_caches_by_content(model, tmp_path):
    from fastnst.download import cache_dir

    photo = smooth_image(24, 32)
    first = stylize(load_style(str(model), backend="onnx"), photo)
    cached = list((cache_dir() / "onnx").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].with_suffix(".onnx.record").is_file()
    stamp = cached[0].stat().st_mtime_ns
    torch.testing.assert_close(first, stylize(load_style(str(model)), photo), atol=1e-4,
                               rtol=0)
    load_style(str(model), backend="onnx")
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not exported again
    tiny_model(model, seed=1)  # other weights in the same file: a new export
    load_style(str(model), backend="onnx")
    assert len(list((cache_dir() / "onnx").glob("*.onnx"))) == 2


@pytest.mark.parametrize("plant", ["file", "symlink"])
def test_a_planted_cache_entry_is_never_used(model, tmp_path, plant):
    # Another model's genuine export (or a link to it) at the cache path of `model`: the
    # path alone is predictable, so it is exported again over, never run.
    import hashlib

    from fastnst.download import cache_dir
    from fastnst.export import cached_onnx

    other = tiny_model(tmp_path / "other.safetensors", seed=7)
    _, planted = cached_onnx(other)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    entry = cache_dir() / "onnx" / f"{digest[:32]}.onnx"
    decoy = tmp_path / "decoy.onnx"
    decoy.write_bytes(planted)
    if plant == "symlink":
        entry.symlink_to(decoy)
    else:
        entry.write_bytes(planted)
    # Even with a record copied from the other entry beside it.
    record = (cache_dir() / "onnx" / f"{hashlib.sha256(other.read_bytes()).hexdigest()[:32]}"
              ".onnx.record")
    entry.with_suffix(".onnx.record").write_bytes(record.read_bytes())
    path, data = cached_onnx(model)
    assert data != planted and not path.is_symlink() and path.read_bytes() == data
    photo = smooth_image(24, 32)
    torch.testing.assert_close(stylize(load_style(str(model), backend="onnx"), photo),
                               stylize(load_style(str(model)), photo), atol=1e-4, rtol=0)
    assert decoy.read_bytes() == planted  # the link's target was not written through


def test_a_model_that_paints_one_colour_writes_nothing(tmp_path, capsys):
    # A zero last layer (issue 30, section 4): the result is one colour, and is refused.
    from safetensors import safe_open
    from safetensors.torch import save_file

    from fastnst import infer
    from fastnst.images import write_image
    from fastnst.stylizer import BadResultError

    path = tiny_model(tmp_path / "black.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    last = ("decoder.2.1.weight", "decoder.2.1.bias")
    save_file({k: v * 0 if k in last else v for k, v in tensors.items()}, str(path), meta)
    photo = smooth_image(40, 40)
    with pytest.raises(BadResultError, match="gave a flat picture"):
        stylize(load_style(str(path)), photo)
    file = write_image(photo, tmp_path / "photo.png")
    assert infer.main([str(file), "--style", str(path), "-o", str(tmp_path / "out")]) == 1
    assert "flat picture" in capsys.readouterr().err
    assert not list(tmp_path.glob("out/*"))


def test_non_model_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"bad\.onnx: not a loadable ONNX model"):
        load_style(str(bad))


def _graph(path, nodes, output="stylized", shape=("N", 3, "H", "W"), initializers=(),
           domains=(), output_type="FLOAT", input_shape=("N", 3, "H", "W")) -> None:
    """An ONNX graph from `image` to `output` with fastnst's metadata, made without fastnst."""
    import onnx
    from onnx import TensorProto, helper

    from fastnst.model_files import MODEL_FORMAT

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                   list(input_shape))],
        [helper.make_tensor_value_info(output, getattr(TensorProto, output_type), list(shape))],
        initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    *(helper.make_opsetid(d, 1) for d in domains)])
    model.ir_version = 8
    model.metadata_props.add(key="format", value=MODEL_FORMAT)
    onnx.save(model, str(path))


def _const(name, values, dtype="float32"):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def test_onnx_models_are_checked_before_use(model, tmp_path, capsys):
    from onnx import helper

    from fastnst import infer
    from fastnst.images import write_image

    truncated = tmp_path / "truncated.onnx"
    export_onnx(load_model(model)[0], truncated, "tiny", verify_sizes=[(32, 32)])
    truncated.write_bytes(truncated.read_bytes()[:5000])
    other_names = tmp_path / "other_names.onnx"
    _graph(other_names, [helper.make_node("Identity", ["image"], ["x"])], output="x")
    shrinking = tmp_path / "shrinking.onnx"  # the first channel only
    _graph(shrinking, [helper.make_node("Slice", ["image", "s", "e", "a"], ["stylized"])],
           shape=("N", 1, "H", "W"), initializers=[_const(n, [v], "int64") for n, v in
                                                   (("s", 0), ("e", 1), ("a", 1))])
    infinite = tmp_path / "infinite.onnx"  # image + inf
    _graph(infinite, [helper.make_node("Add", ["image", "inf"], ["stylized"])],
           initializers=[_const("inf", [np.inf])])
    flat = tmp_path / "flat.onnx"  # image x 0: all black (issue 30, section 4)
    _graph(flat, [helper.make_node("Mul", ["image", "zero"], ["stylized"])],
           initializers=[_const("zero", [0.0])])
    as_bytes = tmp_path / "uint8.onnx"  # a uint8 result, not fastnst's float interface
    _graph(as_bytes, [helper.make_node("Cast", ["image"], ["stylized"], to=2)],
           output_type="UINT8")
    cases = {truncated: "not a loadable ONNX model",
             flat: "gives a flat picture",
             as_bytes: r"not a fastnst graph: .* output 'stylized' float",
             other_names: r"not a fastnst graph: needs input 'image' .* gives \[\('x'",
             shrinking: r"gives \(1, 1, 24, 32\) for a \(1, 3, 24, 32\) test image",
             infinite: "gives NaN or inf on a 32x24 test image"}
    photo = write_image(smooth_image(16, 16), tmp_path / "photo.png")
    for path, message in cases.items():
        with pytest.raises(ModelFileError, match=f"^{path}: {message}") as error:
            load_style(str(path))
        capsys.readouterr()
        assert infer.main([str(photo), "--style", str(path), "-o", str(tmp_path / "out")]) == 1
        assert capsys.readouterr().err.splitlines() == [f"fastnst-infer: error: {error.value}"]
    assert not (tmp_path / "out").exists()


def _growing(path) -> None:
    """A graph that keeps the size of the 32x24 probe and enlarges anything taller 30 times a
    side: sizes = shape x (1 + 29 x clip(H - 24, 0, 1))."""
    from onnx import helper

    nodes = [helper.make_node("Shape", ["image"], ["shape"]),
             helper.make_node("Cast", ["shape"], ["shape_f"], to=1),
             helper.make_node("Gather", ["shape_f", "two"], ["h"]),
             helper.make_node("Add", ["h", "minus24"], ["over"]),
             helper.make_node("Clip", ["over", "zero", "one"], ["taller"]),
             helper.make_node("Mul", ["taller", "factor"], ["grow"]),
             helper.make_node("Add", ["grow", "ones"], ["scale"]),
             helper.make_node("Mul", ["shape_f", "scale"], ["size_f"]),
             helper.make_node("Cast", ["size_f"], ["size"], to=7),
             helper.make_node("Resize", ["image", "", "", "size"], ["stylized"],
                              mode="nearest")]
    _graph(path, nodes, initializers=[
        _const("two", 2, "int64"), _const("minus24", -24.0), _const("zero", 0.0),
        _const("one", 1.0), _const("factor", [0.0, 0.0, 29.0, 29.0]), _const("ones", 1.0)])


def test_onnx_graphs_that_pass_the_probe_but_not_a_photo_are_one_line_each(tmp_path, capsys):
    from onnx import helper

    from fastnst import infer
    from fastnst.images import write_image

    static = tmp_path / "static.onnx"  # takes the probe's size and nothing else
    _graph(static, [helper.make_node("Sigmoid", ["image"], ["stylized"])],
           input_shape=(1, 3, 24, 32), shape=(1, 3, 24, 32))
    with pytest.raises(ModelFileError, match=r"static\.onnx: takes only 32x24 images"):
        load_style(str(static))
    growing = tmp_path / "growing.onnx"
    _growing(growing)
    load_style(str(growing))  # the probe passes
    photos = [write_image(smooth_image(40 + i, 60), tmp_path / f"p{i}.png") for i in range(2)]
    capsys.readouterr()
    assert infer.main([*map(str, photos), "--style", str(growing), "-o",
                       str(tmp_path / "out"), "--stroke", "0", "-q"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all("gave a" in line and "result for" in line for line in lines)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _loop_forever(path) -> None:
    """A graph that passes `image` through a Loop of 2**62 iterations: it never returns."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    _graph(path, [helper.make_node("Loop", ["M", "cond", "image"], ["stylized"], body=body)],
           initializers=[_const("M", 2**62, "int64"), _const("cond", True, "bool")])


def _slow(path, convs: int) -> None:
    """Allowed operators only, but slow: upscale x20, `convs` 9x9 convolutions, downscale."""
    from onnx import helper

    nodes = [helper.make_node("Resize", ["image", "", "up"], ["x0"], mode="nearest")]
    for i in range(convs):
        nodes.append(helper.make_node("Conv", [f"x{i}", "w"], [f"x{i + 1}"], pads=[4] * 4))
    nodes.append(helper.make_node("Resize", [f"x{convs}", "", "down"], ["stylized"],
                                  mode="nearest"))
    _graph(path, nodes, initializers=[
        _const("up", [1, 1, 20, 20]), _const("down", [1, 1, 0.05, 0.05]),
        _const("w", np.full((3, 3, 9, 9), 1 / 243))])


def test_onnx_graphs_that_could_hang_or_read_other_files_are_refused_unrun(tmp_path):
    import time

    from onnx import helper
    from onnx.external_data_helper import set_external_data

    from fastnst.onnx_checks import MAX_FOLDED_ELEMENTS, MAX_NODES

    loop = tmp_path / "loop.onnx"
    _loop_forever(loop)
    outside = tmp_path / "outside.onnx"
    _graph(outside, [helper.make_node("ReduceMax", ["image"], ["stylized"], keepdims=1)])
    custom = tmp_path / "custom.onnx"
    _graph(custom, [helper.make_node("Relu", ["image"], ["stylized"], domain="com.evil")],
           domains=["com.evil"])
    external = tmp_path / "sub" / "external.onnx"  # its "weights" are another file
    external.parent.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"\x00" * 12)
    weight = _const("w", [0.0, 0.0, 0.0])
    set_external_data(weight, location="../secret.txt")
    weight.ClearField("raw_data")
    weight.data_location = weight.EXTERNAL
    _graph(external, [helper.make_node("Add", ["image", "w"], ["stylized"])],
           initializers=[weight])
    sparse = tmp_path / "sparse.onnx"  # a sparse initializer can also point at other files
    _graph(sparse, [helper.make_node("Add", ["image", "w"], ["stylized"])])
    _add_sparse_initializer(sparse)
    huge = tmp_path / "huge.onnx"
    _graph(huge, [helper.make_node("Identity", ["image" if i == 0 else f"x{i}"],
                                   [f"x{i + 1}" if i < MAX_NODES else "stylized"])
                  for i in range(MAX_NODES + 1)])
    folding = tmp_path / "folding.onnx"  # 24 convolutions of a constant, computed at load
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["c0"])]
    nodes += [helper.make_node("Conv", [f"c{i}", "w"], [f"c{i + 1}"], pads=[4] * 4)
              for i in range(24)]
    nodes.append(helper.make_node("Add", ["image", "c24"], ["stylized"]))
    _graph(folding, nodes, initializers=[_const("shape", [1, 3, 256, 256], "int64"),
                                         _const("w", np.full((3, 3, 9, 9), 1 / 243))])
    filling = tmp_path / "filling.onnx"  # 400 M numbers made at load, no operator disallowed
    _graph(filling, [helper.make_node("ConstantOfShape", ["shape"], ["c"]),
                     helper.make_node("Reshape", ["c", "flat"], ["f"]),
                     helper.make_node("Add", ["image", "f"], ["stylized"])],
           initializers=[_const("shape", [1, 20000, 20000], "int64"),
                         _const("flat", [-1], "int64")])
    cases = {loop: "uses operator Loop, which fastnst's models never use",
             folding: "computes Conv on constants alone; refused",
             filling: f"makes more than {MAX_FOLDED_ELEMENTS:,} numbers from constants at load",
             outside: "uses operator ReduceMax",
             custom: r"uses operator domains \['com.evil'\]",
             external: r"keeps tensors in other files \(external data\)",
             sparse: "holds sparse tensors",
             huge: f"{MAX_NODES + 1} operators"}
    for path, message in cases.items():
        start = time.perf_counter()
        with pytest.raises(ModelFileError, match=f"^{path}: {message}"):
            load_style(str(path))
        assert time.perf_counter() - start < 5


def _add_sparse_initializer(path) -> None:
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(
        _const("w", [1.0]), _const("w_idx", [0], "int64"), [3]))
    onnx.save(model, str(path))


@pytest.mark.parametrize(("opset", "fp16"), [(11, False), (22, True)])
def test_exports_at_every_opset_run_under_the_operator_allowlist(model, tmp_path, opset, fp16):
    path = tmp_path / "m.onnx"
    export_onnx(load_model(model)[0], path, "tiny", opset=opset, fp16=fp16,
                verify_sizes=[(16, 16)])
    assert stylize(load_style(str(path)), smooth_image(20, 24)).shape == (1, 3, 20, 24)


def test_a_slow_onnx_probe_is_cut_off(tmp_path, monkeypatch):
    import time

    from fastnst.stylizer import OnnxBackend

    slow = tmp_path / "slow.onnx"
    _slow(slow, convs=200)  # seconds on the 32x24 probe
    monkeypatch.setattr(OnnxBackend, "PROBE_SECONDS", 0.3)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"slow\.onnx: its run on a 32x24 test image did not"
                                             r" finish within 0\.3 s; refused"):
        load_style(str(slow))
    assert time.perf_counter() - start < 3


@pytest.mark.slow  # a subprocess, or seconds of work
def test_ctrl_c_stops_a_long_onnx_run(tmp_path, reap):
    import signal
    import subprocess
    import sys
    import time

    from fastnst.images import write_image

    slow = tmp_path / "slow.onnx"
    _slow(slow, convs=2000)  # a minute or more on the probe
    photo = write_image(smooth_image(16, 16), tmp_path / "photo.png")
    proc = subprocess.Popen([sys.executable, "-m", "fastnst.infer", str(photo), "--style",
                             str(slow), "-o", str(tmp_path / "out")], stderr=subprocess.PIPE,
                            text=True, preexec_fn=ctrl_c_default)
    reap(proc)
    time.sleep(6)  # imports, loading, then the probe
    proc.send_signal(signal.SIGINT)
    start = time.perf_counter()
    err = proc.communicate(timeout=30)[1]
    assert time.perf_counter() - start < 8, err
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "fastnst-infer: interrupted; nothing written"


def test_every_result_is_checked_at_run_time_not_only_the_probe(tmp_path, capsys):
    from onnx import helper

    from fastnst import infer
    from fastnst.images import write_image

    fixed = tmp_path / "fixed.onnx"  # always a 32x24 picture: passes the 32x24 probe
    _graph(fixed, [helper.make_node("Constant", [], ["stylized"],
                                    value=_const("c", np.random.default_rng(0).random(
                                        (1, 3, 24, 32))))])
    flat_nan = tmp_path / "flat_nan.onnx"  # 0/0 on a flat picture: NaN there, fine on noise
    _graph(flat_nan, [helper.make_node("InstanceNormalization", ["image", "one", "zero"],
                                       ["stylized"], epsilon=0.0)],
           initializers=[_const("one", [1.0] * 3), _const("zero", [0.0] * 3)])
    noise = write_image(torch.rand(1, 3, 16, 20), tmp_path / "noise.png")
    flat = write_image(torch.full((1, 3, 16, 20), 0.5), tmp_path / "flat.png")
    out = tmp_path / "out"
    assert infer.main([str(noise), "--style", str(fixed), "-o", str(out), "-q"]) == 1
    assert (f"{noise}: style fixed gave a (1, 3, 24, 32) result for a (1, 3, 16, 20) image;"
            " nothing written") in capsys.readouterr().err
    assert infer.main([str(noise), str(flat), "--style", str(flat_nan), "-o", str(out),
                       "-q"]) == 1
    assert (f"{flat}: style flat_nan gave NaN or inf for this image; nothing written"
            in capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == ["noise_flat_nan.png"]
    # Camera frames (the numpy path) are checked the same way.
    frame = np.full((16, 20, 3), 128, np.uint8)
    with pytest.raises(BadResultError, match="NaN or inf"):
        stylize_frame(load_style(str(flat_nan)), frame)
    with pytest.raises(BadResultError, match="result for"):
        stylize_frame(load_style(str(fixed)), frame)


def test_a_multi_style_model_blends_in_torch_and_onnx_alike(tmp_path):
    """The ONNX graph has two inputs, `image` and `style_weights`; a one-hot and a blended mix
    give PyTorch's results, and the style names travel in the metadata."""
    import onnxruntime as ort

    from fastnst.style_mix import MixError

    multi = tiny_model(tmp_path / "multi.safetensors", channels=12, blocks=2, design="fast",
                       styles=("a", "b", "c"))
    net, meta = load_model(multi)
    assert meta["styles"] == ["a", "b", "c"]
    report = export_onnx(net, tmp_path / "multi.onnx", "multi", styles=meta["styles"],
                         verify_sizes=[(32, 40)])
    assert max(report.max_abs_diff.values()) <= 1e-3
    session = ort.InferenceSession(str(tmp_path / "multi.onnx"))
    assert [i.name for i in session.get_inputs()] == ["image", "style_weights"]
    assert session.get_modelmeta().custom_metadata_map["styles"] == '["a", "b", "c"]'
    photo = smooth_image(27, 35)
    for spec, mix in (("b", [0, 1.0, 0]), ("a:0.6,c:0.4", [0.6, 0, 0.4]),
                      ("a:3,c:2", [0.6, 0, 0.4])):
        with torch.no_grad():
            expected = net(photo, torch.tensor(mix))
        for backend in ("torch", "onnx"):
            got = stylize(load_style(spec, backend, multi=str(multi)), photo)
            assert (got - expected).abs().max() <= 1e-3, (spec, backend)
        got = stylize(load_style(spec, multi=str(tmp_path / "multi.onnx")), photo)
        assert (got - expected).abs().max() <= 1e-3, (spec, "the .onnx file")
    blend = load_style("a:0.6,c:0.4", multi=str(multi))
    assert blend.style == "a60-c40"
    assert load_style("b", multi=str(multi)).style == "b"
    # A blend of two views steps between them; the views share the loaded model.
    a, c = load_style("a", multi=str(multi)), load_style("c", multi=str(multi))
    assert a.net is c.net
    np.testing.assert_allclose(a.blended(c, 0.4).mix, [0.6, 0, 0.4], atol=1e-6)
    with pytest.raises(MixError, match=r"d: not a style of the multi-style model .*multi"
                                       r"\.safetensors; it has a, b, c"):
        load_style("a:0.5,d:0.5", multi=str(multi))
    # A multi-style model given alone is its newest style (the last added), file or .onnx.
    for alone in (multi, tmp_path / "multi.onnx"):
        newest = load_style(str(alone))
        assert newest.style == "c" and newest.mix.tolist() == [0, 0, 1], alone
        choice = resolve_style(str(alone))
        assert isinstance(choice, MultiStyle) and choice.implied
    with pytest.raises(MixError, match="has no styles to mix"):
        load_style("x:1", multi=str(tiny_model(tmp_path / "one.safetensors")))


@pytest.mark.parametrize(("spec", "message"), [
    ("a:-1", "weight -1 of a must be 0 or between"), ("a:x", "is not a number"),
    ("a:0,b:0", "sum to 0"), ("a,a", "named twice"), ("a:1:2", "is not NAME or NAME:WEIGHT"),
    ("a:nan", "weight nan of a"), (",", "is not NAME"),
    # Beyond float32: overflow in the sum, zero or infinity there (issue 30, section 4).
    ("a:3e38,b:3e38", "weight 3e38 of a"), ("a:1e-320", "weight 1e-320 of a"),
    ("a:1,b:1e39", "weight 1e39 of b")])
def test_bad_mixes_are_usage_errors_that_say_what_is_wrong(spec, message):
    from fastnst.style_mix import MixError, parse_mix

    with pytest.raises(MixError, match=message):
        parse_mix(spec)
    assert parse_mix(" a : 2 , b ") == [("a", 2.0), ("b", 1.0)]


def test_onnx_on_cuda_without_the_cuda_provider_says_it_runs_on_the_cpu(model, tmp_path):
    import onnxruntime as ort

    from fastnst.stylizer import ORT_CUDA_PROVIDER, ORT_GPU_PACKAGE, OnnxBackend

    if ORT_CUDA_PROVIDER in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
    with pytest.warns(UserWarning, match=f"tiny.onnx: .*no CUDA provider.*{ORT_GPU_PACKAGE}"):
        backend = OnnxBackend(tmp_path / "tiny.onnx", torch.device("cuda"))
    assert backend.device_type == "cpu"
    assert backend(smooth_image(16, 16)).shape == (1, 3, 16, 16)
