"""Synthetic blur: upsample a window of frames in time, average the sub-frames.

A window of ``n`` frames becomes ``sub`` sub-frames: each consecutive pair (a, b) adds
a and ``k - 1`` interpolated frames at ``t = j/k`` (``k = (sub-1)/(n-1)``), then the last
frame closes the window. For the paper's n=7, sub=19: k=3, t = 1/3 and 2/3.
``space="linear"`` averages in linear light (inverse sRGB curve on each sub-frame, the
forward curve after the mean); interpolation itself always runs on the sRGB frames, as
the interpolators expect.

A blur camera whose exposure is shorter than the window (``span < n - 1`` frame steps, from the
exposure length estimated at alignment) integrates only the middle of it: the synthetic blur is
then the box of that width centred on the window, over the linear interpolant of the sub-frames
(``subframe_weights``). With ``span=None`` (or a span covering the window) it is the paper's plain
average.
"""

from __future__ import annotations

import numpy as np

from ..colorspace import linear_to_srgb, srgb_to_linear
from ..errors import Rb2vError
from ..interpolation import Interpolator, LinearInterpolator, load_interpolator
from .matrix import check_rgb

SPACES = ("srgb", "linear")


def steps_per_pair(n: int, sub: int) -> int:
    """k: sub-frames contributed by each consecutive pair (``sub - 1 = k (n - 1)``)."""
    if n < 2:
        raise Rb2vError(f"synthetic blur needs a window of at least 2 frames, got n={n}")
    if sub < n or (sub - 1) % (n - 1):
        raise Rb2vError(f"synthetic blur: sub-1 must be a positive multiple of n-1 (n={n}, sub={sub})")
    return (sub - 1) // (n - 1)


def _hat_cdf(x: np.ndarray) -> np.ndarray:
    """Integral from -inf to x of the unit hat function (support -1 .. 1), elementwise."""
    x = np.clip(x, -1.0, 1.0)
    return np.where(x <= 0, (x + 1) ** 2 / 2, 1 - (1 - x) ** 2 / 2)


def box_weights_rows(centres: np.ndarray, width: float) -> dict[int, np.ndarray]:
    """Weights of integer frames whose linear interpolant, averaged over ``[c - width/2, c + width/2]``,
    gives the box mean, for many centres at once (one per image row under a rolling shutter):
    frame index -> weight per centre. A zero ``width`` is the linear interpolant at the centre."""
    centres = np.asarray(centres, np.float64)
    first, w = box_weights_grouped(centres, width, np.array([0]))
    return {int(first[0]) + r: row for r, row in enumerate(w) if row.max() > 1e-9}


def box_weights_grouped(centres: np.ndarray, width: float, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``box_weights_rows`` for groups of centres at once (group g: ``centres[starts[g]:starts[g + 1]]``),
    as (each group's first frame, weights (frames, centres)): row r of a centre's column weighs frame
    ``first + r`` of its group; rows past a group's frames weigh 0."""
    width = max(float(width), 1e-6)
    a, b = centres - width / 2, centres + width / 2
    first = np.floor(np.minimum.reduceat(a, starts)).astype(np.int64) - 1
    last = np.ceil(np.maximum.reduceat(b, starts)).astype(np.int64) + 1
    frames = np.arange(int((last - first).max()) + 1)[:, None] + np.repeat(first, np.diff(starts, append=len(a)))
    # integral over [a, b] of the hat function centred at each frame i (support i-1 .. i+1), all frames at once
    return first, (_hat_cdf(b[None, :] - frames) - _hat_cdf(a[None, :] - frames)) / width


def box_weights(centre: float, width: float) -> dict[int, float]:
    """``box_weights_rows`` for one centre."""
    weights = box_weights_rows(np.array([centre], np.float64), width)
    return {i: float(w[0]) for i, w in weights.items() if w[0] > 1e-9}


def covers_window(n: int, span: float | None) -> bool:
    """Whether an exposure of ``span`` frame steps fills a window of n frames (the paper's average)."""
    return span is None or span >= n - 1


def subframe_weights(n: int, sub: int, span: float | None = None) -> np.ndarray:
    """v (sub,): the synthetic blur is ``sum_j v_j dense[j]`` over the window's sub-frames."""
    k = steps_per_pair(n, sub)
    if covers_window(n, span):
        return np.full(sub, 1.0 / sub)
    if not span >= 0:
        raise Rb2vError(f"synthetic blur: exposure span must be >= 0 frame steps, got {span}")
    v = np.zeros(sub)
    for j, w in box_weights((n - 1) / 2 * k, span * k).items():
        v[j] += w  # the box lies inside the window: j stays in 0..sub-1
    return v / v.sum()


def frame_weights(n: int, sub: int, span: float | None = None) -> np.ndarray:
    """w (n,): with linearly interpolated sub-frames the synthetic blur is ``sum_i w_i frames[i]``
    (for the plain average: inner frames k/sub, the two ends (k+1)/(2 sub))."""
    k = steps_per_pair(n, sub)
    v = subframe_weights(n, sub, span)
    w = np.zeros(n)
    for j, vj in enumerate(v):
        i, m = divmod(j, k)
        w[i] += vj * (1 - m / k)
        if m:
            w[i + 1] += vj * m / k
    return w


def check_space(space: str) -> None:
    if space not in SPACES:
        raise Rb2vError(f"unknown blur space {space!r} (use 'srgb' or 'linear')")


def dense_frames(frames: np.ndarray, k: int, interp: Interpolator, batch: int = 8) -> np.ndarray:
    """``(T-1)*k + 1`` float32 frames: each pair's first frame and its k-1 in-betweens, then the last."""
    T = len(frames)
    out = np.empty(((T - 1) * k + 1,) + frames.shape[1:], dtype=np.float32)
    out[::k] = frames
    if type(interp) is LinearInterpolator:  # its blends, written in place (the same float32 rounding)
        for j in range(1, k):
            dst = out[j : (T - 1) * k : k]
            np.multiply(frames[:-1], 1.0 - j / k, out=dst)
            dst += (j / k) * frames[1:]
        return out
    for s in range(0, T - 1, batch):  # batches bound the interpolator's memory
        e = min(s + batch, T - 1)
        for j in range(1, k):
            out[s * k + j : e * k : k] = interp.batch(frames[s:e], frames[s + 1 : e + 1], j / k)
    return out


def window_blur(
    frames: np.ndarray, sub: int, interp: Interpolator, space: str, span: float | None = None
) -> np.ndarray:
    """The synthetic blur of one window, float64 (the literal definition)."""
    dense = dense_frames(frames, steps_per_pair(len(frames), sub), interp).astype(np.float64)
    v = subframe_weights(len(frames), sub, span)
    if space == "linear":
        return linear_to_srgb(np.tensordot(v, srgb_to_linear(dense), axes=1))
    return np.tensordot(v, dense, axes=1)


def synthesize_blur(
    frames: np.ndarray,
    sub: int = 19,
    interpolator: str | Interpolator = "linear",
    *,
    space: str = "srgb",
    span: float | None = None,
) -> np.ndarray:
    """Average of ``sub`` sub-frames upsampled from ``frames`` (n,H,W,3) -> (H,W,3) float32.

    The default follows the paper: a plain average of the sRGB sub-frames; ``span`` (frame
    steps): an exposure shorter than the window, centred on it.
    """
    frames = check_rgb("synthetic blur frames", frames, ndim=4, finite=False)
    check_space(space)
    if not np.isfinite(frames).all():
        raise Rb2vError("synthetic blur frames: contain NaN or inf")
    return window_blur(frames, sub, load_interpolator(interpolator), space, span).astype(np.float32)
