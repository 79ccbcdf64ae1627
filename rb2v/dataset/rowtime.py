"""Rolling shutter in Algorithm 1: score each row of a blurry frame against its own time.

Row r of the blur camera is exposed ``r/(H-1) * readout_s`` after its top row, and the sharp
camera reads out too (a vertical flip turns its rows over, so the two skews then add). Relative to
the middle row, whose start ``sharp_start`` is (manifest contract), row r's window in the upsampled
sequence is shifted by ``shift_r = factor * sharp_fps * (f_r - 1/2) * (ratio * R_blur -/+ R_sharp)``
steps (f_r the row's fraction of the full frame). Algorithm 1 scores candidate p on a "deskewed"
sequence whose row r at index j is x[j + shift_r] (linear blend of the two nearest frames), so one
candidate is one consistent exposure for every row. Only the *scoring* uses it: the sample's sharp
frames stay the upsampled sequence's own frames x[p..p+6] (no blend ghosts), at the middle row's time.
"""

from __future__ import annotations

import numpy as np

from ..alignment import Alignment

MIN_SKEW_STEPS = 0.5  # below this top-to-bottom skew (upsampled steps) rows are scored as one


def row_shifts(alignment: Alignment, crop_height: int, factor: int) -> np.ndarray | None:
    """Per-row shift (upsampled steps) of the crop's rows from the middle row of the full frame,
    or None when the rolling-shutter skew is too small to matter."""
    if not alignment.exposure:
        return None
    blur, sharp = alignment.exposure_of("blur"), alignment.exposure_of("sharp")
    sign = 1.0 if alignment.flip_sharp == "vertical" else -1.0
    skew_s = alignment.clock_ratio * blur.readout_s + sign * sharp.readout_s
    steps = factor * alignment.sharp_fps * skew_s  # top row to bottom row of the full frame
    if abs(steps) < MIN_SKEW_STEPS:
        return None
    size = alignment.extra.get("blur_size")
    full_h = int(size[1]) if size else crop_height
    y0 = alignment.crop.y if size else 0
    f = (y0 + np.arange(crop_height, dtype=np.float64)) / max(full_h - 1, 1)
    return (f - 0.5) * steps


def reach(shifts: np.ndarray | None) -> tuple[int, int]:
    """Frames the deskewed sequence needs before and after the plain one."""
    if shifts is None:
        return 0, 0
    return max(0, int(np.ceil(-shifts.min()))), max(0, int(np.ceil(shifts.max())) + 1)


def deskew(seq: np.ndarray, shifts: np.ndarray, first: int, count: int) -> np.ndarray:
    """``count`` frames whose row r at index j is ``seq[first + j + shifts[r]]`` (linear in time;
    clamped at the ends of ``seq``)."""
    T = len(seq)
    out = np.empty((count,) + seq.shape[1:], seq.dtype)
    base = np.floor(shifts).astype(int)
    frac = (shifts - base).astype(seq.dtype)
    for b in np.unique(base):
        rows = np.flatnonzero(base == b)
        a = frac[rows][:, None, None]
        for j in range(count):
            i0 = min(max(first + j + b, 0), T - 1)
            i1 = min(max(first + j + b + 1, 0), T - 1)
            out[j, rows] = (1 - a) * seq[i0, rows] + a * seq[i1, rows]
    return out
