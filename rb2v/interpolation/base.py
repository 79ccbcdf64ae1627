"""The interpolator protocol, the linear baseline, the registry and streaming upsampling."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..errors import Rb2vError


def check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Validate two frames (or two batches) for interpolation."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise Rb2vError(f"interpolation input {name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise Rb2vError(f"interpolation input {name} must be float32 RGB in [0,1], got {x.dtype}")
        if x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise Rb2vError(f"interpolation input {name} must be (H,W,3) or (N,H,W,3), got shape {x.shape}")
    if a.shape != b.shape:
        raise Rb2vError(f"interpolation inputs differ in shape: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise Rb2vError("interpolation inputs contain NaN or inf")


def check_requests(requests: list[tuple[np.ndarray, np.ndarray, float]]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Validate ``(a, b, t)`` requests of single frames (each distinct pair once); returns them."""
    seen = set()
    for a, b, t in requests:
        if not 0 <= t <= 1:
            raise Rb2vError(f"interpolation time t must lie in [0, 1], got {t}")
        if (id(a), id(b)) not in seen:
            check_pair(a, b)
            if a.ndim != 3:
                raise Rb2vError(f"interpolation requests take single (H,W,3) frames, got shape {a.shape}")
            seen.add((id(a), id(b)))
    return requests


class Interpolator:
    """Base class: subclasses implement ``_batch(A, B, t)`` for 0 < t < 1."""

    name = "base"

    def __call__(self, a: np.ndarray, b: np.ndarray, t: float = 0.5) -> np.ndarray:
        check_pair(a, b)
        if a.ndim != 3:
            raise Rb2vError(f"use .batch() for batches; got shape {a.shape}")
        return self.batch(a[None], b[None], t)[0]

    def batch(self, A: np.ndarray, B: np.ndarray, t) -> np.ndarray:
        """Interpolate N pairs; ``t`` is a scalar or one value per pair."""
        check_pair(A, B)
        if A.ndim != 4:
            raise Rb2vError(f"batch() takes (N,H,W,3) arrays, got shape {A.shape}")
        ts = np.broadcast_to(np.asarray(t, dtype=np.float64), (A.shape[0],))
        if not np.all((ts >= 0) & (ts <= 1)):  # NaN too
            raise Rb2vError(f"interpolation time t must lie in [0, 1], got {t}")
        out = np.empty_like(A)
        ends0, ends1 = ts == 0, ts == 1
        out[ends0], out[ends1] = A[ends0], B[ends1]
        mid = ~(ends0 | ends1)
        if mid.any():
            # group by t so subclasses see one t per call
            for tv in np.unique(ts[mid]):
                sel = np.flatnonzero(ts == tv)
                out[sel] = self._batch(A[sel], B[sel], float(tv))
        return out

    def many(self, requests: list[tuple[np.ndarray, np.ndarray, float]], threads: int = 1) -> list[np.ndarray]:
        """The frames of several ``(a, b, t)`` requests, in order. Here the requests of one t (and frame
        size) go through ``batch`` together, so a network sees several pairs per call; interpolators that
        share work between the times of one pair, or use ``threads``, override this."""
        groups: dict[tuple[float, tuple[int, ...]], list[int]] = {}
        for i, (a, _, t) in enumerate(check_requests(requests)):
            groups.setdefault((t, a.shape), []).append(i)
        out: list = [None] * len(requests)
        for (t, _), indices in groups.items():
            A = np.stack([requests[i][0] for i in indices])
            B = np.stack([requests[i][1] for i in indices])
            for i, frame in zip(indices, self.batch(A, B, t)):
                out[i] = frame
        return out

    def _batch(self, A: np.ndarray, B: np.ndarray, t: float) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<interpolator {self.name}>"


class LinearInterpolator(Interpolator):
    """Per-pixel linear blend: a baseline and the exact model of a static scene."""

    name = "linear"

    def _batch(self, A, B, t):
        return ((1.0 - t) * A + t * B).astype(np.float32)

    def many(self, requests: list[tuple[np.ndarray, np.ndarray, float]], threads: int = 1) -> list[np.ndarray]:
        """Each request blended on its own, the same bits as ``batch``'s: a blend gains nothing from stacking
        the frames into batches (which took 40 % of a linear build's time)."""
        return [
            a.copy() if t == 0 else b.copy() if t == 1 else self._batch(a, b, t) for a, b, t in check_requests(requests)
        ]


# name -> factory(**kwargs). Other modules register "flow" and "cdfi".
_REGISTRY: dict[str, Callable[..., Interpolator]] = {"linear": lambda **kw: LinearInterpolator()}


def register(name: str, factory: Callable[..., Interpolator]) -> None:
    _REGISTRY[name] = factory


def _ensure_builtin() -> None:
    """Import the optional interpolators so they register themselves."""
    import importlib

    for mod in ("flow", "cdfi"):
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise


def load_interpolator(name: str | Interpolator = "flow", **kwargs) -> Interpolator:
    """An interpolator by name ("linear", "flow", "cdfi"); objects pass through."""
    if isinstance(name, Interpolator):
        return name
    if not isinstance(name, str):
        raise Rb2vError(f"interpolator must be a name or an Interpolator, got {type(name).__name__}")
    _ensure_builtin()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise Rb2vError(f"unknown interpolator {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return factory(**kwargs)


def upsample_sequence(
    frames: Iterable[np.ndarray], factor: int = 2, interpolator: str | Interpolator = "flow", batch: int = 8
) -> Iterator[np.ndarray]:
    """Stream ``frames`` upsampled ``factor``x in time: x[factor*i] is frame i.

    Holds at most ``batch`` + 1 input frames in memory; yields frames in order.
    """
    if factor < 1:
        raise Rb2vError(f"upsample factor must be >= 1, got {factor}")
    interp = load_interpolator(interpolator)
    ts = [k / factor for k in range(1, factor)]
    prev = None

    def flush(pairs):
        A = np.stack([p[0] for p in pairs])
        B = np.stack([p[1] for p in pairs])
        mids = [interp.batch(A, B, t) for t in ts]
        for i, (a, _) in enumerate(pairs):
            yield a
            for m in mids:
                yield m[i]

    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for f in frames:
        if prev is not None:
            pairs.append((prev, f))
            if len(pairs) >= batch:
                yield from flush(pairs)
                pairs = []
        prev = f
    if pairs:
        yield from flush(pairs)
    if prev is not None:
        yield prev
