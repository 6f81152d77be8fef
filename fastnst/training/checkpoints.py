"""A training run's checkpoints: written atomically, vetted before they are loaded, and the one
a run resumes from (`resume=`).

Each run keeps its checkpoints in `<run>/checkpoints/` (`step<N>.ckpt` every `checkpoint_every`
steps, `last.ckpt` the newest). They are training state for `resume=`, not style models.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from fastnst.console import shown
from fastnst.errors import FastnstError
from fastnst.files import atomic_path

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"


class CheckpointError(FastnstError, ValueError):
    """A checkpoint or init= model that is missing, unsafe, or not of the configured model."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file and renamed: never half-written. A
    checkpoint vetted by check_checkpoint is handed to Lightning as it was checked (`vetted`),
    not read again from its file, which could have been replaced since."""

    def __init__(self) -> None:
        super().__init__()
        self.vetted: tuple[Path, dict[str, Any]] | None = None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str],
                        storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path: Any, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if self.vetted is not None and Path(path) == self.vetted[0]:
            return self.vetted[1]
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def resume_checkpoint(resume: bool | str | None, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None (resume false), the given path, or for `true` the
    newest `last.ckpt` among the other runs beside `run_dir`."""
    if resume in (None, False, "false", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        found = [p for p in run_dir.parent.glob(f"*/{CHECKPOINTS}/{LAST}")
                 if p.parents[1] != run_dir]
        if not found:
            raise CheckpointError(f"resume=true: no {CHECKPOINTS}/{LAST} under"
                                  f" {run_dir.parent}/*; nothing to resume")
        return max(found, key=lambda p: p.stat().st_mtime)
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint to resume from not found")
    return path


# Larger than any training checkpoint (the johnson design's weights and Adam's two moments in
# float32: 20 MB; a multi-style one of 256 styles: 40 MB).
MAX_CHECKPOINT_BYTES = 256 * 10**6
# What Lightning writes at the top of a checkpoint, and fastnst's own entry.
CHECKPOINT_KEYS = frozenset({
    "epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
    "optimizer_states", "lr_schedulers", "hparams_name", "hyper_parameters",
    "datamodule_hparams_name", "datamodule_hyper_parameters", "MixedPrecision",
    "native_amp_scaling_state", "fastnst"})


def check_checkpoint(path: Path, net: torch.nn.Module, prefix: str = "net.") -> dict[str, Any]:
    """The Lightning checkpoint of `net`'s architecture (its weights under `prefix`: a
    TransformerNet's under "net.", a universal decoder's under "decoder.") at `path`, read
    once and checked; one
    line (CheckpointError) for anything else. Bounded before anything is unpacked: the file's
    size, then its archive's entries (stored, as torch.save writes them, never compressed; at
    most MAX_CHECKPOINT_BYTES in all). Read with `weights_only=True` (a pickle that would run
    code is refused unexecuted); every weight must be the network's, and the optimizer and loop
    state must be there for a resumed run to go on."""
    import io
    import zipfile
    from pickle import UnpicklingError

    from fastnst.files import FileProblem, megabytes, read_bounded

    try:
        data = read_bounded(path, MAX_CHECKPOINT_BYTES)
    except FileProblem as e:
        raise CheckpointError(f"{path}: {e}") from None
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not the archive torch.save"
                              " writes)") from None
    if (unpacked := sum(e.file_size for e in entries)) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: holds {megabytes(unpacked)}, more than any training"
                              f" checkpoint (at most {megabytes(MAX_CHECKPOINT_BYTES)})")
    if packed := [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({len(packed)} compressed"
                              " entries; torch.save stores them as they are)")
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds Python objects besides tensors, and"
                              " loading them could run code") from None
    except Exception as e:  # torch.load fails in many ways on files that are not its own
        detail = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}:"
                              f" {shown(detail)})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (no state_dict"
                              " and global_step)")
    _check_contents(path, checkpoint, net, prefix)
    return checkpoint


def _check_contents(path: Path, checkpoint: dict[str, Any], net: torch.nn.Module,
                    prefix: str) -> None:
    """CheckpointError unless `checkpoint`'s keys are Lightning's, its weights all the
    network's (finite, of its shapes) and its training state whole."""
    from fastnst.model_files import nonfinite, tensor_specs, weight_problems

    if unknown := sorted(str(k) for k in checkpoint if k not in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: not a fastnst training checkpoint (unknown entries:"
                              f" {shown(', '.join(unknown[:3]))})")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in
                                              state.values()):
        raise CheckpointError(f"{path}: spoiled: its state_dict is not a set of tensors")
    if outside := sorted(str(k) for k in state if not str(k).startswith(prefix)):
        raise CheckpointError(f"{path}: does not fit the configured model= (weights outside"
                              f" the network: {shown(', '.join(outside[:3]))})")
    weights = {k.removeprefix(prefix): v for k, v in state.items()}
    problems = weight_problems(tensor_specs(weights), net)
    if not problems and (bad := nonfinite({k: v.float() for k, v in weights.items()})):
        problems = f"NaN or inf in {', '.join(bad[:3])}"
    if problems:
        raise CheckpointError(f"{path}: does not fit the configured model= ({problems})")
    step = checkpoint["global_step"]
    optimizers = checkpoint.get("optimizer_states")
    loops = checkpoint.get("loops")
    spoiled = (
        "its step is not a count" if type(step) is not int or not 0 <= step < 2**40 else
        "no optimizer state" if not isinstance(optimizers, list) or len(optimizers) != 1
        or not isinstance(optimizers[0], dict)
        or not {"state", "param_groups"} <= optimizers[0].keys() else
        "no loop state" if not isinstance(loops, dict)
        or not isinstance(loops.get("fit_loop"), dict)
        or not all(isinstance(v, dict) for v in loops["fit_loop"].values()) else None)
    if spoiled:
        raise CheckpointError(f"{path}: spoiled ({spoiled}); resume from another checkpoint"
                              " of the run, or start again")


def last_good(last: Path, advice: str) -> str:
    """Where a stopped run can go on from, in words: the checkpoint `last`, then `advice`."""
    if not last.is_file():
        return "No checkpoint was written before it."
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    return f"The last good checkpoint is {last} (step {step}); {advice}"
