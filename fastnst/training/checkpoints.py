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

from fastnst.errors import FastnstError
from fastnst.files import atomic_path
from fastnst.transformer import TransformerNet

CHECKPOINTS = "checkpoints"
LAST = "last.ckpt"


class CheckpointError(FastnstError, ValueError):
    """A checkpoint or init= model that is missing, unsafe, or not of the configured model."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file and renamed: never half-written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str],
                        storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


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


def check_checkpoint(path: Path, net: TransformerNet) -> None:
    """Refuse, in one line, a checkpoint that is not a Lightning checkpoint of `net`'s
    architecture. It is read with `weights_only=True`: a pickle that would run code is refused
    unexecuted."""
    from pickle import UnpicklingError

    from fastnst.model_files import nonfinite, tensor_specs, weight_problems

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds Python objects besides tensors, and"
                              " loading them could run code") from None
    except Exception as e:  # torch.load fails in many ways on files that are not its own
        detail = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}:"
                              f" {detail})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (no state_dict"
                              " and global_step)")
    prefix = "net."
    weights = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items()
               if k.startswith(prefix)}
    problems = weight_problems(tensor_specs(weights), net)
    if not problems and (bad := nonfinite({k: v.float() for k, v in weights.items()})):
        problems = f"NaN or inf in {', '.join(bad[:3])}"
    if problems:
        raise CheckpointError(f"{path}: does not fit the configured model= ({problems})")


def last_good(last: Path, advice: str) -> str:
    """Where a stopped run can go on from, in words: the checkpoint `last`, then `advice`."""
    if not last.is_file():
        return "No checkpoint was written before it."
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    return f"The last good checkpoint is {last} (step {step}); {advice}"
