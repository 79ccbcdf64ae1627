"""The one place that decides which torch device runs the work."""

from __future__ import annotations

from .errors import Rb2vError


def resolve_device(device: str | None = "auto"):
    """Map "auto" | "cpu" | "cuda" | "cuda:N" to a ``torch.device``.

    "auto" takes CUDA when it is available, else the CPU. Asking for CUDA on a
    machine without it is a user error, not a silent fallback.
    """
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise Rb2vError(f"device {device!r} requested but CUDA is not available on this machine (use --device cpu)")
        return torch.device(name)
    raise Rb2vError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def disable_tf32() -> None:
    """Exact float32 matmuls/convs on GPUs (golden-fixture comparisons need them)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
