"""The painting path (fastnst.universal) as one ONNX graph that takes any painting: what the web
page runs when a painting is dropped on it, and what a product runs without fastnst.

    fastnst-export --painter -o painter.onnx

The graph takes `image` `(1, 3, H, W)` and `painting` `(1, 3, h, w)`, float32 RGB in [0, 1]
(H, W, h and w dynamic, each >= 8), and returns `stylized` `(1, 3, H, W)`: VGG19 to relu4_1,
the whitening and colouring (Newton-Schulz roots: matrix products only), the painting decoder,
the photo's layout and the painting's palette, as fastnst.universal runs them. Shrink the
painting to a long side of `painting_side` (metadata; universal.PAINTING_SIDE) first, as
fastnst does: its strokes are taken at that scale. The file holds VGG19's first ten
convolutions, so it is made on demand from the weights (fastnst.vgg) and the installed
painting decoder, verified against PyTorch, and never shipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastnst.export import (
    DEFAULT_OPSET,
    TOLERANCE,
    Verification,
    cached_export,
    check_match,
    finish_graph,
)
from fastnst.files import atomic_path
from fastnst.model_files import IO_CONVENTION
from fastnst.universal import (
    LAYOUT,
    PAINTING_SIDE,
    PALETTE,
    WCT_EPS,
    WCT_FLOOR,
    WCT_ITERATIONS,
    UniversalStylizer,
    universal_stylizer,
)

PAINTING_INPUT = "painting"
GRAPH_FORMAT = "fastnst-painter-graph-1"  # the metadata `format` of the painter's graph
# (height, width) of the photos and of the painting checked at export time: a square, an odd
# size, and a painting as the page gives it (long side PAINTING_SIDE).
VERIFY_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (333, 517))
VERIFY_PAINTING = (192, PAINTING_SIDE)


class PainterGraph(nn.Module):
    """`stylizer(image, painting)` as a module of two inputs, for the exporter."""

    def __init__(self, stylizer: UniversalStylizer) -> None:
        super().__init__()
        self.stylizer = stylizer

    def forward(self, image: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
        return self.stylizer(image, painting)


def graph_metadata(stylizer: UniversalStylizer) -> dict[str, str]:
    """The metadata_props written into the painter's graph."""
    return {"format": GRAPH_FORMAT, "io": IO_CONVENTION, "input": "image",
            "painting_input": PAINTING_INPUT, "painting_side": str(PAINTING_SIDE),
            "output": "stylized", "layers": ",".join(stylizer.layers),
            "layout": str(stylizer.layout), "palette": str(stylizer.palette)}


def export_painter_onnx(path: str | os.PathLike[str], stylizer: UniversalStylizer | None = None,
                        *, opset: int = DEFAULT_OPSET,
                        verify_sizes: Sequence[tuple[int, int]] = VERIFY_SIZES,
                        replace: bool = True) -> Verification:
    """Export `stylizer` (default: the installed painter, universal_stylizer) to `path`
    (atomically) and verify it against PyTorch; ExportError if it does not match. With
    `replace=False` an existing `path` is kept (OutputExists)."""
    stylizer = (stylizer or universal_stylizer(torch.device("cpu"))).float().eval().cpu()
    graph = PainterGraph(stylizer).eval()
    path = Path(path)
    sizes = {"image": {2: "height", 3: "width"}, PAINTING_INPUT: {2: "painting_height",
             3: "painting_width"}, "stylized": {2: "height", 3: "width"}}
    with atomic_path(path, replace=replace) as tmp:
        # The TorchScript-based exporter traces the Python loops (Newton-Schulz steps) into
        # matrix products; UniversalStylizer.run pads to the pooling's multiple in the graph.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)),
                              str(tmp), dynamo=False, input_names=["image", PAINTING_INPUT],
                              output_names=["stylized"], dynamic_axes=sizes,
                              opset_version=opset)
        data = finish_graph(tmp, path, graph_metadata(stylizer),
                            f"fastnst painter: any painting onto a photo; {IO_CONVENTION}")
        report = dataclasses.replace(verify_painter(graph, tmp, verify_sizes), data=data)
        check_match(path, report)
    return report


def verify_painter(graph: PainterGraph, onnx_path: str | os.PathLike[str],
                   sizes: Sequence[tuple[int, int]]) -> Verification:
    """Run the graph with ONNX Runtime (CPU) and PyTorch on the same random photos, each with a
    random painting of VERIFY_PAINTING."""
    from fastnst.onnx_checks import new_session

    session = new_session(str(onnx_path), ["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    diffs: dict[tuple[int, int], float] = {}
    start = time.perf_counter()
    for h, w in sizes:
        image = torch.rand(1, 3, h, w, generator=generator)
        painting = torch.rand(1, 3, *VERIFY_PAINTING, generator=generator)
        with torch.inference_mode():
            expected = graph(image, painting).numpy()
        got = session.run(["stylized"], {"image": image.numpy(),
                                         PAINTING_INPUT: painting.numpy()})[0]
        diffs[(h, w)] = float(np.abs(got - expected).max()) if got.shape == expected.shape \
            else float("inf")
    return Verification(diffs, TOLERANCE[False], time.perf_counter() - start)


def cached_painter_onnx() -> tuple[Path, bytes]:
    """The verified graph of the installed painter and its bytes, made on first use and cached
    (export.cached_export) by the SHA-256 of the painter's file, the VGG19 weights' file and
    the settings of the graph's arithmetic (LAYOUT, PALETTE, the WCT constants): a changed one
    gets a new export."""
    from fastnst.files import read_bounded
    from fastnst.model_files import MAX_MODEL_BYTES
    from fastnst.universal import shipped_painter
    from fastnst.vgg import resolve_weights

    stylizer = universal_stylizer(torch.device("cpu"))  # ModelFileError when none is installed
    # What the graph's arithmetic depends on besides the two files.
    settings = f"{GRAPH_FORMAT} layout {LAYOUT} palette {PALETTE} eps {WCT_EPS} floor" \
               f" {WCT_FLOOR} steps {WCT_ITERATIONS} "
    digest = hashlib.sha256(settings.encode())
    digest.update(read_bounded(shipped_painter(), MAX_MODEL_BYTES))
    weights = resolve_weights()
    if isinstance(weights, Path):
        with open(weights, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    else:  # torchvision's, by name
        digest.update(weights.encode())
    return cached_export(digest.hexdigest(),
                         lambda path: export_painter_onnx(path, stylizer).data)


class PaintingOnnxBackend:
    """A painting as a style on ONNX Runtime (fastnst.stylizer's Backend): the installed
    painter's graph (cached_painter_onnx: exported on first use, then read from the cache)
    given the photo and the painting at PAINTING_SIDE px. The same arithmetic as
    universal.PaintingBackend, within the export's tolerance; its tiles whiten with their own
    statistics (stylizer.toned_like evens their tone)."""

    def __init__(self, path: str | os.PathLike[str], painting: torch.Tensor | None = None
                 ) -> None:
        from fastnst.model_files import style_label
        from fastnst.onnx_checks import new_session
        from fastnst.universal import read_painting

        self.styles: list[str] = []  # not a multi-style model: nothing to mix
        self.source = os.fsdecode(path)
        self.style = style_label(Path(path).stem)
        painting = read_painting(path) if painting is None else painting
        self.painting = np.ascontiguousarray(painting.float().numpy())
        _, data = cached_painter_onnx()
        self.session = new_session(data, ["CPUExecutionProvider"])

    def __call__(self, image: torch.Tensor, timeout: float | None = None) -> torch.Tensor:
        from fastnst.onnx_checks import run_bounded
        from fastnst.transformer import pad_to_min_side

        h, w = image.shape[-2:]
        x = np.ascontiguousarray(pad_to_min_side(image.float()).numpy())
        out = run_bounded(self.session, {"image": x, PAINTING_INPUT: self.painting},
                          "stylized", timeout)
        return torch.from_numpy(np.asarray(out, np.float32)[..., :h, :w].copy())
