"""Standard matting errors (Rhemann et al. 2009 conventions) and composite PSNR.

Alpha in [0,1]. SAD is the sum of absolute differences divided by 1000 (the benchmark
convention); MSE is the mean squared error; the gradient error sums the squared
difference of Gaussian-derivative gradient magnitudes (sigma 1.4), divided by 1000.
Each can be restricted to a mask (e.g. the motion-blurred band 0 < alpha < 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _select(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return x if mask is None else x[mask]


def sad(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    return float(np.abs(_select(pred.astype(np.float64) - true, mask)).sum() / 1000.0)


def mse(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = _select(pred.astype(np.float64) - true, mask)
    return float((d * d).mean()) if d.size else 0.0


def _gradient_magnitude(a: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    a = a.astype(np.float64)
    gx = ndimage.gaussian_filter(a, sigma, order=(0, 1))
    gy = ndimage.gaussian_filter(a, sigma, order=(1, 0))
    return np.hypot(gx, gy)


def gradient_error(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = _gradient_magnitude(pred) - _gradient_magnitude(true)
    return float((_select(d * d, mask)).sum() / 1000.0)
