"""Exact Algorithm 1 without scoring every candidate at full size: a proven bound from downsampled images.

For a linear synthetic blur (linear sub-frames, sRGB average: ``fake = sum_i w_i x_i``) and any colour
matrix M, the residual of f x f area-averaged images is the area average of the full-size residual (the
colour model is affine). A mean of squares is at least the square of the mean, so over every block
``SSE_full(M) >= f² SSE_coarse(M) >= f² min_M SSE_coarse``. A candidate's full-size score, whatever
matrix its fit chose (clipped pixels left out or not), is therefore at most its coarse all-pixel
least-squares score; where the size is not a multiple of f, the blocks cover a cropped part, whose SSE
is at most the whole's: ``+10 log10(N / (f² N_coarse))``.

Candidates are then scored at full size in order of their bounds until no unscored bound reaches the
scores that decide the result: the winner (first on ties) and, for the margin, the best score at least
2 positions from the winner and from each of its two neighbours (``refine_in_linear_light`` may move
the start there). The start, its score, colour matrix and margin equal the exhaustive search's; the
unscored candidates' bounds are returned beside the scores.

On ``rb2v bench colormatch``'s takes (448x448, 40 candidates), 8x8 blocks bound the winner's neighbours
1.5-2.5 dB above their scores and 1.4-2.8 dB below the winner: 5 candidates get scored. Where nothing can
be pruned (a still scene: every bound within a fraction of a dB) the search costs the area averages more
than scoring every candidate (15-20 %).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

FACTOR = 8  # block side of the bound's area average
SLACK_DB = 0.05  # a bound this close to a deciding score counts as reaching it (float32 rounding is ~1e-3 dB)
MIN_COARSE_SIDE = 4  # smaller images are scored exhaustively
# Fewer candidates are scored exhaustively: the bound's area averages cost about what pruning saves. Measured
# at 448x448, one thread, medians of 4 (pruned / every candidate scored): a moving take 26.6 / 29.2 ms with 9
# candidates, 27.2 / 40.4 with 15, 36.5 / 99.9 with 40; a still scene, where nothing can be pruned, 30.9 / 25.5
# with 9, 55.2 / 48.2 with 15, 86.8 / 72.9 with 40. So the build's 9 candidates (radius 4) stay exhaustive.
MIN_CANDIDATES = 12
FIRST_ROUND_DB = 12.0  # candidates this close to the top bound are scored in the first round (cost, not correctness)

# score(blur, seq, starts, full): scores and matrices; full=False: the coarse bound's (every pixel in the fit)
Scorer = Callable[[np.ndarray, np.ndarray, list[int], bool], tuple[dict[int, float], dict[int, np.ndarray]]]


def can_prune(shape: tuple[int, ...], starts: list[int]) -> bool:
    return len(starts) >= MIN_CANDIDATES and min(shape[0], shape[1]) // FACTOR >= MIN_COARSE_SIDE


def _area_average(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """The top-left (h*FACTOR, w*FACTOR) of ``img`` averaged over FACTOR x FACTOR blocks."""
    return cv2.resize(img[: h * FACTOR, : w * FACTOR], (w, h), interpolation=cv2.INTER_AREA)


def bounds(blur: np.ndarray, seq: np.ndarray, starts: list[int], n: int, score: Scorer) -> dict[int, float]:
    """An upper bound of every start's full-size score (see the module docstring)."""
    H, W = blur.shape[:2]
    h, w = H // FACTOR, W // FACTOR
    lo, hi = starts[0], starts[-1] + n
    small = np.empty((hi, h, w, 3), np.float32)  # frames before lo are never read (errors name seq's indices)
    for f in range(lo, hi):
        small[f] = _area_average(seq[f], h, w)
    coarse, _ = score(_area_average(blur, h, w), small, starts, False)
    crop = 10 * np.log10(H * W / (FACTOR * FACTOR * h * w))
    return {p: coarse[p] + crop for p in starts}


def _deciding(scores: dict[int, float], starts: set[int]) -> tuple[set[int], float]:
    """The winner's unscored neighbours, and the lowest score an unscored candidate must stay under."""
    best = max(sorted(scores), key=lambda p: (scores[p], -p))
    around = [c for c in (best - 1, best, best + 1) if c in starts]
    rivals = [max((v for q, v in scores.items() if abs(q - c) >= 2), default=-np.inf) for c in around]
    return {c for c in around if c not in scores}, min(rivals)


def pruned_scores(
    blur: np.ndarray, seq: np.ndarray, starts: list[int], n: int, score: Scorer
) -> tuple[dict[int, float], dict[int, np.ndarray], dict[int, float]]:
    """Full-size scores and matrices of the candidates that can decide the result, and the others' bounds."""
    bound = bounds(blur, seq, starts, n, score)
    ranked = sorted(starts, key=lambda p: (-bound[p], p))
    top = ranked[0]
    todo = {p for p in (top - 1, top, top + 1) if p in bound} | set([p for p in ranked if abs(p - top) >= 2][:2])
    # a first round wide enough to be the only one where the bounds are flat (a still scene): a second round
    # re-reads the frames its windows share with the first
    todo |= {p for p in starts if bound[p] >= bound[top] - FIRST_ROUND_DB}
    scores: dict[int, float] = {}
    matrices: dict[int, np.ndarray] = {}
    while todo:
        more, more_m = score(blur, seq, sorted(todo), True)
        scores.update(more)
        matrices.update(more_m)
        todo, floor = _deciding(scores, set(starts))
        todo |= {p for p in starts if p not in scores and bound[p] >= floor - SLACK_DB}
    return scores, matrices, {p: b for p, b in bound.items() if p not in scores}
