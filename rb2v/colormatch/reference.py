"""Algorithm 1 (paper supplement), literally: one candidate at a time.

For each candidate p: synthesise the blur of seq[p..p+n-1] at full resolution, fit the
colour matrix with ``numpy.linalg.lstsq`` on the pixel rows, correct the synthetic blur,
and score its PSNR against the blurry frame; keep the argmax (the supplement's
pseudo-code forgets to update ``best``). Kept as the ground truth for the tests and the
benchmark of the fast ``search``; same options, same conventions (see ``matrix``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..interpolation import Interpolator, load_interpolator
from ..metrics import psnr
from .blur import window_blur
from .matrix import clipped_mask
from .result import SearchResult, best_of, check_search_inputs


def reference_search(
    blur: np.ndarray,
    seq: np.ndarray,
    n: int = 7,
    candidates: Iterable[int] | None = None,
    interpolator: str | Interpolator = "linear",
    sub: int = 19,
    *,
    space: str = "srgb",
    exclude_clipped: bool = True,
    span: float | None = None,
) -> SearchResult:
    """The literal Algorithm 1; same signature and result as ``search``."""
    seq, starts = check_search_inputs(blur, seq, n, sub, space, candidates)
    interp = load_interpolator(interpolator)
    y = blur.astype(np.float64)
    scores, matrices = {}, {}
    for p in starts:
        fake = window_blur(seq[p : p + n], sub, interp, space, span)
        X = np.concatenate([fake.reshape(-1, 3), np.ones((fake.size // 3, 1))], axis=1)
        Y = y.reshape(-1, 3)
        if exclude_clipped:
            keep = ~(clipped_mask(fake) | clipped_mask(y)).reshape(-1)
            M = np.linalg.lstsq(X[keep], Y[keep], rcond=None)[0].T
        else:
            M = np.linalg.lstsq(X, Y, rcond=None)[0].T
        scores[p] = psnr((X @ M.T).reshape(y.shape), y)
        matrices[p] = M
    return best_of(scores, matrices)
