"""Algorithm 1, fast: the same scores as ``reference_search`` without its per-candidate work.

The default call (linear sub-frames, sRGB average, CPU) scores candidates from frame-pair
moment matrices (``gram.py``): no synthetic blur is formed and the per-candidate cost does not
grow with the pixel count. From 12 candidates on it scores at full size only those that can
decide the result: the others' scores are proven lower from 8x8 area averages (``prune.py``).
The other settings use sliding sums:

* Every window's synthetic blur is a sliding sum over one "base" sequence built once per
  run of overlapping candidates: with the linear interpolator the sub-frames are exact
  blends, so the blur is a fixed weighting of the n sharp frames (k on inner frames,
  (k+1)/2 on the two ends, /sub); any other interpolator (or ``space="linear"``)
  interpolates each consecutive pair of the run once and slides a uniform window over
  the dense (k x) sequence.
* Per candidate, one 7x7 moment matrix of ``[fake, 1, blur]`` gives the colour matrix
  (4x4 solve) and, in closed form, the residual over all pixels, hence the PSNR: no
  least-squares solve over pixel rows and no corrected image. Clipped pixels leave the
  fit by subtracting their moments.

numpy on the CPU; torch (float64) on a CUDA device. Scores equal the reference's to
float rounding (measured differences below 1e-5 dB), so the argmax is the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import cv2
import numpy as np

from ..errors import Rb2vError
from ..interpolation import Interpolator, LinearInterpolator, load_interpolator
from .arrays import NumpyArrays, arrays_for
from .blur import covers_window, dense_frames, frame_weights, srgb_to_linear, steps_per_pair, subframe_weights
from .gram import gram_scores
from .matrix import clipped_mask, psnr_from_sse, residual_from_moments, solve_moments
from .prune import can_prune, pruned_scores
from .result import SearchResult, best_of, check_search_inputs


def take_pixels(frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``frames[..., idx, :]`` of (..., N, 3) pixels, each moved as one 3-value record (several times faster)."""
    frames = np.ascontiguousarray(frames)
    records = frames.view(np.dtype((np.void, 3 * frames.itemsize)))[..., 0]
    return np.take(records, idx, axis=-1)[..., None].view(frames.dtype)


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """``img`` area-averaged ``factor`` x ``factor`` (unchanged for a factor of 1)."""
    if factor <= 1:
        return img
    return cv2.resize(img, (img.shape[1] // factor, img.shape[0] // factor), interpolation=cv2.INTER_AREA)


def _runs(starts: list[int], n: int) -> list[list[int]]:
    """Group sorted starts into runs whose windows share frames."""
    runs = [[starts[0]]]
    for p in starts[1:]:
        if p - runs[-1][-1] <= n - 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


class _Run:
    """One run's base sequence and the sliding synthetic blur of its windows.

    The window at run-relative position q covers base[q*stride : q*stride + length];
    with base frames pre-scaled by 1/sub its blur is ``inner * sum - ends * (first + last)``,
    then the sRGB curve when averaging in linear light. Each base frame becomes planar
    float64 (pixels in ``order``) once, when the window reaches it, and is dropped when
    the window leaves it.
    """

    def __init__(
        self,
        frames: np.ndarray,
        n: int,
        sub: int,
        interp: Interpolator,
        space: str,
        xp,
        order: np.ndarray | None,
        span: float | None = None,
    ):
        k = steps_per_pair(n, sub)
        exact = type(interp) is LinearInterpolator and space == "srgb"
        if exact:
            # exact blends: inner frames weigh k, the two ends (k+1)/2 (sub = k(n-1)+1)
            base, self.stride, self.length = frames, 1, n
            self.inner, self.ends = float(k), (k - 1) / 2
        else:
            base = dense_frames(frames, k, interp)
            self.stride, self.length, self.inner, self.ends = k, sub, 1.0, 0.0
        # an exposure shorter than the window: explicit weights per frame of the window, no sliding sum
        self.weights = None
        if not covers_window(n, span):
            self.weights = (frame_weights if exact else subframe_weights)(n, sub, span) * sub
        self.base = base.reshape(len(base), -1, 3)
        self.scale, self.linear_light, self.xp, self.order = 1.0 / sub, space == "linear", xp, order
        self._planar: dict[int, object] = {}

    def _frame(self, f: int):
        if f not in self._planar:
            frame = self.base[f] if self.order is None else take_pixels(self.base[f], self.order)
            if self.linear_light:
                frame = srgb_to_linear(frame)
            self._planar[f] = self.xp.planar(frame, self.scale)
        return self._planar[f]

    def _weighted(self, first: int, out) -> None:
        out[:] = 0.0
        for j, wj in enumerate(self.weights):
            if wj > 0:
                out += float(wj) * self._frame(first + j)

    def blurs(self, positions: list[int], out):
        """For sorted run-relative positions, write each window's blur into ``out`` (3,N); yield q."""
        s, L = self.stride, self.length
        total, cur = None, None
        for q in positions:
            if self.weights is not None:
                self._weighted(q * s, out)
            else:
                if total is None or 2 * s * (q - cur) >= L:
                    total = self._frame(q * s) + self._frame(q * s + 1)  # a new array (L >= 2)
                    for f in range(q * s + 2, q * s + L):
                        total += self._frame(f)
                else:
                    for r in range(cur * s, q * s):
                        total += self._frame(r + L)
                        total -= self._frame(r)
                if self.ends:
                    self.xp.scaled(total, self.inner, out)
                    for end in (self._frame(q * s), self._frame(q * s + L - 1)):
                        out -= end if self.ends == 1 else self.ends * end
                else:
                    out[:] = total
            for f in [f for f in self._planar if f < q * s]:  # frames the window has left
                del self._planar[f]
            cur = q
            if self.linear_light:
                out[:] = self.xp.to_srgb(out)
            yield q


def _moments_apply(xp, interp: Interpolator, space: str) -> bool:
    """Whether a search takes the frame-pair moments path (gram.py): the synthetic blur linear in the frames."""
    return isinstance(xp, NumpyArrays) and type(interp) is LinearInterpolator and space == "srgb"


def moment_scorer(n: int, sub: int, exclude_clipped: bool, span: float | None):
    """``prune.Scorer`` of the moments path: full size with the search's clipping rule, coarse with every pixel."""

    def score(blur: np.ndarray, seq: np.ndarray, starts: list[int], full: bool):
        return gram_scores(blur, seq, _runs(starts, n), n, sub, exclude_clipped and full, span)

    return score


def _score_runs(
    blur: np.ndarray,
    seq: np.ndarray,
    starts: list[int],
    n: int,
    sub: int,
    interp: Interpolator,
    space: str,
    exclude_clipped: bool,
    xp,
    span: float | None = None,
) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Scores and colour matrices of every start (see the module docstring).

    With ``exclude_clipped`` the pixels are reordered once so that those clipped in the
    blurry frame come first: their moments are then a slice, not a gather per candidate.
    """
    if _moments_apply(xp, interp, space):
        return gram_scores(blur, seq, _runs(starts, n), n, sub, exclude_clipped, span)  # the default: see gram.py
    N = blur.shape[0] * blur.shape[1]
    y = blur.reshape(N, 3)
    order, nf = None, 0
    clipped = clipped_mask(y) if exclude_clipped else None
    if clipped is not None and clipped.any():
        order = np.concatenate([np.flatnonzero(clipped), np.flatnonzero(~clipped)])
        nf, y = int(clipped.sum()), y[order]
    Q = xp.empty((7, N))  # planar rows: fake RGB, 1, blur RGB (the [src, 1, dst] of matrix.gram)
    Q[:3] = 0.0  # the synthetic blur rows, written per candidate (the constant moments below read them)
    Q[3] = 1.0
    Q[4:] = xp.put(y.T.astype(np.float64))
    # moments of the constant rows, over the blur-clipped pixels and over the others
    G_clipped, G_rest = xp.gram(Q[:, :nf], 7, np.zeros((7, 7))), xp.gram(Q[:, nf:], 7, np.zeros((7, 7)))
    scores, matrices = {}, {}
    for run in _runs(starts, n):
        p0 = run[0]
        base = _Run(seq[p0 : run[-1] + n], n, sub, interp, space, xp, order, span)
        for q in base.blurs([p - p0 for p in run], Q[:3]):
            G_fit = xp.gram(Q[:, nf:], 3, G_rest.copy())
            G_all = G_fit + xp.gram(Q[:, :nf], 3, G_clipped.copy()) if nf else G_fit
            if not np.isfinite(G_all).all():
                raise Rb2vError(f"sharp sequence frames {p0 + q}..{p0 + q + n - 1}: contain NaN or inf")
            if exclude_clipped:
                hits = xp.clip_hits(Q[:3, nf:])  # clipped in the synthetic blur only
                if len(hits):
                    G_fit = G_fit - xp.gram(Q[:, nf:][:, hits], 7, np.zeros((7, 7)))
            M = solve_moments(G_fit)
            scores[p0 + q] = psnr_from_sse(residual_from_moments(G_all, M), 3 * N)
            matrices[p0 + q] = M
    return scores, matrices


def search(
    blur: np.ndarray,
    seq: np.ndarray,
    n: int = 7,
    candidates: Iterable[int] | None = None,
    interpolator: str | Interpolator = "linear",
    sub: int = 19,
    *,
    space: str = "srgb",
    exclude_clipped: bool = True,
    device: str = "cpu",
    coarse: int = 1,
    refine: int = 3,
    span: float | None = None,
    prune: bool = True,
) -> SearchResult:
    """Algorithm 1: where in ``seq`` the exposure of ``blur`` lies, and its colour matrix.

    ``blur``: (H,W,3) blurry frame y; ``seq``: (T,H,W,3) upsampled sharp sequence x;
    ``candidates``: start indices p to score (None: all), window seq[p..p+n-1];
    ``interpolator``: a name ("linear", "flow", "cdfi") or an interpolator object making
    the sub-frames; ``sub``: sub-frames per window (``sub-1`` a multiple of ``n-1``);
    ``space``: "srgb" (the paper's plain average) or "linear" (average in linear light);
    ``exclude_clipped``: leave pixels clipped in either image out of the colour fit;
    ``device``: "cpu" (numpy), "cuda"/"auto" (torch); ``span``: the blur camera's exposure in
    frame steps of ``seq`` when shorter than the window (a box centred on it; None: the average).

    score(p) = PSNR(C(y_fake(p)), y): data range 1, MSE over all pixels and the 3
    channels in float64, of the corrected synthetic blur not clipped to [0,1] (the
    residual of the fitted linear model); the PSNR covers all pixels, clipped or not.
    Returns the argmax (the first start on ties); equal, to rounding, to
    ``reference.reference_search`` with the same options.

    ``prune`` (the default; where the synthetic blur is linear in the frames: linear sub-frames, sRGB
    average, CPU; from ``prune.MIN_CANDIDATES`` candidates on): candidates whose proven upper bound
    (``prune.py``, from 8x8 area averages) cannot reach the winner or the margin's rivals are not scored;
    the result is the exhaustive one, ``scores`` holds the scored candidates and ``bounds`` the others'
    bounds. ``prune=False`` scores every candidate.

    ``coarse=k > 1`` is coarse-to-fine: every candidate is scored on k x k area-averaged
    images, then the ``refine`` best and the two strongest at least 2 positions from
    the full-resolution winner are re-scored at full resolution; the argmax and the margin
    come from full-resolution scores, ``scores`` of the other candidates are the coarse ones.
    """
    seq, starts = check_search_inputs(blur, seq, n, sub, space, candidates)
    interp = load_interpolator(interpolator)
    xp = arrays_for(device)
    if prune and coarse <= 1 and _moments_apply(xp, interp, space) and can_prune(blur.shape, starts):
        scores, matrices, bounds = pruned_scores(blur, seq, starts, n, moment_scorer(n, sub, exclude_clipped, span))
        return dataclasses.replace(best_of(scores, matrices), bounds=bounds)
    if coarse <= 1 or len(starts) <= refine + 1:
        scores, matrices = _score_runs(blur, seq, starts, n, sub, interp, space, exclude_clipped, xp, span)
        return best_of(scores, matrices)

    small_seq = np.stack([_downsample(f, coarse) for f in seq])
    rough, _ = _score_runs(_downsample(blur, coarse), small_seq, starts, n, sub, interp, space, exclude_clipped, xp)
    ranked = sorted(starts, key=lambda p: (-rough[p], p))
    fine, matrices = _score_runs(blur, seq, sorted(ranked[:refine]), n, sub, interp, space, exclude_clipped, xp, span)
    # the margin needs full-resolution scores of the strongest candidates >= 2 from the winner
    winner = best_of(fine, matrices).start
    rivals = [p for p in ranked if abs(p - winner) >= 2 and p not in fine][:2]
    if rivals:
        more, more_m = _score_runs(blur, seq, sorted(rivals), n, sub, interp, space, exclude_clipped, xp, span)
        fine.update(more)
        matrices.update(more_m)
    best = best_of(fine, matrices)
    return SearchResult(
        start=best.start, matrix=best.matrix, psnr=best.psnr, scores={**rough, **fine}, margin=best.margin
    )


def refine_in_linear_light(
    blur: np.ndarray,
    seq: np.ndarray,
    result: SearchResult,
    n: int = 7,
    interpolator: str | Interpolator = "linear",
    sub: int = 19,
    *,
    exclude_clipped: bool = True,
    span: float | None = None,
    scale: int = 4,
    device: str = "cpu",
    clock: float | None = None,
    clock_db: float = 0.0,
) -> SearchResult:
    """A ``search`` result's start decided again between it and its two neighbours with the exposure
    averaged in linear light (as a sensor integrates it), on ``scale`` x ``scale`` area-averaged images.
    Quarter size by default: against half size, the same start on 450 of 450 simulated rig-unknowns samples
    and 72 of 72 exposures a third of a step off (README), in 12 instead of 55-63 ms at 448x448.

    The paper's sRGB average places the exposure with a spread of about 0.1 step (measured on
    simulated takes; 0.025 in linear light), so where the true start lies a third of a step from a
    candidate, the sRGB argmax picks the farther neighbour about one time in ten. The returned
    result is the sRGB one at the chosen start (its score, colour matrix and margin).

    ``clock``: the (fractional) start an independent clock predicts; each neighbour's linear-light score
    then loses ``clock_db`` dB per squared step from it (a prior: a clock pooled over many frames places the
    exposure better than one frame's scores, which prefer the farther neighbour by over a dB where the frame's
    interpolated sub-frames sit off their instants, as on accelerating motion; README).
    """
    cand = [p for p in (result.start - 1, result.start, result.start + 1) if p in result.scores]
    if len(cand) < 2:
        return result
    lo = min(cand)
    linear = search(
        _downsample(blur, scale),
        np.stack([_downsample(f, scale) for f in seq[lo : max(cand) + n]]),
        n,
        [p - lo for p in cand],
        interpolator,
        sub,
        space="linear",
        exclude_clipped=exclude_clipped,
        device=device,
        span=span,
    )
    scored = lo + linear.start
    p = scored
    if clock is not None and clock_db > 0:
        p = max(cand, key=lambda q: (linear.scores[q - lo] - clock_db * (q - clock) ** 2, -q))
    if p == result.start:
        return dataclasses.replace(result, clock_moved=True) if p != scored else result
    at = search(
        blur, seq[p : p + n], n, [0], interpolator, sub, exclude_clipped=exclude_clipped, device=device, span=span
    )
    far = [v for q, v in result.scores.items() if abs(q - p) >= 2]
    return SearchResult(
        start=p,
        matrix=at.matrix,
        psnr=result.scores[p],
        scores=dict(result.scores),
        margin=result.scores[p] - max(far) if far else float("inf"),
        clock_moved=p != scored,
    )
