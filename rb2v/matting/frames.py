"""Frames crossing the matting API: validation."""

from __future__ import annotations

import numpy as np

from ..errors import Rb2vError


def _float01(arr: np.ndarray, what: str) -> np.ndarray:
    """float32 in [0,1]: uint8/uint16 scaled, floats checked for NaN/inf and clipped (one pass each)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise Rb2vError(f"{what}: unsupported dtype {arr.dtype} (use float32 in [0,1] or uint8)")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise Rb2vError(f"{what}: contains NaN or infinite values")
    return np.clip(arr, 0.0, 1.0)


def _check_image_shape(shape: tuple[int, ...], what: str) -> None:
    if len(shape) != 3 or shape[2] != 3:
        raise Rb2vError(f"{what}: expected an (H,W,3) RGB image, got shape {shape}")
    if shape[0] < 4 or shape[1] < 4:
        raise Rb2vError(f"{what}: image of {shape[1]}x{shape[0]} pixels is too small")


def as_frame(frame, what: str = "frame") -> np.ndarray:
    """(H,W,3) float32 RGB in [0,1]; uint8/uint16 are scaled; anything else is a clear error."""
    arr = np.asarray(frame)
    _check_image_shape(arr.shape, what)
    return _float01(arr, what)


def as_frames(frames, what: str = "frames") -> np.ndarray:
    """(N,H,W,3) float32 RGB in [0,1] (one (H,W,3) frame is a batch of one), checked as ``as_frame``."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise Rb2vError(f"{what}: expected (N,H,W,3) RGB frames, got shape {arr.shape}")
    _check_image_shape(arr.shape[1:], what)
    return _float01(arr, what)
