"""The painter's ONNX graph (fastnst.painting_onnx): any painting, as one graph that ONNX
Runtime runs as PyTorch does, from fastnst-export and the page's server."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import smooth_image, tinted

from fastnst.export import main


@pytest.mark.slow  # an export of VGG19 and the painter, verified
def test_the_painter_graph_paints_any_painting_as_pytorch_does(vgg_weights, shipped_painter,
                                                                tmp_path, capsys):
    import onnx

    from fastnst.onnx_checks import check_graph, new_session
    from fastnst.universal import PAINTING_SIDE, universal_stylizer

    out = tmp_path / "painter.onnx"
    assert main(["--painter", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = out.read_bytes()
    check_graph(out, data)  # what fastnst-infer and the page's server accept
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert meta["painting_input"] == "painting" and meta["painting_side"] == str(PAINTING_SIDE)
    session = new_session(data, ["CPUExecutionProvider"])
    stylizer = universal_stylizer(torch.device("cpu"))
    photo = smooth_image(37, 50, seed=5)  # sides the pooling does not divide
    results = {}
    for name, colour in (("red", (0.9, 0.25, 0.15)), ("blue", (0.15, 0.3, 0.9))):
        painting = tinted(colour, 48)
        got = session.run(["stylized"], {"image": photo.numpy(),
                                         "painting": painting.numpy()})[0]
        with torch.no_grad():
            expected = stylizer(photo, painting).numpy()
        assert got.shape == (1, 3, 37, 50)
        assert np.abs(got - expected).max() < 1e-3
        results[name] = got[0]
    # The painting decides the colours: it is an input, not baked in.
    assert results["red"][0].mean() > results["blue"][0].mean() + 0.1
    assert results["blue"][2].mean() > results["red"][2].mean() + 0.2
    # The file is not replaced without --overwrite, and the painter has no float16 graph.
    assert main(["--painter", "-o", str(out)]) == 1
    assert main(["--painter", "--fp16", "-o", str(tmp_path / "half.onnx")]) == 1
    assert "need float32" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of --style and --painter
        main(["--painter", "--style", "mosaic", "-o", str(tmp_path / "both.onnx")])


def test_the_page_offers_the_painter_only_where_one_is_installed(tmp_path, monkeypatch):
    from fastnst import universal
    from fastnst.web import ORT_FILES, PAINTER_URL, Site

    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_FILES:
        (dist / name).write_text("// ort")
    offered = Site({}, ort_dist=dist).index["painter"]
    assert offered["url"] == PAINTER_URL and offered["side"] == universal.PAINTING_SIDE
    assert Site({}, ort_dist=dist, painter=False).index["painter"] is None
    assert Site({}, ort_dist=dist, painter=False).file(PAINTER_URL) is None
    monkeypatch.setattr(universal, "shipped_painter", lambda: None)
    assert Site({}, ort_dist=dist).index["painter"] is None
