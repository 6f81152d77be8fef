"""Device choice and whether bf16 is fast here (CUDA with bf16, or a CPU with AMX tiles)."""

from __future__ import annotations

import platform

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


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def hardware_name(device: torch.device) -> str:
    """What `device` is, in words for a model card: the GPU's name, or the CPU's and its threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"
