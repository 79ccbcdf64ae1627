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
alignment.json).

A rolling shutter exposes each row at its own time, so under a pulsing light bands of light run down the
frame and move from frame to frame (120 Hz under 8 ms of readout: about one cycle per frame). Where the rows'
changes spread around the frame's by over ``MIN_BAND_PTP``, the same estimate is made per thumbnail row
(``sharp_light_rows``: each recorded row band's light), and the build divides each pixel by the light of the
recorded row it came from. Assumed: the camera's tone curve is sRGB (rb2v's simulator applies its colour map
to the encoded values, with black offsets: the steps read 1.2 % small), and the light within a thumbnail row
(1/34 of the frame at 640x544) is one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..colorspace import linear_to_srgb, srgb_to_linear

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
# median over frame pairs) than the frame's: a rolling shutter under a pulsing light draws bands, evened out
# row by row. rb2v's simulator (120 Hz, 30 %, 8 ms readout): 0.68; without bands 0.0002-0.016, a rig moving
# 3.6-5.8 px a frame 0.044.
MIN_BAND_PTP = 0.2
MIN_ROW_CELLS = 8


@dataclasses.dataclass(frozen=True)
class SharpLight:
    """The sharp camera's light as align measured it (see the module's text)."""

    frames: np.ndarray | None  # (frames,) each frame's light relative to its neighbours'; None: steady
    rows: np.ndarray | None  # (frames, thumbnail rows) each recorded row band's; None: no moving bands
    step_rms: float  # the rms of the frame's steps (``MIN_STEP_RMS``)
    band_ptp: float  # the median over frame pairs of the rows' spread (``MIN_BAND_PTP``)


def light_changes(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of consecutive frames, from luma thumbnails (8-bit scale, sRGB-encoded), in linear light: the
    log-change of the frame's light (the median over usable cells of the log-ratio; 0 where under
    ``MIN_CELLS`` are usable), and of each thumbnail row's (the median over the row's usable cells; NaN where
    under ``MIN_ROW_CELLS`` are usable)."""
    lin = srgb_to_linear(np.clip(np.asarray(thumbs, np.float64) / 255.0, 0.0, 1.0))
    logs, usable = np.log(np.maximum(lin, DARK)), (lin > DARK) & (lin < CLIPPED)
    pairs = max(len(logs) - 1, 0)
    steps, rows = np.zeros(pairs), np.full((pairs, logs.shape[1] if logs.ndim == 3 else 0), np.nan)
    for j in range(pairs):
        both = usable[j] & usable[j + 1]
        if both.sum() < MIN_CELLS:
            continue
        d = logs[j + 1] - logs[j]
        steps[j] = np.median(d[both])
        enough = both.sum(axis=1) >= MIN_ROW_CELLS
        if enough.any():
            rows[j, enough] = np.nanmedian(np.where(both, d, np.nan)[enough], axis=1)
    return steps, rows


def band_spreads(steps: np.ndarray, row_steps: np.ndarray) -> np.ndarray:
    """Per frame pair, how far its rows' changes spread around the frame's (peak to peak; NaN where 4 rows or
    fewer are usable)."""
    dev = row_steps - steps[:, None]
    spread = np.nanmax(dev, axis=1, initial=-np.inf) - np.nanmin(dev, axis=1, initial=np.inf)
    return np.where(np.isfinite(dev).sum(axis=1) > 4, spread, np.nan)


def relative_light(steps: np.ndarray, fps: float) -> np.ndarray:
    """Each frame's light relative to the frames around it (1: as they), from the log-steps between consecutive
    frames (``(pairs,)`` or, per row, ``(pairs, rows)``)."""
    level = np.concatenate([np.zeros((1, *steps.shape[1:])), np.cumsum(steps, axis=0)])
    # Gaussian, not a box: a box's ripple leaks a pulse whose period does not divide it (120 Hz at 100 fps
    # beats every 5 frames: a 51-frame box left 1 % of its 55 % in a sample's frames, this 0.01 %)
    trend = ndimage.gaussian_filter1d(level, TREND_S * fps / 2, axis=0, mode="reflect")
    return np.exp(level - trend)


def _filled(row_steps: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Each row's steps, a row too poor in usable cells given its neighbours' departure from the frame's (the
    frame's where no row is usable)."""
    dev = row_steps - steps[:, None]
    at = np.arange(dev.shape[1])
    for j in np.flatnonzero(~np.isfinite(dev).all(axis=1)):
        ok = np.isfinite(dev[j])
        dev[j] = np.interp(at, at[ok], dev[j, ok]) if ok.any() else 0.0
    return steps[:, None] + dev


def sharp_light(thumbs: np.ndarray, fps: float) -> SharpLight:
    """The sharp camera's light from its luma thumbnails: per frame where the take flickers
    (``MIN_STEP_RMS``), per row band too where a rolling shutter draws moving bands (``MIN_BAND_PTP``)."""
    steps, row_steps = light_changes(thumbs)
    rms = float(np.sqrt(np.mean(steps**2))) if len(steps) else 0.0
    spreads = band_spreads(steps, row_steps)
    finite = spreads[np.isfinite(spreads)]
    bands = float(np.median(finite)) if len(finite) else 0.0
    if bands > MIN_BAND_PTP:
        rows = relative_light(_filled(row_steps, steps), fps)
        return SharpLight(np.exp(np.log(rows).mean(axis=1)), rows, rms, bands)
    return SharpLight(relative_light(steps, fps) if rms >= MIN_STEP_RMS else None, None, rms, bands)


def row_gains(rows: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """A frame's light at recorded rows given as fractions of the frame's height (0: its top edge, 1: its
    bottom edge), linear between the thumbnail rows' centres, from that frame's ``rows``."""
    centres = (np.arange(len(rows)) + 0.5) / len(rows)
    return np.interp(fractions, centres, rows)


def evened_grey(frame: np.ndarray, light: SharpLight, index: int) -> np.ndarray:
    """A raw sharp frame (grey uint8, any scale, as recorded: its rows are the sensor's) divided by its light in
    linear light (per row where ``light.rows``)."""
    if light.rows is not None:
        h = frame.shape[0]
        gains = row_gains(light.rows[index], (np.arange(h) + 0.5) / h)[:, None]
    else:
        gains = light.frames[index]
    lin = srgb_to_linear(frame.astype(np.float32) * np.float32(1 / 255.0)) / np.float32(gains)
    return np.clip(np.rint(linear_to_srgb(lin) * 255.0), 0, 255).astype(np.uint8)
