"""The stroke control: pictures are painted at a working size set by the stroke and enlarged
with the photo's own detail (fastnst.upsample), on both backends and for frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import FakeCamera, FakeWindow, smooth_image, tiny_model

from fastnst.config_checks import ConfigError
from fastnst.export import export_onnx
from fastnst.images import to_rgb_array
from fastnst.model_files import load_model
from fastnst.styles import load_style
from fastnst.stylize_options import StylizeOptions
from fastnst.stylizer import stylize, stylize_frame
from fastnst.upsample import MIN_GAIN, STROKE_SIDE, enlarge, luminance, shrink, working_side


class Recorder:
    """A stand-in model that raises contrast by a quarter, pointwise, and records the sizes it
    was given."""

    style = "recorder"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(image.shape[-2:]))
        return image * 1.25 - 0.125


def detailed_image(h: int, w: int) -> torch.Tensor:
    """A smooth picture with stripes a few pixels wide (finer than the working size) and
    coarser ones (which the working size sees)."""
    image = smooth_image(h, w)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    return (image + 0.1 * torch.sin(xx * 1.3) + 0.1 * torch.sin(xx * 0.2 + yy * 0.1)).clamp(0, 1)


def test_the_working_size_follows_the_stroke_and_never_enlarges():
    assert working_side(3000, 4000, 1.0) == STROKE_SIDE
    assert working_side(3000, 4000, 2.0) == STROKE_SIDE // 2
    assert working_side(3000, 4000, 0.5) == STROKE_SIDE * 2
    assert working_side(300, 400, 0.5) is None  # already smaller: painted at its own size
    assert working_side(3000, 4000, 0) is None  # 0: the network's own stroke
    # A panorama keeps enough pixels across its short side.
    side = working_side(100, 8000, 1.0)
    assert side is not None and side * 100 / 8000 >= 32
    with pytest.raises(ConfigError, match="stroke=9"):
        StylizeOptions(stroke=9)
    with pytest.raises(ConfigError, match=r"stroke=0\.1"):
        StylizeOptions(stroke=0.1)


def test_a_big_picture_is_painted_at_the_working_size_and_keeps_its_detail():
    photo = detailed_image(600, 800)
    model = Recorder()
    out = stylize(model, photo, StylizeOptions(stroke=2.0))
    assert out.shape == photo.shape
    # Painted once, at STROKE_SIDE / 2 on the long side (plus the mirrored border).
    (h, w), = model.sizes
    assert max(h, w) - 16 == STROKE_SIDE // 2
    # The pointwise model sharpens the photo's edges by a quarter: the enlarged result has
    # them back (the photo's detail at the gain the model showed), where plain enlargement
    # blurs them away.
    truth = (photo * 1.25 - 0.125).clamp(0, 1)
    small = F.interpolate(photo, size=(h - 16, w - 16), mode="area")
    blurred = F.interpolate(small * 1.25 - 0.125, size=photo.shape[-2:], mode="bicubic")
    blurred = blurred.clamp(0, 1)
    assert (out - truth).abs().mean() < 0.3 * (blurred - truth).abs().mean()
    # Stroke 0 paints at the photo's own size.
    model.sizes.clear()
    torch.testing.assert_close(stylize(model, photo, StylizeOptions(stroke=0)), truth)
    assert model.sizes == [(600, 800)]


def test_a_flat_painting_keeps_min_gain_of_the_photos_fine_detail():
    # A result that ignores the photo (flat grey) still gets MIN_GAIN of the photo's detail
    # finer than the working size: what keeps a big result as sharp as the peer's.
    rgb = to_rgb_array(detailed_image(400, 600)).astype(np.float32) / 255
    small = shrink(rgb, 150)
    out = enlarge(np.full(small.shape, 0.5, np.float32), luminance(rgb), luminance(small))
    fine = luminance(rgb) - cv2.resize(luminance(small), (600, 400),
                                       interpolation=cv2.INTER_LINEAR)
    assert np.abs(fine).mean() > 0.02  # the photo has such detail
    np.testing.assert_allclose(out, 0.5 + MIN_GAIN * fine[..., None].repeat(3, 2), atol=1e-4)


def test_onnx_frames_with_a_stroke_match_the_tensor_path(tmp_path):
    from fastnst.images import from_bgr

    model = tiny_model(tmp_path / "tiny.safetensors")
    export_onnx(load_model(model)[0], tmp_path / "tiny.onnx", "tiny", verify_sizes=[(32, 32)])
    onnx = load_style(str(tmp_path / "tiny.onnx"))
    bgr = np.ascontiguousarray(to_rgb_array(detailed_image(270, 480))[..., ::-1])
    options = StylizeOptions(stroke=4.0)  # paints at 96 px
    fast = stylize_frame(onnx, bgr, options)
    assert fast.shape == (270, 480, 3) and fast.dtype == np.uint8
    reference = to_rgb_array(stylize(onnx, from_bgr(bgr), options))
    # The frame path shrinks and greys in uint8 (faster), the tensor path in float: 2.1 levels.
    assert np.abs(fast.astype(int) - reference).mean() < 3
    torch_backend = load_style(str(model))
    assert np.abs(stylize_frame(torch_backend, bgr, options).astype(int) - reference).mean() < 3
    # Another stroke paints another picture.
    other = stylize_frame(onnx, bgr, StylizeOptions(stroke=1.0))
    assert np.abs(other.astype(int) - fast).mean() > 1


def test_the_webcam_keys_make_strokes_bigger_and_smaller(tmp_path):
    from fastnst.webcam import run_webcam

    seen = []

    def recording(backend, frame, options):
        seen.append(options.stroke)
        return frame[..., ::-1]

    backend = load_style(str(tiny_model(tmp_path / "tiny.safetensors")))
    window = FakeWindow({1: ["plus"], 3: ["plus"], 5: ["minus", "minus", "minus"], 7: ["q"]})
    assert run_webcam(FakeCamera(200), window, [backend], stylize=recording) == 7
    # A frame already being stylized when a key is pressed keeps its stroke: one at the most.
    assert seen[0] == 1.0 and seen[2] == 1.414 and seen[4] == 2.0 and seen[6] == 0.707
    assert set(seen) <= {1.0, 1.414, 2.0, 0.707}
