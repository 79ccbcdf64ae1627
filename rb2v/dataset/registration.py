"""QC of a sample's geometry: does the blurry frame sit where its synthetic blur says it does?

The alignment's homography is one per take. A rig knocked during the take (or a loose mount, or a
camera's image stabilisation) moves one view against the other from then on, and every later sample
pairs a blurry frame with sharp frames that are off by that much. The photometric QC misses it where
the scene is smooth (a 2 px knock left 24 of 25 later samples above ``min_psnr`` on one simulated take).

Here the blurry frame is cross-correlated (phase correlation, upsampled) with the colour-corrected
synthetic blur of the chosen window (the same weights as Algorithm 1's); the window's first and last
frames say how far a step of time moves the content. What time cannot explain is the misregistration:
across the motion in full, along it beyond a slack. Where the take's clock says where the exposure lies
(``expected``: the alignment's predicted start, in steps from the window's), the slack spans that time
and no time at all, CLOCK_SLACK_STEPS beyond each: still content (a green screen) correlates at no shift
and moving content at the clock's, and a whole-frame correlation lands between the two (on simulated hand
takes, 0.1-0.3 step short of a true start 0.4 step on). Without a clock the slack is TIME_SLACK_STEPS
either way, and more of a knock's shift along the motion goes unseen (the recorded samples of four knocked
hand and face takes: 72 of their 96 later samples over the threshold, 77 with the clock's slack; the
build's ``off_clock`` QC, a start over ``qc.max_clock_steps`` from the clock's, takes that to 87, and
``_steps``'s middle steps to 90).

On a grid of tiles (``grid`` > 1) this is measured per tile, and a sample is judged by its second
worst tile, so a turn about the frame's centre is seen too (the tiles move across their motion in
different directions). Each tile gets its own time slack: a heavy blur's shift along its motion was
measured 0.95 px off in one tile and 0.05 px in the next (a simulated photo moving 1.7 px a step),
which one offset shared by all tiles took for a misregistration. The tiles need texture: on a moving
subject in front of a plain screen, 6 and 7 of 50 samples of two simulated hand takes whose rig never
moved measured over 0.35 px (up to 0.76), so the green-screen pipelines measure the whole frame (one
tile) and see shifts only.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

# The start Algorithm 1 picks can be a step from the true one (its argmax decides between neighbours), and
# a window a step off moved by up to 1.34 steps of the frames' own shift on a simulated take (the motion
# accelerates and turns; blur and frames are shifted as wholes).
TIME_SLACK_STEPS = 1.5
# With the take's clock (placed to within 0.4 ms, 0.08 step, on the simulated rig's takes): what is left is the
# measurement along a heavy blur, 0.41-0.56 step off at worst on simulated photos moving 1-2 px a step (192 and
# 448 px, 24 seeds, sRGB average); 0.5 kept every sample of those within 1.25 steps of their clock under 0.35 px
CLOCK_SLACK_STEPS = 0.5
# the shifts are measured to 1/UPSAMPLE px (upsampled cross-correlation: OpenCV's phaseCorrelate read half a
# pixel as 0.81 px and 1 px across the motion as 0.78 px on a simulated take)
UPSAMPLE = 20
LUMA = np.array([0.299, 0.587, 0.114])  # OpenCV's RGB -> grey


@functools.lru_cache(maxsize=8)
def _window(h: int, w: int) -> np.ndarray:
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    window.flags.writeable = False
    return window


def _luma(img: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """Luma of the colours ``matrix`` (3x4) makes of ``img``."""
    m = LUMA[None] if matrix is None else LUMA @ np.asarray(matrix, np.float64).reshape(3, 4)
    return cv2.transform(np.ascontiguousarray(img, np.float32), m.astype(np.float32))


def _tiles(grey: np.ndarray, grid: int) -> list[np.ndarray]:
    """``grid`` x ``grid`` tiles, each under a Hann window (a tile's edges do not correlate as a shift of zero)."""
    ys = np.linspace(0, grey.shape[0], grid + 1).round().astype(int)
    xs = np.linspace(0, grey.shape[1], grid + 1).round().astype(int)
    return [
        grey[y0:y1, x0:x1] * _window(y1 - y0, x1 - x0)
        for y0, y1 in zip(ys[:-1], ys[1:])
        for x0, x1 in zip(xs[:-1], xs[1:])
    ]


def _shifts(reference: list[np.ndarray], moving: list[np.ndarray]) -> np.ndarray:
    """(dy, dx) px by which each tile of ``moving`` is displaced against ``reference``'s, one row per tile."""
    # imported here: it brings scipy.fft (a quarter of a second), which synth-reds and the other commands never use
    from skimage.registration import phase_cross_correlation

    return np.array([-phase_cross_correlation(r, m, upsample_factor=UPSAMPLE)[0] for r, m in zip(reference, moving)])


def _all_but_one(px: np.ndarray) -> float:
    """The second largest of the tiles' values (the one value of a single tile): a tile that correlated badly
    (little texture, a moving subject) does not reject a sample alone, and a view that moved moves them all."""
    return float(np.sort(px)[-2] if len(px) > 1 else px[0])


def _steps(window: np.ndarray, grid: int) -> np.ndarray:
    """(dy, dx) px a step of time moves each tile's content, from frames of the window (not from synthetic blurs:
    windows a step apart share most of their frames, pixel for pixel, which pulls their correlation to no shift).

    Over the window's two ends, its middle two steps or its middle step, whichever moves the content furthest per
    step: still content (a green screen) wins the correlation of frames far apart, where a moving subject's peak
    stands apart from its own, while a step or two apart the two peaks merge, as they do in the blurry frame's
    correlation. On a simulated hand take at 59.94 fps that never moved, the ends alone measured no motion and 9
    of its 120 samples over 0.35 px (1 with the middle two steps); on a 25 fps hand take (seed 4242), the middle
    two steps too measured none for 3 of 20 samples before a knock, which the middle step alone measured."""
    n = len(window)
    mid = n // 2
    grey = [_tiles(_luma(window[i]), grid) for i in (0, mid - 1, mid, mid + 1, n - 1)]
    candidates = [
        _shifts(grey[0], grey[4]) / (n - 1),  # the ends
        _shifts(grey[1], grey[3]) / 2,  # the middle two steps
        _shifts(grey[2], grey[3]),  # the middle step
    ]
    furthest = np.argmax([np.sum(c * c, axis=1) for c in candidates], axis=0)  # per tile
    return np.stack(candidates)[furthest, np.arange(len(furthest))]


def misregistration(
    blur: np.ndarray,
    seq: np.ndarray,
    q: int,
    weights: np.ndarray,
    matrix: np.ndarray,
    enough: float = 0.0,
    grid: int = 1,
    expected: float | None = None,
) -> float:
    """Pixels the blurry frame ``blur`` is shifted against the synthetic blur of ``seq[q : q + n]`` (weights
    ``weights``, colours by ``matrix``) beyond what time explains, on a ``grid`` x ``grid`` grid of tiles (1: the
    whole frame; more: the second largest tile's). ``expected``: where the take's clock puts the exposure's start,
    in steps after ``q`` (the time explained is then between none and that, CLOCK_SLACK_STEPS beyond each);
    None: up to TIME_SLACK_STEPS either way. Where the shifts themselves come to at most ``enough`` they are
    returned as they are (the misregistration is no larger: no time is always allowed): no step measured."""
    window = seq[q : q + len(weights)]
    synthetic = _luma(np.tensordot(weights.astype(np.float32), window, axes=1), matrix)
    shifts = _shifts(_tiles(synthetic, grid), _tiles(_luma(blur), grid))
    unexplained = _all_but_one(np.linalg.norm(shifts, axis=1))
    if unexplained <= enough:
        return unexplained
    steps = _steps(window, grid)
    norm2 = np.maximum(np.sum(steps * steps, axis=1), 1e-9)
    if expected is None:
        lo, hi = -TIME_SLACK_STEPS, TIME_SLACK_STEPS
    else:
        lo, hi = min(expected, 0.0) - CLOCK_SLACK_STEPS, max(expected, 0.0) + CLOCK_SLACK_STEPS
    tau = np.clip(np.sum(shifts * steps, axis=1) / norm2, lo, hi)
    return _all_but_one(np.linalg.norm(shifts - tau[:, None] * steps, axis=1))
