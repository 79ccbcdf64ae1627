"""The one place that decides which torch device runs the work, and at what precision."""

from __future__ import annotations

import contextlib
import re

from .errors import Rb2vError

# inference precisions of the vendored models on CUDA: "float32" (TF32 off) is the one the golden
# tolerances are stated for; "tf32" lets convolutions and matmuls round their inputs to TF32;
# "float16" is autocast. README, "Measured on a GPU", gives each one's speed and distance from the goldens.
PRECISIONS = ("float32", "tf32", "float16")


_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(device: str) -> None:
    """A device's spelling, checked without torch (whether this machine has it is ``resolve_device``'s)."""
    if not _DEVICE_NAME.fullmatch((device or "auto").strip().lower()):
        raise Rb2vError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def resolve_device(device: str | None = "auto"):
    """Map "auto" | "cpu" | "cuda" | "cuda:N" to a ``torch.device``.

    "auto" takes CUDA when it is available, else the CPU. Asking for CUDA on a
    machine without it is a user error, not a silent fallback.
    """
    import torch

    check_device_name(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise Rb2vError(f"device {device!r} requested but CUDA is not available on this machine (use --device cpu)")
    return torch.device(name)


# what a training step may run at (training_autocast): "auto", "cuda-only" (mixed precision on CUDA
# alone, the rule before "auto" existed) or "float32" throughout
TRAINING_PRECISIONS = ("auto", "cuda-only", "float32")


def native_cpu_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). Elsewhere oneDNN emulates
    it, so it is no faster than float32."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private helpers of torch.cpu
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def training_autocast(device, precision: str = "auto"):
    """The autocast dtype of a training step on ``device``, or None for float32 throughout.

    "auto": float16 on CUDA (with a gradient scaler), bfloat16 on a CPU that computes it natively,
    float32 elsewhere; "cuda-only": float16 on CUDA, float32 on every CPU; "float32": neither.
    Measured on this project's 2-core AVX512-BF16 machine (2026-12-05, blur2vid, one thread): a
    training step 216 -> 130 ms, 394 -> 217 ms with R_hyp; `rb2v bench blur2vid`'s hypercut model in
    560 instead of 837 s, 25.73/25.69 against 25.58/25.50 dB on the border frames.
    """
    import torch

    if precision not in TRAINING_PRECISIONS:
        raise Rb2vError(f"unknown training precision {precision!r}: use {', '.join(TRAINING_PRECISIONS)}")
    if precision == "float32":
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and precision == "auto" and native_cpu_bfloat16():
        return torch.bfloat16
    return None


def check_precision(precision: str, device) -> str:
    """``precision`` if the device can run it (tf32 and float16 need CUDA), else a one-line error."""
    if precision not in PRECISIONS:
        raise Rb2vError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision != "float32" and device.type != "cuda":
        raise Rb2vError(f"precision {precision} needs a CUDA device, not {device}")
    return precision


@contextlib.contextmanager
def inference_precision(device, precision: str = "float32"):
    """Inference at ``precision`` on ``device`` (see PRECISIONS); the CPU always runs float32."""
    import torch

    if device.type != "cuda":
        yield
        return
    if precision == "float16":
        with torch.autocast("cuda", dtype=torch.float16):
            yield
        return
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    saved = [f.allow_tf32 for f in flags]
    for f in flags:
        f.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        for f, value in zip(flags, saved):
            f.allow_tf32 = value
