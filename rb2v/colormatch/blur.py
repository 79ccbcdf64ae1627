"""Synthetic blur: upsample a window of frames in time, average the sub-frames.

A window of ``n`` frames becomes ``sub`` sub-frames: each consecutive pair (a, b) adds
a and ``k - 1`` interpolated frames at ``t = j/k`` (``k = (sub-1)/(n-1)``), then the last
frame closes the window. For the paper's n=7, sub=19: k=3, t = 1/3 and 2/3.
``space="linear"`` averages in linear light (inverse sRGB curve on each sub-frame, the
forward curve after the mean); interpolation itself always runs on the sRGB frames, as
the interpolators expect.
"""

from __future__ import annotations

import numpy as np

from ..colorspace import linear_to_srgb, srgb_to_linear
from ..errors import Rb2vError
from ..interpolation import Interpolator, load_interpolator
from .matrix import check_rgb

SPACES = ("srgb", "linear")


def steps_per_pair(n: int, sub: int) -> int:
    """k: sub-frames contributed by each consecutive pair (``sub - 1 = k (n - 1)``)."""
    if n < 2:
        raise Rb2vError(f"synthetic blur needs a window of at least 2 frames, got n={n}")
    if sub < n or (sub - 1) % (n - 1):
        raise Rb2vError(f"synthetic blur: sub-1 must be a positive multiple of n-1 (n={n}, sub={sub})")
    return (sub - 1) // (n - 1)


def check_space(space: str) -> None:
    if space not in SPACES:
        raise Rb2vError(f"unknown blur space {space!r} (use 'srgb' or 'linear')")


def dense_frames(frames: np.ndarray, k: int, interp: Interpolator, batch: int = 8) -> np.ndarray:
    """``(T-1)*k + 1`` float32 frames: each pair's first frame and its k-1 in-betweens, then the last."""
    T = len(frames)
    out = np.empty(((T - 1) * k + 1,) + frames.shape[1:], dtype=np.float32)
    out[::k] = frames
    for s in range(0, T - 1, batch):  # batches bound the interpolator's memory
        e = min(s + batch, T - 1)
        for j in range(1, k):
            out[s * k + j : e * k : k] = interp.batch(frames[s:e], frames[s + 1 : e + 1], j / k)
    return out


def window_blur(frames: np.ndarray, sub: int, interp: Interpolator, space: str) -> np.ndarray:
    """The synthetic blur of one window, float64 (the literal definition)."""
    dense = dense_frames(frames, steps_per_pair(len(frames), sub), interp).astype(np.float64)
    if space == "linear":
        return linear_to_srgb(srgb_to_linear(dense).mean(axis=0))
    return dense.mean(axis=0)


def synthesize_blur(
    frames: np.ndarray, sub: int = 19, interpolator: str | Interpolator = "linear", *, space: str = "srgb"
) -> np.ndarray:
    """Average of ``sub`` sub-frames upsampled from ``frames`` (n,H,W,3) -> (H,W,3) float32.

    The default follows the paper: a plain average of the sRGB sub-frames.
    """
    frames = check_rgb("synthetic blur frames", frames, ndim=4, finite=False)
    check_space(space)
    if not np.isfinite(frames).all():
        raise Rb2vError("synthetic blur frames: contain NaN or inf")
    return window_blur(frames, sub, load_interpolator(interpolator), space).astype(np.float32)
