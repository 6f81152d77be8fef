"""Device choice and whether bf16 is fast here (CUDA with bf16, or a CPU with AMX tiles)."""

from __future__ import annotations

import torch

from fastnst.errors import FastnstError


class DeviceError(FastnstError, RuntimeError):
    """A device asked for that this machine does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cpu`, `cuda`, `cuda:1` as given.

    Raises DeviceError when CUDA is asked for but absent.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def bf16_is_fast(device: torch.device) -> bool:
    """True where bf16 matrix work beats fp32: CUDA GPUs with bf16, CPUs with AMX tiles.

    On AVX2/AVX-512 CPUs without AMX, bf16 convolutions are slower than fp32 (measured: 8x
    slower on an AVX2 EPYC), so this returns False there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx and amx())
    return False
