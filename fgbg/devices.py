"""One device choice for a run: `auto` | `cpu` | `cuda` | `cuda:N`.

Resolved once per run and handed to every backend that loads a model. Importing this module does
not import torch; `resolve_device` imports it only when a model backend asks.
"""

from __future__ import annotations

from .errors import InputError

CHOICES = ("auto", "cpu", "cuda")


def check_device(device: str) -> str:
    """Reject a malformed --device before any work starts (no torch import)."""
    base, _, index = device.partition(":")
    if base not in CHOICES or (index and (base != "cuda" or not index.isdigit())):
        raise InputError(f"unknown device '{device}'",
                         cause="fgbg runs on auto, cpu, cuda or cuda:N",
                         hint="use --device auto (a GPU when torch sees one, else the CPU)")
    return device


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'. Asking for cuda without one fails
    with an InputError naming the fix."""
    check_device(device)
    try:
        import torch
    except ImportError:
        if device.startswith("cuda"):
            raise InputError(f"--device {device} needs torch", cause="torch is not installed",
                             hint="pip install 'fgbg[models]', or use --device cpu") from None
        return "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is visible",
                         cause="torch.cuda.is_available() is False on this machine",
                         hint="use --device cpu (or --device auto)")
    return device


def free_cuda_memory() -> None:
    """Return cached GPU blocks to the driver between stages (a no-op without torch or a GPU)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
