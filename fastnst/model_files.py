"""Style models: a trained TransformerNet as `<style>.safetensors` with its metadata.

The file holds the network's tensors and string metadata: `format` (always MODEL_FORMAT), `style`
(its name), `architecture` (JSON of TransformerConfig), `io` (the input/output convention), and
whatever else training records (`training`, `steps`, `losses`, as JSON). A multi-style model
also has `styles`: its style names (JSON list), in the order of its style mix. Loading never
unpickles.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from fastnst.console import shown
from fastnst.errors import FastnstError, UsageError
from fastnst.files import FileProblem, atomic_path, megabytes, os_problem, read_bounded
from fastnst.transformer import MAX_STYLES, TransformerConfig, TransformerNet

MODEL_FORMAT = "fastnst-transformer-v1"
SHIPPED_PACKAGE = "fastnst.models"  # the repository's models/ folder, installed
MODEL_SUFFIX = ".safetensors"  # how a model file is written
MODEL_SUFFIXES = (MODEL_SUFFIX, ".onnx")
IO_CONVENTION = "input and output (N, 3, H, W) RGB float in [0, 1], any H and W"


class ModelFileError(FastnstError, ValueError):
    """A style model file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(shown(f"{os.fsdecode(path)}: {problem}"))  # one line, whatever the name


def save_model(net: TransformerNet, path: str | os.PathLike[str], style: str,
               extra: Mapping[str, Any] | None = None, styles: Sequence[str] = ()) -> Path:
    """Write `net` to `path` (atomically) with metadata; `extra` values are stored as JSON.
    A multi-style network needs its `styles`, one name per style of its mix."""
    if len(styles) != net.config.styles:
        raise ValueError(f"the network has {net.config.styles} styles; {len(styles)} names given")
    metadata = {"format": MODEL_FORMAT, "style": style, "io": IO_CONVENTION,
                "architecture": json.dumps(net.config.as_dict())}
    if styles:
        metadata["styles"] = json.dumps(list(styles))
    metadata.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


MAX_MODEL_BYTES = 256 * 10**6  # larger than any style model (the full design in float32: 6.7 MB)
MAX_HEADER_BYTES = 10**6  # a model's safetensors header (names, shapes, metadata): about 10 kB


def _looks_pickled(head: bytes) -> bool:
    """True for bytes that start like torch.save output (zip) or a raw pickle (protocol 2-5)."""
    return head[:2] == b"PK" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _not_safetensors(path: str | os.PathLike[str], head: bytes, why: str) -> ModelFileError:
    if _looks_pickled(head):
        return ModelFileError(path, "a PyTorch (pickle) file, refused: pickles can run code, so"
                                    " models load only from .safetensors (training writes"
                                    " <style>.safetensors beside its checkpoints)")
    return ModelFileError(path, f"not a safetensors model ({why})")


Header = tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]


def parse_header(path: str | os.PathLike[str], data: bytes, size: int) -> Header:
    """The string metadata and `{tensor: (dtype, shape)}` of a safetensors file of `size`
    bytes, from its first bytes `data` (at least the header); checked against the file's size
    and MAX_HEADER_BYTES, never unpickled. ModelFileError naming `path`."""
    length = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8) or len(data) < 8 + length:
        raise _not_safetensors(path, data, "no header of a plausible size")
    try:
        header = json.loads(data[8:8 + length])
        raw = header.pop("__metadata__", None) or {}
        specs, end = {}, 0
        for name, entry in header.items():
            start, stop = entry["data_offsets"]
            specs[name] = (str(entry["dtype"]), tuple(int(n) for n in entry["shape"]))
            end = max(end, int(stop))
            if not 0 <= start <= stop:
                raise ValueError(f"{name}: offsets {start}, {stop}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            raise ValueError("metadata that is not text")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise _not_safetensors(path, data, f"bad header: {type(e).__name__}") from None
    if end > size - 8 - length:
        raise _not_safetensors(path, data, f"truncated: {size} bytes, the header needs"
                                           f" {8 + length + end}")
    return raw, specs


def _read_header(path: str | os.PathLike[str]) -> Header:
    """parse_header of the file `path`, reading only its header."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO cannot hang
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(fd).st_size
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ModelFileError(path, "not a file (a folder, a FIFO or a device)")
            if size > MAX_MODEL_BYTES:
                raise ModelFileError(path, f"{megabytes(size)}, more than any style model"
                                           f" (at most {megabytes(MAX_MODEL_BYTES)})")
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            head += f.read(min(max(length, 0), MAX_HEADER_BYTES))
    except OSError as e:
        raise ModelFileError(path, os_problem(e)) from None
    return parse_header(path, head, size)


def _metadata(path: str | os.PathLike[str], raw: Mapping[str, str]) -> dict[str, Any]:
    """The checked, decoded metadata of a model file from its raw strings (read_metadata)."""
    if raw.get("format") != MODEL_FORMAT:
        raise ModelFileError(path, f"not a fastnst style model (format"
                                   f" {shown(raw.get('format'))!r}, expected {MODEL_FORMAT!r})")
    try:
        metadata = {k: v if k in ("format", "style", "io") else json.loads(v)
                    for k, v in raw.items()}
    except (ValueError, RecursionError) as e:  # nested too deep; integers of > 4300 digits
        raise ModelFileError(path, f"malformed metadata ({type(e).__name__}: {e})") from None
    metadata["style"] = style_label(metadata.get("style", Path(path).stem))
    if "styles" in metadata:
        names = metadata["styles"]
        if not isinstance(names, list) or len(names) > MAX_STYLES:
            raise ModelFileError(path, f"malformed metadata: styles must be a list of at most"
                                       f" {MAX_STYLES} names")
        metadata["styles"] = [style_label(n) for n in names]
        if len(set(metadata["styles"])) != len(names):
            raise ModelFileError(path, "malformed metadata: the style names repeat")
    return metadata


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a model file: `format`, `style`, `io` as strings, the rest decoded JSON.
    `style` is untrusted text, returned as its style_label. Reads the header only."""
    return _metadata(path, _read_header(path)[0])


# Weight dtypes a model file may hold (safetensors' names); all are read as float32.
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
                "F64": torch.float64}
_DTYPE_NAMES = {v: k for k, v in FLOAT_DTYPES.items()}
STYLE_LABEL_MAX = 64  # characters


def style_label(name: object) -> str:
    """A style name from a model file (untrusted text) made safe for file names and terminals:
    ASCII letters, digits, '-' and '_' only (every other run of characters becomes one '_'),
    not starting with '-', at most STYLE_LABEL_MAX characters; "style" if nothing is left."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).lstrip("_-")[:STYLE_LABEL_MAX]
    return label.rstrip("_") or "style"


def tensor_specs(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """`{name: (dtype, shape)}` of loaded tensors, dtypes named as safetensors names them."""
    return {k: (_DTYPE_NAMES.get(v.dtype, str(v.dtype).removeprefix("torch.")), tuple(v.shape))
            if isinstance(v, torch.Tensor) else ("not a tensor", ()) for k, v in tensors.items()}


def weight_problems(specs: Mapping[str, tuple[str, tuple[int, ...]]], net: TransformerNet
                    ) -> str:
    """What keeps tensors of `specs` (`{name: (dtype, shape)}`, see tensor_specs) from being
    `net`'s weights, in words ("" if nothing): misshapen, missing and unexpected tensors, and
    dtypes that are not floating point; the first three named. Needs no tensor data, so it runs
    before anything is read or allocated."""
    expected = net.state_dict()
    problems = [f"{k} is {list(specs[k][1])}, the architecture needs {list(v.shape)}"
                for k, v in expected.items() if k in specs and specs[k][1] != tuple(v.shape)]
    problems += [f"{k} missing" for k in expected if k not in specs]
    problems += [f"{k} unexpected" for k in specs if k not in expected]
    problems += [f"{k} is {dtype}, not floating point" for k, (dtype, _) in specs.items()
                 if dtype not in FLOAT_DTYPES]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def nonfinite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that hold NaN or inf (check after conversion to float32: 1e300 in
    float64 is finite there and inf here)."""
    return [k for k, v in tensors.items() if not v.isfinite().all()]


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu",
               data: bytes | None = None) -> tuple[TransformerNet, dict[str, Any]]:
    """Read a style model: the network (eval mode, on `device`) and its metadata.

    The file is read once, refused unread when larger than MAX_MODEL_BYTES, and these same
    bytes are checked in this order, each before anything is built from it: the metadata, the
    tensor names, shapes and dtypes in the header against the architecture (on the meta device:
    no memory), then, once read as float32, that every value is finite. `data`: the file's
    bytes, when the caller has read them already."""
    if data is None:
        try:
            data = read_bounded(path, MAX_MODEL_BYTES)  # once: what is checked is loaded
        except FileProblem as e:
            raise ModelFileError(path, str(e)) from None
    raw, specs = parse_header(path, data, len(data))
    metadata = _metadata(path, raw)
    if metadata.get("io") != IO_CONVENTION:
        raise ModelFileError(path, f"unknown input/output convention"
                                   f" {shown(metadata.get('io'))!r} (expected {IO_CONVENTION!r})")
    try:
        config = TransformerConfig(**metadata["architecture"])
        net = TransformerNet.skeleton(config)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(path, f"bad architecture metadata ({type(e).__name__}: {e})"
                             ) from None
    if len(metadata.get("styles", ())) != config.styles:
        raise ModelFileError(path, f"the architecture has {config.styles} styles, the metadata"
                                   f" names {len(metadata.get('styles', ()))}")
    problems = weight_problems(specs, net)
    if problems:
        raise ModelFileError(path, f"weights do not fit architecture {config}: {problems}")
    try:
        weights = {k: v.float() for k, v in load_bytes(data).items()}
    except (SafetensorError, ValueError) as e:
        raise ModelFileError(path, f"unreadable weights ({e})") from None
    if bad := nonfinite(weights):
        raise ModelFileError(path, f"weights hold NaN or inf: {', '.join(bad[:3])}")
    net.load_state_dict(weights, assign=True)
    return net.eval().to(device), metadata


def shipped_models(suffix: str = MODEL_SUFFIX) -> dict[str, Path]:
    """The style models installed with fastnst: `{style name: file}` with that suffix."""
    from importlib import resources

    try:
        folder = resources.files(SHIPPED_PACKAGE)
    except ModuleNotFoundError:
        return {}
    return {p.name.removesuffix(suffix): Path(str(p)) for p in folder.iterdir()
            if p.name.endswith(suffix)}


def is_multi_style(path: str | os.PathLike[str]) -> bool:
    """Whether the model file `path` is a multi-style model (its metadata names `styles`)."""
    return bool(read_metadata(path).get("styles"))


FAST_SUFFIX = "-fast"  # `<style>-fast`: the style's fast network (python -m fastnst.distill)


class UnknownStyleError(UsageError, ModelFileError):
    """A style name that is neither shipped nor a model file: a usage error (exit status 2)."""
