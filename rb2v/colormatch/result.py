"""What a search returns, and the input checks both searches share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import Rb2vError
from .blur import check_space, steps_per_pair
from .matrix import check_rgb


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The best start of a blurry frame's exposure in the upsampled sharp sequence.

    ``start``: p, the window is seq[p..p+n-1]; ``matrix``: (3,4) sharp->blur colour matrix
    at p; ``psnr``: its score (dB); ``scores``: {candidate: score}; ``margin``: ``psnr``
    minus the best score at least 2 positions from p (inf when no candidate is that far);
    ``bounds``: {candidate: upper bound of its score} for candidates a pruned search did not score;
    ``clock_moved``: a clock (``refine_in_linear_light``'s prior) chose this start over the one the scores chose.
    """

    start: int
    matrix: np.ndarray
    psnr: float
    scores: dict[int, float]
    margin: float
    bounds: dict[int, float] = field(default_factory=dict)
    clock_moved: bool = False


def check_search_inputs(
    blur: np.ndarray, seq: np.ndarray, n: int, sub: int, space: str, candidates: Iterable[int] | None
) -> tuple[np.ndarray, list[int]]:
    """Validate a search; return seq as float32 and the sorted, distinct candidate starts."""
    check_rgb("blurry frame", blur)
    seq = check_rgb("sharp sequence", seq, ndim=4, finite=False)
    check_space(space)
    steps_per_pair(n, sub)
    if seq.shape[1:] != blur.shape:
        raise Rb2vError(f"blurry frame {blur.shape} and sharp frames {seq.shape[1:]} differ in size")
    last = len(seq) - n
    if last < 0:
        raise Rb2vError(f"sharp sequence has {len(seq)} frames, fewer than the window of n={n}")
    if candidates is None:
        starts = list(range(last + 1))
    else:
        try:
            starts = sorted({int(p) for p in candidates})
        except (TypeError, ValueError):
            raise Rb2vError("search candidates must be integer start indices") from None
        if not starts:
            raise Rb2vError("search: no candidate starts given")
        bad = [p for p in starts if p < 0 or p > last]
        if bad:
            raise Rb2vError(
                f"search candidates {bad[:5]} out of range: starts must lie in 0..{last} "
                f"(sequence of {len(seq)} frames, window n={n})"
            )
    return seq, starts


def best_of(scores: dict[int, float], matrices: dict[int, np.ndarray]) -> SearchResult:
    """The argmax (the first on ties) and its margin over candidates >= 2 positions away."""
    starts = sorted(scores)
    best = max(starts, key=lambda p: (scores[p], -p))
    far = [scores[p] for p in starts if abs(p - best) >= 2]
    margin = scores[best] - max(far) if far else float("inf")
    return SearchResult(start=best, matrix=matrices[best], psnr=scores[best], scores=dict(scores), margin=margin)
