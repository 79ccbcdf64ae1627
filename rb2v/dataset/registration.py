"""QC of a sample's geometry: does the blurry frame sit where its synthetic blur says it does?

The alignment's homography is one per take. A rig knocked during the take (or a loose mount, or a
camera's image stabilisation) moves one view against the other from then on, and every later sample
pairs a blurry frame with sharp frames that are off by that much. The photometric QC misses it where
the scene is smooth (a 2 px knock left 24 of 25 later samples above ``min_psnr`` on one simulated take).

Here the blurry frame is cross-correlated (phase correlation, upsampled) with the colour-corrected
synthetic blur of the chosen window (the same weights as Algorithm 1's); the window's first and last
frames say how far a step of time moves the content. What a time offset of up to TIME_SLACK_STEPS cannot
explain is the misregistration: across the motion in full, along it beyond that slack. It is the shift
of the whole frame (a turn about the centre is not seen).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage.registration import phase_cross_correlation

# The start Algorithm 1 picks can be a step from the true one (its argmax decides between neighbours), and
# a window a step off moved by up to 1.34 steps of the frames' own shift on a simulated take (the motion
# accelerates and turns; blur and frames are shifted as wholes).
TIME_SLACK_STEPS = 1.5
# the shifts are measured to 1/UPSAMPLE px (upsampled cross-correlation: OpenCV's phaseCorrelate read half a
# pixel as 0.81 px and 1 px across the motion as 0.78 px on a simulated take)
UPSAMPLE = 20
LUMA = np.array([0.299, 0.587, 0.114])  # OpenCV's RGB -> grey


@functools.lru_cache(maxsize=4)
def _window(h: int, w: int) -> np.ndarray:
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    window.flags.writeable = False
    return window


def _grey(img: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """Luma (of the colours ``matrix`` makes, 3x4) under a Hann window (the frame's edges do not correlate
    as a shift of zero)."""
    m = LUMA[None] if matrix is None else LUMA @ np.asarray(matrix, np.float64).reshape(3, 4)
    grey = cv2.transform(np.ascontiguousarray(img, np.float32), m.astype(np.float32))
    return grey * _window(*grey.shape[:2])


def _synthetic(frames: np.ndarray, weights: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return _grey(np.tensordot(weights.astype(np.float32), frames, axes=1), matrix)


def _shift(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """(dy, dx) px by which ``moving`` is displaced against ``reference``."""
    return -phase_cross_correlation(reference, moving, upsample_factor=UPSAMPLE)[0]


def misregistration(
    blur: np.ndarray, seq: np.ndarray, q: int, weights: np.ndarray, matrix: np.ndarray, enough: float = 0.0
) -> float:
    """Pixels the blurry frame ``blur`` is shifted against the synthetic blur of ``seq[q : q + n]`` (weights
    ``weights``, colours by ``matrix``) beyond what a time offset of up to TIME_SLACK_STEPS explains.
    A shift of at most ``enough`` is returned as it is (the misregistration is no larger): no step measured."""
    n = len(weights)
    shift = _shift(_synthetic(seq[q : q + n], weights, matrix), _grey(blur))
    if np.linalg.norm(shift) <= enough:
        return float(np.linalg.norm(shift))
    # a step's motion from the window's two ends: windows a step apart share most of their frames, pixel for
    # pixel (noise and quantisation included), which pulls their correlation to no shift at all
    step = _shift(_grey(seq[q]), _grey(seq[q + n - 1])) / (n - 1)
    norm2 = float(step @ step)
    tau = float(np.clip(shift @ step / norm2, -TIME_SLACK_STEPS, TIME_SLACK_STEPS)) if norm2 > 1e-9 else 0.0
    return float(np.linalg.norm(shift - tau * step))
