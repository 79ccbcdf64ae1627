"""The few array operations the fast search needs: numpy on the CPU, torch on a GPU.

Images are planar float64 rows: (3,N) for one RGB image, 7 rows for ``[fake, 1, blur]``.
"""

from __future__ import annotations

import numpy as np

from ..device import resolve_device
from .blur import linear_to_srgb
from .matrix import CLIP_HI, CLIP_LO

_BLOCK = 1 << 13  # pixels per einsum block: 7 float64 rows of it (448 KiB) stay in the L2 cache


class NumpyArrays:
    """numpy, float64."""

    def put(self, a: np.ndarray) -> np.ndarray:
        return a

    def empty(self, shape) -> np.ndarray:
        return np.empty(shape)

    def planar(self, frame: np.ndarray, scale: float) -> np.ndarray:
        """An (N,3) frame as (3,N) float64 times ``scale``, in one pass."""
        return np.multiply(frame.T, scale, dtype=np.float64)

    def scaled(self, a: np.ndarray, factor: float, out: np.ndarray) -> None:
        np.multiply(a, factor, out=out)

    def gram(self, Q: np.ndarray, rows: int, G: np.ndarray) -> np.ndarray:
        """Fill the first ``rows`` rows and columns of G (7x7) with those of ``Q Qᵀ``.

        ``einsum`` over column blocks that stay in cache: single-threaded, and faster than
        a BLAS Gram of so few rows (threaded BLAS dot products stall on a busy machine).
        """
        P = np.zeros((rows, len(Q)))
        for s in range(0, Q.shape[1], _BLOCK):
            P += np.einsum("in,jn->ij", Q[:rows, s : s + _BLOCK], Q[:, s : s + _BLOCK])
        G[:rows], G[:, :rows] = P, P.T
        return G

    def clip_hits(self, F: np.ndarray) -> np.ndarray:
        """Indices of the pixels (columns) where image F (3,N) is clipped."""
        return np.flatnonzero((F.max(0) >= CLIP_HI) | (F.min(0) <= CLIP_LO))

    def to_srgb(self, x: np.ndarray) -> np.ndarray:
        # the curve in float32 (its fast path, 8x faster than float64's): a rounding of 6e-8 against the
        # 8-bit steps (4e-3) the fit's residual is made of
        return linear_to_srgb(x.astype(np.float32))


class TorchArrays:
    """torch float64 on one device; moments from one matmul."""

    def __init__(self, device):
        import torch

        self.torch, self.device = torch, device

    def put(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.torch.float64, device=self.device)

    def planar(self, frame: np.ndarray, scale: float):
        return self.put(frame).to(self.torch.float64).T.contiguous() * scale

    def scaled(self, a, factor: float, out) -> None:
        self.torch.mul(a, factor, out=out)

    def gram(self, Q, rows: int, G: np.ndarray) -> np.ndarray:
        P = (Q[:rows] @ Q.T).cpu().numpy()
        G[:rows], G[:, :rows] = P, P.T
        return G

    def clip_hits(self, F):
        return self.torch.nonzero((F.amax(0) >= CLIP_HI) | (F.amin(0) <= CLIP_LO)).reshape(-1)

    def to_srgb(self, x):
        t = self.torch
        return t.where(x <= 0.0031308, 12.92 * x, 1.055 * t.clamp(x, min=0.0031308) ** (1 / 2.4) - 0.055)


def arrays_for(device: str):
    """numpy for "cpu"; torch for a CUDA device ("auto" takes CUDA when there is one)."""
    if (device or "cpu").strip().lower() == "cpu":
        return NumpyArrays()
    dev = resolve_device(device)
    return NumpyArrays() if dev.type == "cpu" else TorchArrays(dev)
