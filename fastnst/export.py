"""ONNX export of a style model, verified against PyTorch with ONNX Runtime before it is kept.

    fastnst-export --style starry_night -o starry_night.onnx [--fp16] [--opset 17]
    fastnst-export --painter -o painter.onnx   (any painting: fastnst.painting_onnx)

The graph takes `image` `(N, 3, H, W)` float32 RGB in [0, 1] (N, H and W dynamic; H, W >= 5) and
returns `stylized`, the same shape and convention. With `--fp16` the weights and arithmetic are
float16 inside, the input and output stay float32. The model's metadata_props record the style,
the architecture and this convention. The file is written only if `onnx.checker` passes and ONNX
Runtime matches PyTorch at every verification size.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastnst.config_checks import bounded
from fastnst.console import prepare_console, shown
from fastnst.errors import FastnstError, print_error
from fastnst.files import (
    FileProblem,
    atomic_path,
    check_name_length,
    check_output,
    os_problem,
    read_bounded,
)
from fastnst.model_files import (
    IO_CONVENTION,
    MAX_MODEL_BYTES,
    MODEL_FORMAT,
    ModelFileError,
    load_model,
)
from fastnst.style_mix import STYLE_INPUT
from fastnst.transformer import NETWORK_MIN_SIDE, TransformerNet

DEFAULT_OPSET = 17
OPSETS = (11, 22)  # the opsets whose exports are verified and use only onnx_checks.ALLOWED_OPS
# (height, width): a square, full HD and an odd size; all run at export time.
VERIFY_SIZES: tuple[tuple[int, int], ...] = ((256, 256), (1080, 1920), (333, 517))
# Largest |ONNX Runtime - PyTorch fp32| allowed, in [0, 1] pixel units. fp32 differs only by
# summation order (measured ~1e-6); fp16 rounds every activation to 11 bits (measured ~1e-3).
TOLERANCE = {False: 1e-3, True: 2e-2}


class ExportError(FastnstError, RuntimeError):
    """Export or verification failed; nothing was written."""


class _Float32IO(nn.Module):
    """Runs `net` in float16, taking and returning float32 (so callers need no casts)."""

    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, image: torch.Tensor, *mix: torch.Tensor) -> torch.Tensor:
        return self.net(image.half(), *(m.half() for m in mix)).float()


@dataclass
class Verification:
    """Max abs difference ONNX Runtime vs PyTorch fp32 per `(height, width)`, and the limit."""

    max_abs_diff: dict[tuple[int, int], float]
    tolerance: float
    seconds: float
    data: bytes = field(default=b"", repr=False)  # the file's bytes as checked and written


def onnx_metadata(style: str, net: TransformerNet, fp16: bool,
                  styles: Sequence[str] = ()) -> dict[str, str]:
    """The metadata_props written into the ONNX model; a multi-style network's also name its
    `styles` (JSON list, in the order of the `style_weights` input)."""
    meta = {"format": MODEL_FORMAT, "style": style, "io": IO_CONVENTION,
            "min_side": str(NETWORK_MIN_SIDE), "precision": "float16" if fp16 else "float32",
            "architecture": json.dumps(net.config.as_dict()),
            "input": "image", "output": "stylized"}
    if net.config.styles:
        meta.update(styles=json.dumps(list(styles)), style_input=STYLE_INPUT)
    return meta


def example_inputs(net: TransformerNet, image: torch.Tensor, blend: bool = False
                   ) -> tuple[torch.Tensor, ...]:
    """`net`'s inputs for `image`: the image, and for a multi-style network a mix (one-hot on
    the first style, or with `blend` every style weighed 1, 2, 3...)."""
    n = net.config.styles
    if not n:
        return (image,)
    mix = torch.arange(1.0, n + 1) if blend else torch.eye(n)[0]
    return image, mix


def finish_graph(tmp: Path, path: Path, metadata: dict[str, str], doc: str) -> bytes:
    """Write `metadata` and `doc` into the exported graph `tmp` (to become `path`), check it
    with onnx.checker and with what fastnst-infer accepts (onnx_checks.check_graph), and
    return its bytes; ExportError if a check fails."""
    import onnx

    from fastnst.onnx_checks import check_graph

    model = onnx.load(str(tmp))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = doc
    onnx.save(model, str(tmp))
    try:
        onnx.checker.check_model(str(tmp), full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{path}: onnx.checker failed: {e}") from None
    data = tmp.read_bytes()
    try:
        check_graph(path, data)
    except ModelFileError as e:
        raise ExportError(f"{e}; nothing written (this torch version exports operators"
                          " fastnst does not run)") from None
    return data


def export_onnx(net: TransformerNet, path: str | os.PathLike[str], style: str, *,
                fp16: bool = False, opset: int = DEFAULT_OPSET,
                verify_sizes: Sequence[tuple[int, int]] = VERIFY_SIZES,
                styles: Sequence[str] = (), replace: bool = True) -> Verification:
    """Export `net` to `path` (atomically) and verify it; raise ExportError if it does not match.
    A multi-style network (`styles`: its style names) gets a second input, `style_weights`.
    With `replace=False` an existing `path` is kept (OutputExists)."""
    net = net.float().eval().cpu()
    module: nn.Module = _Float32IO(copy.deepcopy(net)).eval() if fp16 else net
    path = Path(path)
    with atomic_path(path, replace=replace) as tmp:
        # The TorchScript-based exporter: TransformerNet has no size-dependent Python on the
        # export path, so dynamic_axes give a graph valid at any size.
        # Its warnings (deprecation, instance norm's training flag) are noise here: the
        # verification below is what tells a good export from a bad one.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs = example_inputs(net, torch.rand(1, 3, 64, 64))
            torch.onnx.export(module, inputs, str(tmp), dynamo=False,
                              input_names=["image", STYLE_INPUT][:len(inputs)],
                              output_names=["stylized"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "stylized": {0: "batch", 2: "height", 3: "width"}},
                              opset_version=opset)
        data = finish_graph(tmp, path, onnx_metadata(style, net, fp16, styles),
                            f"fastnst style model '{style}': {IO_CONVENTION}")
        report = dataclasses.replace(verify(net, tmp, verify_sizes, TOLERANCE[fp16]), data=data)
        check_match(path, report)
    return report


def check_match(path: Path, report: Verification) -> None:
    """ExportError unless ONNX Runtime matched PyTorch within the tolerance at every size."""
    bad = {s: d for s, d in report.max_abs_diff.items() if not d <= report.tolerance}
    if bad:
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by more than"
                          f" {report.tolerance:g} at {bad}; nothing written")


CACHE_KEY = ".key"  # in <cache>/onnx: the secret the records of the cache are keyed with


def _cache_key(folder: Path) -> bytes:
    """The cache's secret (32 random bytes, made once, mode 0600): a record made with it
    shows that fastnst wrote the entry; a file placed there by anyone else has none."""
    import secrets

    path = folder / CACHE_KEY
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ModelFileError(path, f"the ONNX cache's key: {os_problem(e)}") from None
    with os.fdopen(fd, "rb") as f:
        key = f.read(33)
    if len(key) != 32:
        raise ModelFileError(path, "the ONNX cache's key is not 32 bytes; remove it")
    return key


def _record(key: bytes, model_digest: str, data: bytes) -> str:
    """The proof that `data` is fastnst's export of the model with SHA-256 `model_digest`."""
    import hashlib
    import hmac

    return hmac.new(key, f"{model_digest} {hashlib.sha256(data).hexdigest()}".encode(),
                    "sha256").hexdigest()


def _cached_entry(path: Path, record: Path, key: bytes, model_digest: str) -> bytes | None:
    """The bytes of the cache entry `path` if its `record` proves it (never through a link),
    else None."""
    try:
        for file in (path, record):
            if file.is_symlink():
                return None
        data = read_bounded(path, MAX_MODEL_BYTES)
        proof = read_bounded(record, 1000).decode("ascii", "replace").strip()
    except FileProblem:
        return None
    import hmac

    return data if hmac.compare_digest(proof, _record(key, model_digest, data)) else None


def cached_export(digest: str, make: Callable[[Path], bytes]) -> tuple[Path, bytes]:
    """The cached, verified ONNX export of what has the SHA-256 `digest`, and its bytes: made by
    `make(path)` (which writes and verifies `path` and returns its bytes) on first use, under
    `<cache>/onnx/` by the digest, so nothing from a file's metadata reaches the cached file's
    name. An entry is used only with its record (`<name>.onnx.record`: a keyed hash of the
    digest and of the export's own hash, written with it), never through a link; anything else
    there is exported again over."""
    from fastnst.download import cache_dir
    from fastnst.onnx_checks import check_graph

    folder = cache_dir() / "onnx"
    key = _cache_key(folder)
    path, record = folder / f"{digest[:32]}.onnx", folder / f"{digest[:32]}.onnx.record"
    if (data := _cached_entry(path, record, key, digest)) is not None:
        try:
            check_graph(path, data)
            return path, data
        except ModelFileError:  # made by another version of fastnst or torch: made again
            pass
    data = make(path)
    with atomic_path(record) as tmp:
        tmp.write_text(_record(key, digest, data) + "\n")
    return path, data


def cached_onnx(model: str | os.PathLike[str]) -> tuple[Path, bytes]:
    """The verified ONNX export of the style model file `model` and its bytes, made on first
    use and cached by the SHA-256 of the model file (cached_export): a changed model gets a new
    export. The model file is read once, bounded by MAX_MODEL_BYTES."""
    import hashlib

    try:
        model_bytes = read_bounded(model, MAX_MODEL_BYTES)
    except FileProblem as e:
        raise ModelFileError(model, str(e)) from None

    def make(path: Path) -> bytes:
        net, meta = load_model(model, data=model_bytes)
        return export_onnx(net, path, meta["style"], styles=meta.get("styles", ())).data

    return cached_export(hashlib.sha256(model_bytes).hexdigest(), make)


def verify(net: TransformerNet, onnx_path: str | os.PathLike[str],
           sizes: Sequence[tuple[int, int]], tolerance: float) -> Verification:
    """Run the ONNX model with ONNX Runtime (CPU) and `net` (fp32) on the same random images; a
    multi-style network with a one-hot mix, and a blend at the first size."""
    from fastnst.onnx_checks import new_session

    session = new_session(str(onnx_path), ["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    diffs: dict[tuple[int, int], float] = {}
    start = time.perf_counter()
    cases = [(h, w, False) for h, w in sizes]
    if net.config.styles and sizes:
        cases.append((*sizes[0], True))
    for h, w, blend in cases:
        inputs = example_inputs(net, torch.rand(1, 3, h, w, generator=generator), blend)
        with torch.inference_mode():
            expected = net(*inputs).numpy()
        feeds = dict(zip(["image", STYLE_INPUT], (x.numpy() for x in inputs), strict=False))
        got = session.run(["stylized"], feeds)[0]
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape \
            else float("inf")
        diffs[(h, w)] = max(diff, diffs.get((h, w), 0.0))
    return Verification(diffs, tolerance, time.perf_counter() - start)


def output_path(spec: str | None, name: str) -> Path:
    """The file `-o spec` names: a .onnx file, or `<name>.onnx` in a folder (one that exists,
    or `spec` ending in /; default: here)."""
    spec = spec or os.curdir
    check_name_length(spec)
    output = Path(spec).expanduser()
    if output.is_dir() or spec.endswith(("/", os.sep)):
        return output / f"{name}.onnx"
    if output.suffix.lower() != ".onnx":
        raise ExportError(f"-o {shown(spec)}: an ONNX model is written as .onnx; give such a"
                          " file, or a folder (ending in / if it is to be made)")
    return output


def main(argv: Sequence[str] | None = None) -> int:
    """`fastnst-export`: a style model to a verified ONNX file."""
    prepare_console()
    from fastnst.styles import model_path

    parser = argparse.ArgumentParser(prog="fastnst-export", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--style",
                      help="a shipped style name or a .safetensors model file (a"
                           " multi-style model is exported whole, its mix an input)")
    what.add_argument("--painter", action="store_true",
                      help="the painting decoder with VGG19: one graph for any painting, its"
                           " inputs `image` and `painting` (fastnst.painting_onnx)")
    parser.add_argument("-o", "--output",
                        help="the .onnx file, or a folder for <style>.onnx: one that exists, or"
                             " a name ending in / (default: here)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic")
    parser.add_argument("--opset", type=bounded(*OPSETS), default=DEFAULT_OPSET,
                        help=f"ONNX opset version, {OPSETS[0]}-{OPSETS[1]}")
    args = parser.parse_args(argv)
    try:
        if args.painter:
            from fastnst.painting_onnx import export_painter_onnx
            from fastnst.universal import PAINTER, shipped_painter, universal_stylizer

            if args.fp16:
                raise ExportError("--fp16 --painter: the painter's covariance roots need"
                                  " float32; export it without --fp16")
            stylizer = universal_stylizer(torch.device("cpu"))  # its one-line error if none
            output = output_path(args.output, PAINTER)
            check_output(output, [shipped_painter()], args.overwrite)
            report = export_painter_onnx(output, stylizer, opset=args.opset,
                                         replace=args.overwrite)
        else:
            source = model_path(args.style, "--style")
            net, meta = load_model(source)
            output = output_path(args.output, meta["style"])  # a style_label: no path in it
            # Now, not after the export and its verification; the model is never replaced.
            check_output(output, [source], args.overwrite)
            report = export_onnx(net, output, meta["style"], fp16=args.fp16, opset=args.opset,
                                 styles=meta.get("styles", ()), replace=args.overwrite)
    except FastnstError as e:
        return print_error("fastnst-export", e)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; the file is written atomically, or not
        print("fastnst-export: interrupted; nothing written", file=sys.stderr)
        return 130
    checks = ", ".join(f"{w}x{h}: {d:.1e}" for (h, w), d in report.max_abs_diff.items())
    print(f"wrote {shown(output)}; ONNX Runtime vs PyTorch max |diff| {checks}"
          f" (limit {report.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
