"""Algorithm 1, fast: the same scores as ``reference_search`` without its per-candidate work.

* Every window's synthetic blur is a sliding sum over one "base" sequence built once per
  run of overlapping candidates: with the linear interpolator the sub-frames are exact
  blends, so the blur is a fixed weighting of the n sharp frames (k on inner frames,
  (k+1)/2 on the two ends, /sub); any other interpolator (or ``space="linear"``)
  interpolates each consecutive pair of the run once and slides a uniform window over
  the dense (k x) sequence.
* Per candidate, one 7x7 moment matrix of ``[fake, 1, blur]`` gives the colour matrix
  (4x4 solve) and, in closed form, the residual over all pixels, hence the PSNR: no
  least-squares solve over pixel rows and no corrected image.
* Clipped pixels of the synthetic blur can only lie where some base frame is near 0 or 1;
  only those pixels are tested per candidate, and their moments are subtracted.

numpy on the CPU; torch (float64) on a CUDA device.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..device import resolve_device
from ..errors import Rb2vError
from ..interpolation import Interpolator, LinearInterpolator, load_interpolator
from .blur import dense_frames, linear_to_srgb, srgb_to_linear, steps_per_pair
from .matrix import CLIP_HI, CLIP_LO, clipped_mask, psnr_from_sse, residual_from_moments, solve_moments
from .result import SearchResult, best_of, check_search_inputs

# Base frames this far inside the clipping thresholds cannot average to a clipped value,
# whatever the float rounding of the sliding sums.
_CLIP_GUARD = 1e-6


class _NumpyOps:
    """The few array operations the search needs, on numpy arrays (float64, planar (3,N) images)."""

    f64 = np.float64

    def put(self, a: np.ndarray) -> np.ndarray:
        return a

    def host(self, a) -> np.ndarray:
        return a

    def planar(self, frame: np.ndarray, scale: float) -> np.ndarray:
        """An (N,3) float32 frame as (3,N) float64 times ``scale``, in one pass."""
        return np.multiply(frame.T, scale, dtype=np.float64)

    def empty(self, shape) -> np.ndarray:
        return np.empty(shape)

    def gram(self, Q: np.ndarray, rows: int, G: np.ndarray) -> np.ndarray:
        """``Q Qᵀ`` into the 7x7 G, only its first ``rows`` rows (and columns).

        Contiguous dot products: far faster than a BLAS Gram of a 7-row matrix.
        """
        for i in range(rows):
            for j in range(i, len(Q)):
                G[i, j] = G[j, i] = np.dot(Q[i], Q[j])
        return G

    def to_srgb(self, x: np.ndarray) -> np.ndarray:
        return linear_to_srgb(x)


class _TorchOps:
    """The same operations on torch tensors (float64) on one device."""

    def __init__(self, device):
        import torch

        self.torch, self.device, self.f64 = torch, device, torch.float64

    def put(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def host(self, a) -> np.ndarray:
        return a.cpu().numpy()

    def planar(self, frame: np.ndarray, scale: float):
        return self.put(frame).to(self.f64).T.contiguous() * scale

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.f64, device=self.device)

    def gram(self, Q, rows: int, G: np.ndarray) -> np.ndarray:
        P = self.host(Q[:rows] @ Q.T)
        G[:rows], G[:, :rows] = P, P.T
        return G

    def to_srgb(self, x):
        t = self.torch
        return t.where(x <= 0.0031308, 12.92 * x, 1.055 * t.clamp(x, min=0.0031308) ** (1 / 2.4) - 0.055)


def _ops_for(device: str):
    """numpy for "cpu"; torch for a CUDA device ("auto" takes CUDA when there is one)."""
    if (device or "cpu").strip().lower() == "cpu":
        return _NumpyOps()
    dev = resolve_device(device)
    return _NumpyOps() if dev.type == "cpu" else _TorchOps(dev)


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
    then the sRGB curve when averaging in linear light. Base frames are converted to
    planar float64 once each, when the window first reaches them.
    """

    def __init__(self, frames: np.ndarray, n: int, sub: int, interp: Interpolator, space: str, ops):
        k = steps_per_pair(n, sub)
        if type(interp) is LinearInterpolator and space == "srgb":
            # exact blends: inner frames weigh k, the two ends (k+1)/2 (sub = k(n-1)+1)
            base, self.stride, self.length = frames, 1, n
            self.inner, self.ends = float(k), (k - 1) / 2
        else:
            dense = dense_frames(frames, k, interp)
            base = srgb_to_linear(dense).astype(np.float32) if space == "linear" else dense
            self.stride, self.length, self.inner, self.ends = k, sub, 1.0, 0.0
        self.base = base.reshape(len(base), -1, 3)
        self.scale, self.linear_light, self.ops = 1.0 / sub, space == "linear", ops
        self._planar: dict[int, object] = {}

    def maybe_clipped(self) -> np.ndarray:
        """Pixel indices where some base frame is near 0 or 1 (the only places a blur can clip)."""
        lo, hi = (srgb_to_linear(np.array([CLIP_LO, CLIP_HI])) if self.linear_light else (CLIP_LO, CLIP_HI))
        near = (self.base.max(axis=0) >= hi - _CLIP_GUARD) | (self.base.min(axis=0) <= lo + _CLIP_GUARD)
        return np.flatnonzero(near.any(axis=1))

    def _frame(self, f: int):
        if f not in self._planar:
            self._planar[f] = self.ops.planar(self.base[f], self.scale)
        return self._planar[f]

    def blurs(self, positions: list[int], out):
        """For sorted run-relative positions, write each window's blur into ``out`` (3,N); yield q."""
        s, L, ops = self.stride, self.length, self.ops
        total, cur = None, None
        for q in positions:
            if total is None or 2 * s * (q - cur) >= L:
                total = self._frame(q * s).copy()
                for f in range(q * s + 1, q * s + L):
                    total += self._frame(f)
            else:
                for r in range(cur, q):
                    for f in range(s):
                        total += self._frame(r * s + L + f)
                        total -= self._frame(r * s + f)
            for f in [f for f in self._planar if f < q * s]:  # frames the window has left
                del self._planar[f]
            cur = q
            if self.ends:
                out[:] = total
                out *= self.inner
                out -= self.ends * (self._frame(q * s) + self._frame(q * s + L - 1))
            else:
                out[:] = total
            if self.linear_light:
                out[:] = ops.to_srgb(out)
            yield q


def _score_runs(blur: np.ndarray, seq: np.ndarray, starts: list[int], n: int, sub: int, interp: Interpolator,
                space: str, exclude_clipped: bool, ops) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Scores and colour matrices of every start (see the module docstring)."""
    N = blur.shape[0] * blur.shape[1]
    y = blur.reshape(N, 3).astype(np.float64)
    Q = ops.empty((7, N))  # planar rows: fake RGB, 1, blur RGB (the [src, 1, dst] of matrix.gram)
    Q[3] = 1.0
    Q[4:] = ops.put(np.ascontiguousarray(y.T))
    G_const = np.zeros((7, 7))
    ops.gram(Q[3:], 4, G_const[3:, 3:])
    blur_clipped = np.flatnonzero(clipped_mask(blur.reshape(N, 3)))
    scores, matrices = {}, {}
    for run in _runs(starts, n):
        p0 = run[0]
        base = _Run(seq[p0:run[-1] + n], n, sub, interp, space, ops)
        if exclude_clipped:  # pixels where only the synthetic blur may clip
            extra = np.setdiff1d(base.maybe_clipped(), blur_clipped, assume_unique=True)
            extra_dev, fixed_dev = ops.put(extra), ops.put(blur_clipped)
        for q in base.blurs([p - p0 for p in run], Q[:3]):
            G_all = ops.gram(Q, 3, G_const.copy())
            if not np.isfinite(G_all).all():
                raise Rb2vError(f"sharp sequence frames {p0 + q}..{p0 + q + n - 1}: contain NaN or inf")
            G_fit = G_all
            if exclude_clipped:
                fe = Q[:3, extra_dev]
                hit = extra_dev[((fe <= CLIP_LO) | (fe >= CLIP_HI)).any(0)]
                QE = ops.empty((7, len(fixed_dev) + len(hit)))
                QE[:, :len(fixed_dev)], QE[:, len(fixed_dev):] = Q[:, fixed_dev], Q[:, hit]
                G_fit = G_all - ops.gram(QE, 7, np.zeros((7, 7)))
            M = solve_moments(G_fit)
            scores[p0 + q] = psnr_from_sse(residual_from_moments(G_all, M), 3 * N)
            matrices[p0 + q] = M
    return scores, matrices


def search(blur: np.ndarray, seq: np.ndarray, n: int = 7, candidates: Iterable[int] | None = None,
           interpolator: str | Interpolator = "linear", sub: int = 19, *, space: str = "srgb",
           exclude_clipped: bool = True, device: str = "cpu") -> SearchResult:
    """Algorithm 1: where in ``seq`` the exposure of ``blur`` lies, and its colour matrix.

    ``blur``: (H,W,3) blurry frame y; ``seq``: (T,H,W,3) upsampled sharp sequence x;
    ``candidates``: start indices p to score (None: all), window seq[p..p+n-1];
    ``interpolator``: a name ("linear", "flow", "cdfi") or an interpolator object making
    the sub-frames; ``sub``: sub-frames per window (``sub-1`` a multiple of ``n-1``);
    ``space``: "srgb" (the paper's plain average) or "linear" (average in linear light);
    ``exclude_clipped``: leave pixels clipped in either image out of the colour fit;
    ``device``: "cpu" (numpy), "cuda"/"auto" (torch).

    score(p) = PSNR(C(y_fake(p)), y): data range 1, MSE over all pixels and the 3
    channels in float64, of the corrected synthetic blur not clipped to [0,1] (the
    residual of the fitted linear model); the PSNR covers all pixels, clipped or not.
    Returns the argmax (the first start on ties); equal, to rounding, to
    ``reference.reference_search`` with the same options.
    """
    seq, starts = check_search_inputs(blur, seq, n, sub, space, candidates)
    interp = load_interpolator(interpolator)
    scores, matrices = _score_runs(blur, seq, starts, n, sub, interp, space, exclude_clipped, _ops_for(device))
    return best_of(scores, matrices)
