"""The one PSNR of rb2v.

``psnr(a, b, peak)`` is ``10·log10(peak² / MSE)`` in dB, the MSE taken in float64 over every
value (pixels × channels, or the pixels of ``mask``). Identical inputs give ``inf``: no stage
invents a ceiling such as 100 dB. With ``peak=1`` the inputs are [0,1] images; ``peak=255``
gives the 0–255 figure of the official HyperCUT evaluation (the two agree on the same images).
"""

from __future__ import annotations

import numpy as np


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    """PSNR (dB) from a mean squared error on a ``peak``-valued range; ``inf`` for 0."""
    return float("inf") if mse <= 0 else float(10.0 * np.log10(peak * peak / mse))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of two same-shaped arrays; ``mask`` (H,W) restricts it to those pixels."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d * d
    if mask is not None:
        d = d[np.asarray(mask, dtype=bool)]
    return psnr_from_mse(float(d.mean()), peak)
