"""Algorithm 1 from frame-pair moments: the default search (linear sub-frames, sRGB average, numpy).

With linearly interpolated sub-frames the synthetic blur of a window is a fixed weighting of
its n frames, ``fake(p) = sum_i w_i x[p+i]`` (``blur.frame_weights``: for the paper's plain average,
inner frames k/sub and the two ends (k+1)/(2 sub); a shorter exposure centred on the window weighs
the middle frames only).
So every candidate's 7x7 moment matrix of ``[fake, 1, blur]`` (see ``matrix``) is a weighted
sum of moments of frame pairs:

* ``fake·fake`` needs ``x[f] x[g]ᵀ`` (3x3, summed over the pixels) for the pairs |f-g| < n:
  a band of the frames' Gram matrix, computed with one dense BLAS product per block of a few
  frames (against themselves and the next n-1 frames) on pixel tiles;
* ``fake·[1, blur]`` needs ``x[f] [1, blur]ᵀ`` per frame (one more product per tile);
* ``[1, blur]`` moments are the same for every candidate.

The per-candidate work is then a few 21x21 products, independent of the pixel count. Clipping
(``exclude_clipped``): the pixels clipped in the blurry frame are taken from each tile into a
second band (their moments are subtracted from the fit); a pixel can be clipped in a synthetic
blur only where some frame of its window is clipped (a convex combination never exceeds its
largest term), so only those pixels' differences are kept and checked per candidate (one
3x3n product each), and the moments of the ones that clip are subtracted from the fit.

The band is formed of each frame's difference from the blurry frame, ``d = x - blur``, in float32
(single-precision BLAS, half the memory traffic), each tile's products summed in float64; the
moments of ``fake = sum_i w_i d_i + blur`` (the weights sum to 1) then follow in float64. Where a
candidate fits, the differences are small, so a float32 product's rounding stays small against the
residual it decides (raw sRGB values in float32 would lose the residual to cancellation): scores
agree with ``reference_search``'s to about 1e-5 dB on 448x448 takes and within a few 1e-3 dB on
64x64 images, colour matrices to about 1e-4 (measured in ``rb2v bench colormatch`` and the tests).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import Rb2vError
from .blur import frame_weights
from .matrix import CLIP_HI, CLIP_LO, clipped_mask, psnr_from_sse, residual_from_moments, solve_moments
from .matrix import gram as pixel_moments

# Pixels per tile and frames per band block, measured on ``rb2v bench colormatch``'s takes (448x448, 46
# frames, one thread). OpenBLAS takes a product of m*n*k <= 1e6 through its small-matrix kernel, which on
# this machine (AVX-512) runs about 3x faster than its packed path: the band of 46 frames over 448x448
# pixels took 16 ms with 4096 pixels / 2 frames (6x24 products), 46-51 ms with 4096 / 4 (12x30, over the
# threshold), 22 ms with 4096 / 1 and 18-21 ms at 1024-2048 pixels. For the same reason the frames'
# products with [1, blur] go 48 rows at a time (3 against 7 ms for one 138x4 product per tile). Products
# this large would go multi-threaded in OpenBLAS, and on a shared machine a threaded product this small
# stalls far longer than it computes (928 against 256 ms with the other core busy), so the search holds
# BLAS to one thread, as every unit of work of the executor does.
_TILE = 4096
_BLOCK = 2
_LIN_ROWS = 48


class _Band:
    """Band moments of F frames over a set of pixels: pairs |f-g| < n, and each frame against [1, blur].

    Block b (frames b0..b0+_BLOCK-1) is multiplied with frames b0..b0+_BLOCK+n-2: every pair of a
    window (|f-g| < n) then lies in the block of its earlier frame.
    """

    def __init__(self, F: int, n: int):
        self.F, self.n = F, n
        self.blocks = [(b0, min(b0 + _BLOCK, F), min(b0 + _BLOCK + n - 1, F)) for b0 in range(0, F, _BLOCK)]
        self.P = [np.zeros((3 * (a1 - b0), 3 * (c1 - b0))) for b0, a1, c1 in self.blocks]
        self.lin = np.zeros((3 * F, 4))
        self.const = np.zeros((4, 4))  # [1, blur] moments, float64

    def add(self, Z: np.ndarray, Yb: np.ndarray) -> None:
        """Accumulate one tile: Z (3F, m) planar float32 differences from the blur, Yb (4, m) float32 rows [1, blur]."""
        for r0 in range(0, 3 * self.F, _LIN_ROWS):
            self.lin[r0 : r0 + _LIN_ROWS] += Z[r0 : r0 + _LIN_ROWS] @ Yb.T
        for (b0, a1, c1), P in zip(self.blocks, self.P):
            P += Z[3 * b0 : 3 * a1] @ Z[3 * b0 : 3 * c1].T

    def dense(self) -> np.ndarray:
        """The (3F, 3F) Gram with the band filled (zeros beyond it)."""
        G = np.zeros((3 * self.F, 3 * self.F))
        for (b0, a1, c1), P in zip(self.blocks, self.P):
            G[3 * b0 : 3 * c1, 3 * b0 : 3 * a1] = P.T
            G[3 * b0 : 3 * a1, 3 * b0 : 3 * c1] = P
        return G

    def window(self, G: np.ndarray, q: int, w: np.ndarray, Wk: np.ndarray) -> np.ndarray:
        """The 7x7 moments of ``[fake, 1, blur]`` of the window starting at run frame q."""
        n = len(w)
        ff = Wk @ G[3 * q : 3 * (q + n), 3 * q : 3 * (q + n)] @ Wk.T
        fl = w @ self.lin.reshape(self.F, 12)[q : q + n]
        fl = fl.reshape(3, 4)
        moments_d = np.empty((7, 7))  # of [fake - blur, 1, blur]
        moments_d[:3, :3] = 0.5 * (ff + ff.T)
        moments_d[:3, 3:], moments_d[3:, :3], moments_d[3:, 3:] = fl, fl.T, self.const
        T = np.eye(7)
        T[:3, 4:] = w.sum() * np.eye(3)  # fake = (fake - blur) + blur
        return T @ moments_d @ T.T


def _tiles(start: int, stop: int):
    for s in range(start, stop, _TILE):
        yield s, min(s + _TILE, stop)


@threadpool_limits.wrap(limits=1, user_api="blas")
def gram_scores(
    blur: np.ndarray,
    seq: np.ndarray,
    runs: list[list[int]],
    n: int,
    sub: int,
    exclude_clipped: bool,
    span: float | None = None,
) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Scores and colour matrices of every start in ``runs`` (groups of starts whose windows overlap)."""
    w = frame_weights(n, sub, span)
    Wk = np.kron(w, np.eye(3))  # (3, 3n): fake = Wk @ the window's stacked frames
    Wk32 = Wk.astype(np.float32)
    N = blur.shape[0] * blur.shape[1]
    y = blur.reshape(N, 3)
    X = seq.reshape(len(seq), N, 3)
    clipped = clipped_mask(y) if exclude_clipped else np.zeros(N, dtype=bool)
    clipped_idx = np.flatnonzero(clipped)
    nf = len(clipped_idx)
    Yb = np.empty((4, N))  # rows [1, blur]
    Yb[0] = 1.0
    Yb[1:] = y.T
    Yb32 = Yb.astype(np.float32)
    const = Yb @ Yb.T
    Yc = np.take(Yb, clipped_idx, axis=1)
    const_clipped = Yc @ Yc.T
    scores, matrices = {}, {}
    for run in runs:
        f0, F = run[0], run[-1] + n - run[0]
        frames = X[f0 : f0 + F]
        every = _Band(F, n)  # over all pixels
        every.const += const
        out = _Band(F, n)  # over the blur-clipped pixels (never in the fit)
        out.const += const_clipped
        risky, risky_d = [], []  # fit pixels where some frame of the run is clipped, their differences
        Z = np.empty((F, 3, _TILE), np.float32)
        for s, e in _tiles(0, N):
            Zt = Z[:, :, : e - s]
            np.subtract(frames[:, s:e].transpose(0, 2, 1), Yb32[1:, s:e], out=Zt)
            Z2 = Zt.reshape(3 * F, e - s)
            every.add(Z2, Yb32[:, s:e])
            if exclude_clipped:  # columns taken from the tile while it is in cache (np.take: faster than Z2[:, c])
                c = np.flatnonzero(clipped[s:e])
                if len(c):
                    out.add(np.take(Z2, c, axis=1), np.take(Yb32[:, s:e], c, axis=1))
                # a frame value (difference + blur) clips somewhere in the run; the 1e-6 is a float32 rounding's
                # margin: a pixel found risky by rounding alone is only checked, never dropped
                top, bottom = Zt.max(axis=0), Zt.min(axis=0)
                top += Yb32[1:, s:e]
                bottom += Yb32[1:, s:e]
                edge = (top >= CLIP_HI - 1e-6) | (bottom <= CLIP_LO + 1e-6)
                r = np.flatnonzero(edge.any(axis=0) & ~clipped[s:e])
                if len(r):
                    risky.append(s + r)
                    risky_d.append(np.take(Z2, r, axis=1))
        G_every, G_out = every.dense(), out.dense()
        if risky:
            V = np.concatenate(risky)
            DV = np.concatenate(risky_d, axis=1)  # (3F, |V|) float32 differences from the blur
            yV32, yV = Yb32[1:, V], Yb[1:, V].T
        for p in run:
            q = p - f0
            M_all = every.window(G_every, q, w, Wk)
            if not np.isfinite(M_all).all():
                raise Rb2vError(f"sharp sequence frames {p}..{p + n - 1}: contain NaN or inf")
            M_fit = M_all - out.window(G_out, q, w, Wk) if nf else M_all.copy()
            if risky:  # pixels clipped in this candidate's synthetic blur leave the fit
                fake = Wk32 @ DV[3 * q : 3 * (q + n)]  # (3, |V|): fake - blur (the weights sum to 1)
                fake += yV32
                hits = np.flatnonzero(clipped_mask(fake.T))
                if len(hits):
                    M_fit -= pixel_moments(np.take(fake, hits, axis=1).T, yV[hits])
            M = solve_moments(M_fit)
            scores[p] = psnr_from_sse(residual_from_moments(M_all, M), 3 * N)
            matrices[p] = M
    return scores, matrices
