"""The upsampled sharp sequence x of a take, produced lazily with a bounded cache.

x[f*i] is sharp frame i and x[f*i + m] (0 < m < f) the frame interpolated at t = m/f
between sharp frames i and i+1. Consecutive blurry frames need overlapping stretches of x,
so frames are kept in an LRU cache: memory stays bounded however long the take is.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ..interpolation import Interpolator


class LRU:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: OrderedDict = OrderedDict()

    def get(self, key, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return self.put(key, make())

    def put(self, key, value: np.ndarray) -> np.ndarray:
        self.items[key] = value
        self.items.move_to_end(key)
        if len(self.items) > self.capacity:
            self.items.popitem(last=False)
        return value


def _digest(a: np.ndarray) -> bytes:
    # A strided sample identifies a real frame; full hashing would cost more than it saves.
    return hashlib.blake2b(np.ascontiguousarray(a[::5, ::5]).tobytes(), digest_size=16).digest() + bytes(
        str(a.shape), "ascii"
    )


class CachedInterpolator(Interpolator):
    """Remembers results by input content: overlapping candidate windows of consecutive blurry
    frames ask for the same sub-frames again, and flow interpolation is the costly step."""

    def __init__(self, inner: Interpolator, capacity: int = 256):
        self.inner = inner
        self.name = inner.name
        self.cache = LRU(capacity)

    def _batch(self, A, B, t):
        out = np.empty_like(A)
        missing = []
        keys = [(_digest(a), _digest(b), round(t, 9)) for a, b in zip(A, B)]
        for i, key in enumerate(keys):
            hit = self.cache.items.get(key)
            if hit is None:
                missing.append(i)
            else:
                out[i] = hit
        if missing:
            made = self.inner.batch(A[missing], B[missing], t)
            for j, i in enumerate(missing):
                out[i] = made[j]
                self.cache.get(keys[i], lambda m=made[j]: m.copy())
        return out


class AnchoredInterpolator(Interpolator):
    """Sub-frames of the upsampled sequence, interpolated from the real sharp frames around them.

    Asked for the frame at t between x[j] and x[j+1], it returns the frame at the same instant
    between the two real sharp frames that bracket it (t' = (j mod f + t) / f). Every
    instant between two sharp frames then comes from one pair, one flow estimate, and
    never from an interpolated frame. Pairs it does not recognise are passed through.
    """

    def __init__(self, seq: UpsampledSequence, inner: Interpolator):
        self.seq = seq
        self.inner = inner
        self.name = inner.name

    def _one(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        j = self.seq.index_of(a)
        if j is None or self.seq.index_of(b) != j + 1:
            return self.inner(a, b, t)
        i, m = divmod(j, self.seq.factor)
        tau = (m + t) / self.seq.factor
        return self.inner(self.seq.sharp(i), self.seq.sharp(i + 1), tau)

    def _batch(self, A, B, t):
        return np.stack([self._one(a, b, t) for a, b in zip(A, B)])


class UpsampledSequence:
    def __init__(
        self,
        sharp_loader: Callable[[int], np.ndarray],
        sharp_count: int,
        interpolator: Interpolator,
        factor: int = 2,
        capacity: int = 64,
    ):
        self.load = sharp_loader
        self.sharp_count = sharp_count
        self.interp = interpolator
        self.factor = factor
        self.cache = LRU(capacity)
        self.positions: OrderedDict[bytes, int] = OrderedDict()  # content digest -> index in x

    def __len__(self) -> int:
        return self.factor * (self.sharp_count - 1) + 1

    def sharp(self, i: int) -> np.ndarray:
        return self[self.factor * i]

    def _request(self, j: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The (a, b, t) that interpolates x[j] (j not a multiple of the factor)."""
        i, m = divmod(j, self.factor)
        return self.sharp(i), self.sharp(i + 1), m / self.factor

    def _make(self, j: int) -> np.ndarray:
        frame = self.interp(*self._request(j)) if j % self.factor else self.load(j // self.factor)
        return self._remember(frame, j)

    def _remember(self, frame: np.ndarray, j: int) -> np.ndarray:
        self.positions[_digest(frame)] = j
        while len(self.positions) > 4 * self.cache.capacity:
            self.positions.popitem(last=False)
        return frame

    def __getitem__(self, j: int) -> np.ndarray:
        if not 0 <= j < len(self):
            raise IndexError(j)
        return self.cache.get(j, lambda: self._make(j))

    def index_of(self, frame: np.ndarray) -> int | None:
        return self.positions.get(_digest(frame))

    def window(self, lo: int, hi: int) -> np.ndarray:
        """x[lo:hi] stacked (N,H,W,3). Its interpolated frames not yet cached are made in one
        ``many`` call, so a network interpolator gets them as batches."""
        missing = [j for j in range(lo, hi) if j % self.factor and j not in self.cache.items]
        if missing:
            for j, frame in zip(missing, self.interp.many([self._request(j) for j in missing])):
                self.cache.put(j, self._remember(frame, j))
        return np.stack([self[j] for j in range(lo, hi)])
