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
log of each frame's light relative to its neighbours', scaled to their mean light (which the blurry frame's
long exposure sees). The build divides it out (``sharp_light`` in alignment.json).

A rolling shutter exposes each row at its own time, so under a pulsing light bands of light run down the
frame and move from frame to frame (120 Hz under 8 ms of readout: about one cycle per frame). Where the rows'
changes spread around the frame's by over ``MIN_BAND_PTP``, the same estimate is made per thumbnail row
(``sharp_light_rows``: each recorded row band's light; ``sharp_light`` their mean), and the build divides
each pixel by the light of the recorded row it came from. Bands that stand still (a light pulsing at a
multiple of the frame rate) show no change from frame to frame; they are measured against the blurry frames
(``still_bands``) and folded into ``sharp_light_rows``. Assumed: the camera's tone curve is sRGB (rb2v's
simulator applies its colour map to the encoded values, with black offsets: the steps read 1.2 % small);
the light within a thumbnail row (1/34 of the frame at 640x544) is one; the shutter reads the decoded
frame's rows (a camera turned a quarter, its file tagged to be turned back, draws its bands along columns).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy import ndimage

from ..alignment import Lens
from ..colorspace import linear_to_srgb, srgb_to_linear
from . import lens as lensmod
from .geometry import map_points
from .sync import linear_luma, thumbnail_matrix

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
# Bands that stand still on the sharp frames (the same phase of the pulse every frame) this far apart (log light,
# peak to peak over the rows, against the blurry frames): evened out too. An outside check's 100 Hz light 30 %
# deep at 100 fps: 0.60; rb2v's simulator's 0.29 (15 % deep) to 0.64 on 7 takes. Without bands the cameras'
# differing colour maps read as 0.005-0.17 on 19 simulated takes (up to 0.20 as a plain ratio: see
# ``_power_within_rows``).
MIN_STILL_PTP = 0.2
STILL_TREND_S = 2.0  # still bands may crawl (the light's clock and the camera's differ): followed over this


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
    lin = linear_luma(thumbs)
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
    sigma = TREND_S * fps / 2
    relative = np.exp(level - ndimage.gaussian_filter1d(level, sigma, axis=0, mode="reflect"))
    # against the neighbours' mean light, not their geometric mean: the blurry frame's exposure averages the
    # light, and a 30 % sine's geometric mean is 2.3 % under its mean (which the colour maps took up)
    return relative / ndimage.gaussian_filter1d(relative, sigma, axis=0, mode="reflect")


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
        return SharpLight(rows.mean(axis=1), rows, rms, bands)
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


def _blur_onto_sharp_cells(raw_to_blur, sizes, cells, lenses, valid):
    """A function warping a blurry thumbnail onto the raw sharp thumbnail's cells, and the mask of the cells
    whose footprint lies inside both cameras' ``valid`` boxes (raw sharp, blur: full-frame pixels free of the
    rig's dark borders; None: anywhere), where a dark border is not read as a band of light. ``raw_to_blur``
    and the boxes are in undistorted pixels where ``lenses`` are known: then each sharp cell's centre is
    undistorted through the sharp lens, carried and distorted through the blur lens (a lens on one camera
    alone bends the view by more than a cell near the corners, which also reads as bands)."""
    (sharp_size, blur_size), ((tw, th), (bw, bh)) = sizes, cells
    to_blur_cells = thumbnail_matrix(*blur_size, bw, bh)
    from_sharp_cells = np.linalg.inv(thumbnail_matrix(*sharp_size, tw, th))
    ys, xs = np.mgrid[0:th, 0:tw].astype(np.float64)
    sharp = map_points(from_sharp_cells, np.stack([xs.ravel(), ys.ravel()], 1))
    if lenses:
        sharp = lensmod.undistort(lenses["sharp"], sharp)
    blur = map_points(raw_to_blur, sharp)
    inside = np.ones(len(sharp), bool)
    if valid is not None:
        for pts, box, size, n in ((sharp, valid[0], sharp_size, (tw, th)), (blur, valid[1], blur_size, (bw, bh))):
            half = 0.5 * np.array(size) / np.array(n) - 1e-6  # a cell's footprint either side of its centre
            inside &= np.all((pts - half >= np.array(box[:2]) - 0.5) & (pts + half <= np.array(box[2:]) + 0.5), 1)
    inside = inside.reshape(th, tw)
    if not lenses:  # a homography: warped as one
        M = to_blur_cells @ raw_to_blur @ from_sharp_cells
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        return (lambda img: cv2.warpPerspective(img, M, (tw, th), flags=flags)), inside
    mx, my = map_points(to_blur_cells, lensmod.distort(lenses["blur"], blur)).T.astype(np.float32).reshape(2, th, tw)
    return (lambda img: cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)), inside


def _power_within_rows(ratios, lights, usables, enough, rounds: int = 3) -> float:
    """The power ``p`` in log(blur/sharp) = p log(blur) + a gain per row, fitted (least squares, cells over 3
    robust sigmas dropped) on the cells' differences from their row's median, which a gain per row cannot make.

    The cameras' luma relation need not be a ratio: offsets or contrast in their colour maps make dark content's
    ratio differ from bright content's (the simulator's colour map on encoded values with black offsets), so a
    scene bright at the top and dark below read as 0.20 of bands standing still (a randomized simulated street,
    seed 7105; 0.12 with the power law)."""
    k, r = np.nonzero(enough)
    if len(k) == 0:
        return 0.0
    cells = usables[k, r]
    d = ratios[k, r] - np.nanmedian(np.where(cells, ratios[k, r], np.nan), axis=1, keepdims=True)
    x = lights[k, r] - np.where(cells, lights[k, r], 0).sum(axis=1, keepdims=True) / cells.sum(axis=1, keepdims=True)
    d, x = d[cells], x[cells]
    keep = np.ones(len(d), bool)
    power = 0.0
    for _ in range(rounds):
        if (x[keep] ** 2).sum() <= 0:
            return 0.0
        power = float((x[keep] * d[keep]).sum() / (x[keep] ** 2).sum())
        residual = np.abs(d - power * x)
        keep = residual <= 3 * 1.4826 * np.median(residual) + 1e-9
    return power


def still_bands(
    light: SharpLight,
    sharp_thumbs: np.ndarray,
    blur_thumbs: np.ndarray,
    raw_to_blur: np.ndarray,
    sharp_size: tuple[int, int],
    blur_size: tuple[int, int],
    sharp_time,
    blur_fps: float,
    sharp_fps: float,
    lenses: dict[str, Lens] | None = None,
    valid: tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None = None,
) -> tuple[SharpLight, float]:
    """``light`` with the bands that stand still on the sharp frames, where they are over ``MIN_STILL_PTP``;
    and their size (the median over blurry frames of their peak to peak over the rows, in log light).

    A light whose pulse has the same phase every frame (100 Hz at 100 fps) draws the same bands on every sharp
    frame, which frame-to-frame changes cannot see; the blurry frame's long exposure (whole cycles) draws none.
    So each blurry frame's thumbnail, warped onto the raw sharp thumbnail's cells (``raw_to_blur``: raw sharp
    -> blur full-frame pixels, flip included; undistorted pixels where ``lenses`` are known), is compared with
    the sharp thumbnails over its frame period (evened by ``light`` first) on the cells inside both ``valid``
    boxes: per row, the median log-ratio over usable cells (less the power law ``_power_within_rows`` fits
    between the cameras' luma), less its median over the rows (the cameras' gain), smoothed over
    ``STILL_TREND_S`` (the bands may crawl: the light's and the camera's clocks differ). Assumed: past that
    power law, the cameras' luma relation does not change from row to row (colour maps that treat hues apart,
    under a scene whose colour changes from top to bottom, read as bands: see ``MIN_STILL_PTP``)."""
    n, th, tw = sharp_thumbs.shape
    kb, bh, bw = blur_thumbs.shape
    sizes, cells = (sharp_size, blur_size), ((tw, th), (bw, bh))
    onto_sharp, inside = _blur_onto_sharp_cells(raw_to_blur, sizes, cells, lenses, valid)
    inside &= onto_sharp(np.ones((bh, bw), np.float32)) > 0.999
    sharp_lin = linear_luma(sharp_thumbs, np.float32)
    blur_lin = linear_luma(blur_thumbs, np.float32)
    if light.rows is not None:  # measured on these thumbnails: one value per thumbnail row
        sharp_lin = sharp_lin / light.rows[:, :, None].astype(np.float32)
    elif light.frames is not None:
        sharp_lin = sharp_lin / light.frames[:, None, None].astype(np.float32)
    half = 0.5 * sharp_fps / blur_fps  # sharp frames either side of a blurry frame's centre: its frame period
    ratios, lights = np.full((kb, th, tw), np.nan, np.float32), np.zeros((kb, th, tw), np.float32)
    usables = np.zeros((kb, th, tw), bool)
    for k in range(kb):
        c = sharp_fps * float(sharp_time(k / blur_fps))
        first, last = int(np.ceil(c - half)), int(np.floor(c + half))
        if first < 0 or last >= n or last < first:
            continue
        synth = sharp_lin[first : last + 1].mean(axis=0)
        blur = onto_sharp(blur_lin[k])
        usables[k] = inside & (synth > DARK) & (synth < CLIPPED) & (blur > DARK) & (blur < CLIPPED)
        lights[k] = np.log(np.maximum(blur, DARK))
        ratios[k] = lights[k] - np.log(np.maximum(synth, DARK))
    enough = usables.sum(axis=2) >= MIN_ROW_CELLS
    ratios -= _power_within_rows(ratios, lights, usables, enough) * lights
    profiles = np.full((kb, th), np.nan)
    for k in np.flatnonzero(enough.sum(axis=1) > 4):
        rows = np.nanmedian(np.where(usables[k], ratios[k], np.nan)[enough[k]], axis=1)
        profiles[k, enough[k]] = rows - np.median(rows)
    seen = np.isfinite(profiles)
    if seen.any(axis=1).sum() < 2:
        return light, 0.0
    sigma = STILL_TREND_S * blur_fps / 2
    smooth = ndimage.gaussian_filter1d(np.where(seen, profiles, 0.0), sigma, axis=0, mode="nearest")
    weight = ndimage.gaussian_filter1d(seen.astype(np.float64), sigma, axis=0, mode="nearest")
    smooth = np.where(weight > 0.05, smooth / np.maximum(weight, 1e-9), np.nan)
    size = float(np.median([np.ptp(p[np.isfinite(p)]) for p in smooth if np.isfinite(p).sum() > 4] or [0.0]))
    if size < MIN_STILL_PTP:
        return light, size
    at = np.arange(th)
    for k in range(kb):  # rows no blurry frame saw: their neighbours'; frames: the nearest seen
        ok = np.isfinite(smooth[k])
        if ok.any():
            smooth[k] = np.interp(at, at[ok], smooth[k, ok])
    seen_k = np.flatnonzero(np.isfinite(smooth).all(axis=1))
    blur_index = (np.arange(n) / sharp_fps - float(sharp_time(0.0))) / (float(sharp_time(1.0)) - float(sharp_time(0.0)))
    blur_index *= blur_fps
    still = np.stack([np.interp(blur_index, seen_k, smooth[seen_k, r]) for r in range(th)], axis=1)
    gains = np.exp(-still)  # the sharp rows' light against the blurry frame's (which sees the light's mean)
    gains /= gains.mean(axis=1, keepdims=True)  # the frame's gain is the colour map's
    base = light.rows if light.rows is not None else (light.frames if light.frames is not None else np.ones(n))
    rows = gains * (base if base.ndim == 2 else base[:, None])
    return dataclasses.replace(light, frames=rows.mean(axis=1), rows=rows), size
