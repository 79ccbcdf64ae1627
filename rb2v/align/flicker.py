"""The sharp camera's light from frame to frame: flicker under mains or PWM LED lighting.

Lights on mains power pulse at 100 or 120 Hz, PWM-dimmed LEDs at a few hundred Hz. The blur camera's long
exposure integrates several cycles and sees the mean; the sharp camera's short one samples the cycle at
a phase that moves from frame to frame (120 Hz seen at 100 fps beats at 20 Hz), so consecutive sharp
frames differ in brightness by tens of percent while the blurry frame does not. A sample's 7 frames then
flicker around the one colour map fitted to the blurry frame. An outside check's lights (sine at 120 Hz,
40 % deep; PWM at 250 and 330 Hz): the frames inside a sample spread by 30-64 % in brightness.

The light of each frame is measured on the sharp stream's luma thumbnails, in linear light: the median
over cells of the log-ratio of consecutive frames (cells neither dark nor clipped) is the change of the
light where most of the picture holds still (a green screen) or moves symmetrically; its running sum,
less its trend over ``TREND_S`` (the scene's slow changes, which a sample's colour map takes up), is the
log of each frame's light relative to its neighbours'. The build divides it out (``sharp_light`` in
alignment.json). Assumed: the light changes the whole frame alike (a rolling shutter under a pulsing light
shows bands along its rows, not evened out) and the camera's tone curve is sRGB (rb2v's simulator applies
its colour map to the encoded values, with black offsets: the steps read 1.2 % small).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..colorspace import srgb_to_linear

# Consecutive frames whose light changes by this much (rms of the log-ratios over the take) flicker. Without
# flicker: 0.00006-0.0001 on an outside check's green screens, 0.0024 on its street pan, 0.0013 on rb2v's
# simulator's randomized hand; with it, 0.20-0.68 (120 Hz, PWM at 250 and 330 Hz) and 0.22.
MIN_STEP_RMS = 0.02
# Changes of the light slower than this (twice the trend's Gaussian sigma) are the scene's, or a cloud's: a
# sample's colour map takes them up
TREND_S = 0.5
DARK, CLIPPED = 0.01, 0.9  # linear light: cells outside are noise or saturated
MIN_CELLS = 20
# Rows whose light changes from frame to frame by this much more (peak to peak over the thumbnail's rows, the
# median over frame pairs) than the frame's: a rolling shutter under a pulsing light draws bands. rb2v's
# simulator (120 Hz, 30 %, 8 ms readout): 0.68; without bands 0.0002-0.016, a rig moving 3.6-5.8 px a frame 0.044.
MIN_BAND_PTP = 0.2
MIN_ROW_CELLS = 8


def light_changes(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of consecutive frames, from luma thumbnails (8-bit scale, sRGB-encoded), in linear light: the
    log-change of the frame's light (the median over usable cells of the log-ratio; 0 where under
    ``MIN_CELLS`` are usable), and how far its rows' changes spread around it (the peak-to-peak over thumbnail
    rows of each row's median less the frame's; NaN where too few rows are usable)."""
    lin = srgb_to_linear(np.clip(np.asarray(thumbs, np.float64) / 255.0, 0.0, 1.0))
    logs, usable = np.log(np.maximum(lin, DARK)), (lin > DARK) & (lin < CLIPPED)
    pairs = max(len(logs) - 1, 0)
    steps, spreads = np.zeros(pairs), np.full(pairs, np.nan)
    for j in range(pairs):
        both = usable[j] & usable[j + 1]
        if both.sum() < MIN_CELLS:
            continue
        d = logs[j + 1] - logs[j]
        steps[j] = np.median(d[both])
        rows = [np.median(d[r][both[r]]) for r in range(d.shape[0]) if both[r].sum() >= MIN_ROW_CELLS]
        if len(rows) > 4:
            spreads[j] = np.ptp(np.array(rows) - steps[j])
    return steps, spreads


def relative_light(steps: np.ndarray, fps: float) -> np.ndarray:
    """Each frame's light relative to the frames around it (1: as they), from ``light_changes``' steps."""
    level = np.concatenate([[0.0], np.cumsum(steps)])
    # Gaussian, not a box: a box's ripple leaks a pulse whose period does not divide it (120 Hz at 100 fps
    # beats every 5 frames: a 51-frame box left 1 % of its 55 % in a sample's frames, this 0.01 %)
    trend = ndimage.gaussian_filter1d(level, TREND_S * fps / 2, mode="reflect")
    return np.exp(level - trend)


def sharp_light(thumbs: np.ndarray, fps: float) -> tuple[list[float] | None, float, float]:
    """(each sharp frame's relative light where the take flickers (``MIN_STEP_RMS``), else None; the rms of
    the steps; the median over frame pairs of the rows' spread, which says bands (``MIN_BAND_PTP``))."""
    steps, spreads = light_changes(thumbs)
    rms = float(np.sqrt(np.mean(steps**2))) if len(steps) else 0.0
    finite = spreads[np.isfinite(spreads)]
    bands = float(np.median(finite)) if len(finite) else 0.0
    if rms < MIN_STEP_RMS:
        return None, rms, bands
    return [round(float(v), 5) for v in relative_light(steps, fps)], rms, bands
