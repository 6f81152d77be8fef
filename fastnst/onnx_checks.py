"""Untrusted `.onnx` files: what of them fastnst agrees to run, and runs that Ctrl-C can stop.

A graph is refused before ONNX Runtime sees it unless it is made only of the operators that
fastnst's own exports use (no control flow: `Loop`, `Scan` and `If` can run forever), holds all its
tensors inside the file (external data would read other files) and is of a bounded size.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping

import numpy as np

from fastnst.console import shown
from fastnst.model_files import ModelFileError

# Every operator fastnst.export and fastnst.painting_onnx write (export.OPSETS 11-22, float32
# and float16), nothing else.
ALLOWED_OPS = frozenset({
    "Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Conv", "DepthToSpace", "Gather",
    "Identity", "InstanceNormalization", "Pad", "Relu", "Reshape", "Resize", "Shape", "Sigmoid",
    "Slice", "Transpose", "Unsqueeze",
    # multi-style networks: the style mix (clipped, normalised) times the per-style scales
    "Clip", "Div", "MatMul", "Mul", "ReduceSum",
    # the painter's graph (fastnst.painting_onnx): VGG19's pooling, the features' moments and
    # the Newton-Schulz roots, the padding to the pooling's multiple, the photo's layout
    "AveragePool", "Einsum", "EyeLike", "Flatten", "MaxPool", "Mod", "Neg", "ReduceMean",
    "Sqrt", "Sub"})
STANDARD_DOMAINS = ("", "ai.onnx")
MAX_NODES = 10_000  # the widest shipped architecture has about 220; 64 residual blocks ~1,500
# Nodes whose inputs are all constants, which ONNX Runtime computes when it loads the graph:
# fastnst's exports have only these (the pads of the edge pad: a few dozen numbers; the
# painter's graph: its 512 x 512 identity matrices and 1.5 times them, 1.6 million numbers),
# and the elements they make in all are bounded, so a graph cannot make the loader work long
# or fill memory (4 million float32 numbers: 16 MB).
FOLDABLE_OPS = frozenset({"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice",
                          "Transpose", "Cast", "Identity", "Unsqueeze",
                          "EyeLike", "Add", "Sub", "Mul"})
MAX_FOLDED_ELEMENTS = 4_000_000


def check_graph(path: str | os.PathLike[str], data: bytes) -> None:
    """Refuse (ModelFileError) the ONNX model `data` (the bytes of the file `path`, read once:
    give ONNX Runtime the same bytes) unless it is a plain feed-forward graph of ALLOWED_OPS
    with all its tensors inside. Runs nothing."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf raises its own types on files that are not ONNX
        raise ModelFileError(path, f"not a loadable ONNX model ({type(e).__name__})") from None
    graph = model.graph
    if len(graph.node) > MAX_NODES:
        raise ModelFileError(path, f"{len(graph.node)} operators; fastnst's models have at most"
                                   f" {MAX_NODES}")
    if model.functions:
        raise ModelFileError(path, "defines its own functions; fastnst's models use none")
    domains = {o.domain for o in model.opset_import} - set(STANDARD_DOMAINS)
    if domains:
        raise ModelFileError(path, f"uses operator domains {shown(sorted(domains))}; fastnst's"
                                   " models use only the standard one")
    for node in graph.node:
        if node.domain not in STANDARD_DOMAINS or node.op_type not in ALLOWED_OPS:
            name = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
            raise ModelFileError(path, f"uses operator {shown(name)}, which fastnst's models"
                                       " never use; refused (only plain feed-forward graphs run)")
    sparse = onnx.AttributeProto.SPARSE_TENSOR
    if graph.sparse_initializer or any(a.type == sparse for n in graph.node for a in n.attribute):
        raise ModelFileError(path, "holds sparse tensors; fastnst's models hold none")
    tensors = [*graph.initializer, *(a.t for n in graph.node for a in n.attribute
                                     if a.type == onnx.AttributeProto.TENSOR)]
    if any(uses_external_data(t) for t in tensors):
        raise ModelFileError(path, "keeps tensors in other files (external data); fastnst's"
                                   " models hold all their weights inside")
    if problem := _folding_problem(graph):
        raise ModelFileError(path, f"{problem}; refused (fastnst's models compute almost nothing"
                                   " when they load)")


def _folding_problem(graph) -> str | None:  # graph: onnx.GraphProto
    """What of `graph` ONNX Runtime would compute at load beyond what fastnst's exports do
    (a node of constants only that is not in FOLDABLE_OPS, or more than MAX_FOLDED_ELEMENTS
    made so); None when nothing. Sizes are bounded from above without computing anything."""
    import math

    from onnx import numpy_helper

    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}  # constant: its elements
    values = {t.name: t for t in graph.initializer}
    folded = 0
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if not all(i in sizes for i in inputs):
            continue  # depends on the image or the mix: computed when the model runs
        if node.op_type not in FOLDABLE_OPS:
            return f"computes {shown(node.op_type)} on constants alone"
        if node.op_type == "Constant":
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            if tensor is None:
                return "a Constant that is not a tensor"
            size = math.prod(tensor.dims)
            values[node.output[0]] = tensor
        elif node.op_type == "ConstantOfShape":
            shape = values.get(inputs[0]) if inputs else None
            if shape is None or math.prod(shape.dims) > 8:
                return "a ConstantOfShape whose shape is not given as it is"
            size = math.prod(int(d) for d in numpy_helper.to_array(shape).reshape(-1))
        elif node.op_type == "Concat":
            size = sum(sizes[i] for i in inputs)
        else:  # reshaping, slicing, casting: no more elements than its inputs
            size = max((sizes[i] for i in inputs), default=0)
        folded += max(size, 0)
        if folded > MAX_FOLDED_ELEMENTS:
            return f"makes more than {MAX_FOLDED_ELEMENTS:,} numbers from constants at load"
        for output in node.output:
            sizes[output] = size
    return None


def new_session(model: bytes | str, providers: list[str]):  # -> ort.InferenceSession
    """An ONNX Runtime session of `model` (bytes, or a path of fastnst's own file), whose own
    log lines (coloured, and naming what the file says) stay off the terminal: a failure
    reaches the caller as an exception, which the commands print as one line."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only
    return ort.InferenceSession(model, sess_options=options, providers=providers)


_JOBS: queue.SimpleQueue = queue.SimpleQueue()  # (run, result box, done) for the worker
_WORKER: list[threading.Thread] = []  # the one worker thread, started on first use


def _work() -> None:
    """The worker: runs ONNX Runtime calls one after another, for as long as the process runs
    (one thread for every call: starting a thread per frame costs a millisecond)."""
    while True:
        run, box, done = _JOBS.get()
        try:
            box["out"] = run()
        except Exception as e:  # handed to the caller's thread
            box["error"] = e
        finally:
            done.set()


def run_bounded(session, feeds: Mapping[str, np.ndarray], output: str,
                timeout: float | None = None) -> np.ndarray:
    """`session.run([output], feeds)[0]` on a worker thread, so that Ctrl-C stops it (ONNX
    Runtime holds the main thread until it returns) and, with `timeout` (seconds), so that it
    stops after that long. ONNX Runtime stops between operators: one operator that runs for
    minutes on its own is not cut short. Raises TimeoutError, KeyboardInterrupt or what the run
    raised."""
    import onnxruntime as ort

    if not _WORKER:
        _WORKER.append(threading.Thread(target=_work, daemon=True, name="onnxruntime"))
        _WORKER[0].start()
    options = ort.RunOptions()
    box: dict[str, object] = {}
    done = threading.Event()  # not Thread.join: Ctrl-C inside join can mark a live thread dead
    _JOBS.put((lambda: session.run([output], dict(feeds), options)[0], box, done))
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not done.wait(0.05):
            if deadline is not None and time.monotonic() > deadline:
                options.terminate = True
                done.wait(5.0)  # ONNX Runtime stops between operators
                raise TimeoutError(f"did not finish within {timeout:g} s")
    except KeyboardInterrupt:
        options.terminate = True
        done.wait(5.0)  # let it unwind: exiting while it runs aborts the process
        raise
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["out"]  # type: ignore[return-value]
