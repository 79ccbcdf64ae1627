"""``"flow"``: classical optical-flow frame interpolation, CPU-friendly, any t in (0, 1).

1. Bidirectional optical flow ``F01`` (a->b) and ``F10`` (b->a) with OpenCV's DIS with
   variational refinement, at half the frame size by default (steps 1-3 and the choice of
   step 5 run there; the chosen motion is upsampled and each frame warped once at full size:
   see FLOW_SCALE).
2. Forward-backward consistency: a pixel of ``a`` whose flow, followed by the flow of
   ``b`` back, does not return home is occluded in ``b`` (and the other way round).
3. The motion field at time t: every pixel of both frames is splatted (bilinear forward
   splatting) to where it is at time t, carrying its a->b motion vector. Collisions are
   resolved softly in favour of consistent, photo-consistent pixels (the foreground that
   stays visible), as in softmax splatting. Holes are filled by a push-pull pyramid.
4. Both frames are sampled backward (bicubic) along that motion and blended with
   weights ``1-t`` and ``t``.
5. Fusion: the same synthesis is also tried with three other motion candidates (zero
   motion, ``F01`` and ``-F10`` read at the pixel itself); each pixel keeps the candidate
   whose two warped frames agree best in a small neighbourhood. This repairs splatting
   failures on thin or fast objects and flow noise on static texture. (At the reduced size
   the candidates' warps are bilinear: only their agreement is used, see CHOICE_SAMPLING.)

Measured on Middlebury "other" (rb2v bench interpolation): per-pixel visibility weights
from the consistency masks (``(1-t)*vis_a``, ``t*vis_b``) lowered the mean PSNR by
0.12 dB (the masks are noisy on real footage), so consistency is used where it is
reliable: deciding who wins when splatted pixels collide.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import Rb2vError
from .base import Interpolator, check_requests, register

# Forward-backward test (Sundaram et al. 2010): |F01 + F10(x+F01)|^2 < FB_REL (|F01|^2 + |F10w|^2) + FB_ABS
FB_REL = 0.01
FB_ABS = 0.5
# softmax-splatting importance: exp(-PHOTO_GAIN * |I0(x) - I1(x + F01)|) (RGB in [0,1], mean over channels)
PHOTO_GAIN = 5.0
# splat weight of a pixel that fails the consistency test (it may be occluded at time t)
INCONSISTENT_WEIGHT = 0.05
# neighbourhood (Gaussian sigma, px) over which the two warps' disagreement is compared in fusion
FUSION_SIGMA = 3.0
# bicubic keeps the warped frames sharp (bilinear sampling at half-pixel positions blurs)
IMAGE_SAMPLING = cv2.INTER_CUBIC
# The fusion's warps at the reduced size only compare the candidates (their images are never output):
# bilinear there, not bicubic, cost 0.02 dB on Middlebury (35.21 -> 35.19) and on the street sequence's
# 25 triples (39.928 -> 39.909 dB), and took a frame at 854x480 from 53 to 45 ms (one thread, issue 16).
CHOICE_SAMPLING = cv2.INTER_LINEAR
# flow fields of this many recent pairs are kept (about 3 MB each at 448x448, full scale)
FLOW_CACHE_PAIRS = 16
# Flow, the splatted motion and the fusion's per-pixel choice of motion are made at this fraction
# of the frame size (DIS preset "fast" there, "medium" at full size); the chosen motion is
# upsampled (bilinear, displacements rescaled) and each frame warped once at full size.
# Middlebury "other" mean PSNR / CPU time of the 12 scenes, same run (issue 16, 5 variational iterations):
# full size 35.79 dB / 5.2 s; 0.6 35.62 dB / 1.8 s; 0.5 35.16 dB / 1.3 s (target >= 35.0 dB).
FLOW_SCALE = 0.5
MIN_FLOW_SIZE = 64  # below this many pixels on a side, flow runs at full size
# DIS's variational refinement iterations: on the same 12 scenes (issue 16), at half size 5 / 3 / 2 / 1 / 0
# give 35.16 / 35.19 / 35.20 / 35.21 / 35.09 dB, at full size 35.79 / 35.79 / 35.78 / 35.77 dB for 5 / 3 /
# 2 / 1; on the real street sequence (../shared/data/img_seq, 25 middle frames of 854x480 pairs) 5 / 2 / 1
# give 38.90 / 38.92 / 38.94 dB. Each iteration costs about 1.5 ms per 224x224 flow (a third of DIS at 5).
# (On that sequence the candidate fusion adds 0.17 dB, 38.92 vs 38.75, for 30 % more CPU: kept.)
# Rerun in one process at half size, 2 vs 1: Middlebury 35.202 / 35.210 dB, the street sequence's 25 triples
# (frames i, i+2 -> i+1 around its middle) 39.911 / 39.928 dB; 1 is the best measured at the default size.
VARIATIONAL_ITERS = 1


DIS_MIN_SIDE = 12  # OpenCV's DIS refuses frames whose width and height are both smaller


def check_flow_size(width: int, height: int, what: str = "frames") -> None:
    if max(width, height) < DIS_MIN_SIDE:
        raise Rb2vError(
            f"{what}: {width}x{height} is too small for optical flow (DIS needs a side of at least {DIS_MIN_SIDE} px)"
        )


def _dis(preset: str, variational_iters: int) -> cv2.DISOpticalFlow:
    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    if preset not in presets:
        raise Rb2vError(f"flow preset must be one of {', '.join(presets)}, got {preset!r}")
    dis = cv2.DISOpticalFlow_create(presets[preset])
    dis.setFinestScale(0)
    dis.setVariationalRefinementIterations(variational_iters)
    return dis


def optical_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """The a->b flow (H,W,2) float32 (x, y) of two RGB frames in [0, 1], DIS at full size."""
    check_flow_size(a.shape[1], a.shape[0])
    return _dis(preset, VARIATIONAL_ITERS).calc(_grey8(a), _grey8(b), None)


def _grey8(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """(H,W,2) float32 pixel coordinates (x, y), read-only (shared between calls)."""
    grid = np.ascontiguousarray(np.mgrid[0:h, 0:w][::-1].transpose(1, 2, 0).astype(np.float32))
    grid.flags.writeable = False
    return grid


_THIRD = np.full((1, 3), 1 / 3, np.float32)


def _mean_absdiff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over the channels of |x - y|, (H,W) float32 (OpenCV: several times faster than numpy's mean(-1))."""
    return cv2.transform(cv2.absdiff(x, y), _THIRD)


def warp_backward(
    img: np.ndarray,
    flow: np.ndarray,
    interpolation: int = cv2.INTER_LINEAR,
    scale: float = 1.0,
    coords: np.ndarray | None = None,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """``img`` sampled at ``x + scale * flow(x)`` (bilinear unless told, border replicated). ``coords``
    (H,W,2) and ``dst`` are buffers to reuse: for a large frame a fresh array costs page faults."""
    coords = cv2.scaleAdd(flow, scale, _grid(*flow.shape[:2]), dst=coords)  # one pass, no (H,W,2) temporary
    return cv2.remap(img, coords, None, interpolation, dst=dst, borderMode=cv2.BORDER_REPLICATE)


def consistency(f01: np.ndarray, f10: np.ndarray) -> np.ndarray:
    """1 where a pixel of frame 0 comes back home through F01 then F10, 0 where it does not."""
    back = warp_backward(f10, f01)
    d = f01 + back
    err = np.einsum("ijk,ijk->ij", d, d)
    bound = FB_REL * (np.einsum("ijk,ijk->ij", f01, f01) + np.einsum("ijk,ijk->ij", back, back)) + FB_ABS
    return (err < bound).astype(np.float32)


def splat(sources, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear forward splatting of several sources onto one (h, w) grid.

    ``sources``: (values (H,W,C), weights (H,W), destination (H,W,2) as (x, y)) triples. Returns the
    sum of ``weights * values`` and of ``weights`` per target pixel, (h,w,C) and (h,w) float64.
    A two-pixel margin takes every corner that falls outside (no per-corner bounds test).
    """
    stride = w + 4
    size = (h + 4) * stride
    nch = sources[0][0].shape[-1]
    acc, wsum = np.zeros((nch, size)), np.zeros(size)
    for values, weights, dest in sources:
        corner = np.floor(dest)
        frac = dest - corner
        # corners clamped to [-2, size]: a clamped corner lands in the margin exactly when the true one is outside
        xi = np.clip(corner[..., 0], -2, w).astype(np.intp)
        yi = np.clip(corner[..., 1], -2, h).astype(np.intp)
        top_left = (yi * stride + xi + (2 * stride + 2)).ravel()
        fx, fy = frac[..., 0], frac[..., 1]
        gx, gy = 1 - fx, 1 - fy
        channels = [values[..., c].ravel() for c in range(nch)]
        for offset, bw in ((0, gx * gy), (1, fx * gy), (stride, gx * fy), (stride + 1, fx * fy)):
            idx = top_left + offset
            wt = (bw * weights).ravel()
            wsum += np.bincount(idx, wt, minlength=size)
            for c in range(nch):
                acc[c] += np.bincount(idx, wt * channels[c], minlength=size)
    acc = acc.reshape(nch, h + 4, stride)[:, 2:-2, 2:-2].transpose(1, 2, 0)
    return acc, wsum.reshape(h + 4, stride)[2:-2, 2:-2]


def push_pull(values: np.ndarray, weights: np.ndarray, min_size: int = 4) -> np.ndarray:
    """Fill pixels of low weight from coarser, weight-normalised levels (``values`` is weight-premultiplied)."""
    h, w = weights.shape
    if min(h, w) <= min_size:
        return values / np.maximum(weights, 1e-6)[..., None]
    small_v = cv2.resize(values, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    small_w = cv2.resize(weights, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(
        push_pull(small_v.reshape(*small_w.shape, -1), small_w, min_size), (w, h), interpolation=cv2.INTER_LINEAR
    ).reshape(values.shape)
    trust = np.clip(weights, 0, 1)[..., None]
    own = values / np.maximum(weights, 1e-6)[..., None]
    return trust * own + (1 - trust) * coarse


@dataclass
class _PairRecord:
    """What one pair of frames shares between all its times (cached by content, see ``FlowInterpolator._pair``)."""

    f01: np.ndarray  # a->b flow
    f10: np.ndarray  # b->a flow
    importance: tuple[np.ndarray, np.ndarray] | None = None  # splat weights of a's and b's pixels
    zero_cost: np.ndarray | None = None  # the fusion cost of zero motion (the same for every t)


class FlowInterpolator(Interpolator):
    """Bidirectional DIS flow, consistency-weighted splatting of the motion at t, candidate fusion.

    ``scale`` < 1 runs flow, splatting and fusion at that fraction of the size (see FLOW_SCALE);
    ``scale=1`` is the full-size method (``preset`` defaults to "medium" there, "fast" below).

    ``fuse=False`` skips the candidate fusion: a little faster (DIS and splatting dominate the
    time), 0.18 dB lower mean PSNR on Middlebury (35.61 vs 35.79 dB).
    """

    name = "flow"

    def __init__(
        self,
        preset: str | None = None,
        variational_iters: int = VARIATIONAL_ITERS,
        fuse: bool = True,
        device: str = "cpu",
        scale: float = FLOW_SCALE,
    ):
        # ``device`` is accepted for a uniform interface; this interpolator runs on the CPU
        if not 0 < scale <= 1:
            raise Rb2vError(f"flow scale must lie in (0, 1], got {scale}")
        self._dis_settings = (preset or ("medium" if scale == 1 else "fast"), variational_iters)
        _dis(*self._dis_settings)  # a bad preset fails here, not in a worker thread
        self._local = threading.local()  # one DIS object per thread (it is not safe to share)
        self._cache_lock = threading.Lock()
        self.fuse = fuse
        self.scale = scale
        # The same pair is often asked for at several t (1/3 and 2/3 for synthetic blur):
        # estimating its flow once saves the costliest step.
        self._flow_cache: OrderedDict = OrderedDict()

    def _batch(self, A: np.ndarray, B: np.ndarray, t: float) -> np.ndarray:
        return np.stack([self.interpolate(a, b, t) for a, b in zip(A, B)])

    def _pair(self, a: np.ndarray, b: np.ndarray) -> _PairRecord:
        """The cached record of a pair (its flows; ``_prepared`` fills in the rest when first needed)."""
        check_flow_size(a.shape[1], a.shape[0])
        ga, gb = _grey8(a), _grey8(b)
        key = hashlib.blake2b(ga.tobytes() + gb.tobytes(), digest_size=16).digest()
        with self._cache_lock:
            hit = self._flow_cache.get(key)
            if hit is not None:
                self._flow_cache.move_to_end(key)
                return hit
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = self._local.dis = _dis(*self._dis_settings)
        record = _PairRecord(dis.calc(ga, gb, None), dis.calc(gb, ga, None))
        with self._cache_lock:
            self._flow_cache[key] = record
            if len(self._flow_cache) > FLOW_CACHE_PAIRS:
                self._flow_cache.popitem(last=False)
        return record

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F01`` (a->b) and ``F10`` (b->a), (H,W,2) float32 (x, y) displacements."""
        record = self._pair(a, b)
        return record.f01, record.f10

    @staticmethod
    def importance(a: np.ndarray, b: np.ndarray, f01: np.ndarray, f10: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Splat weights of the pixels of a and of b (the same for every t).

        When several pixels land on one spot, consistent, photo-consistent pixels (the surface
        that stays visible) win over pixels that become occluded.
        """
        e0 = cv2.GaussianBlur(_mean_absdiff(a, warp_backward(b, f01)), (0, 0), 1.0)
        e1 = cv2.GaussianBlur(_mean_absdiff(b, warp_backward(a, f10)), (0, 0), 1.0)
        z0 = np.exp(-PHOTO_GAIN * e0) * np.maximum(consistency(f01, f10), INCONSISTENT_WEIGHT)
        z1 = np.exp(-PHOTO_GAIN * e1) * np.maximum(consistency(f10, f01), INCONSISTENT_WEIGHT)
        return z0, z1

    def motion_at(
        self,
        a: np.ndarray,
        b: np.ndarray,
        f01: np.ndarray,
        f10: np.ndarray,
        t: float,
        importance: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The a->b motion of whatever is at each pixel at time t (forward splatting + hole filling)."""
        h, w = f01.shape[:2]
        grid = _grid(h, w)
        z0, z1 = importance if importance is not None else self.importance(a, b, f01, f10)
        moved0, moved1 = cv2.scaleAdd(f01, t, grid), cv2.scaleAdd(f10, 1 - t, grid)
        acc, wsum = splat([(f01, z0, moved0), (np.negative(f10), z1, moved1)], h, w)
        return push_pull(acc.astype(np.float32), wsum.astype(np.float32))

    def _prepared(self, a: np.ndarray, b: np.ndarray) -> tuple:
        """What every t of a pair shares: the frames the flow runs on, the pair's record (see ``_pair``,
        with its splat weights and zero-motion cost made) and whether those frames are reduced."""
        h, w = a.shape[:2]
        sw, sh = round(w * self.scale), round(h * self.scale)
        reduced = self.scale < 1 and min(sw, sh) >= MIN_FLOW_SIZE
        if reduced:
            a = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, (sw, sh), interpolation=cv2.INTER_AREA)
        record = self._pair(a, b)
        if record.importance is None:
            record.importance = self.importance(a, b, record.f01, record.f10)
        if record.zero_cost is None and self.fuse:  # zero motion warps nothing: its cost is the same for every t
            record.zero_cost = self._cost(a, b)
        return a, b, record, reduced

    def _at(self, a: np.ndarray, b: np.ndarray, prepared: tuple, t: float) -> np.ndarray:
        """The frame at t from a prepared pair (reads the pair's record only: safe on several threads)."""
        flow_a, flow_b, record, reduced = prepared
        motion = self.motion_at(flow_a, flow_b, record.f01, record.f10, t, record.importance)
        if not reduced:
            return self._fused(a, b, motion, t, record)
        # flow, splatting and the fusion's choice at the reduced size; one warp of each frame at full size
        h, w = a.shape[:2]
        sh, sw = flow_a.shape[:2]
        if self.fuse:
            motion = self._fused(flow_a, flow_b, motion, t, record, choose_motion=True)
        # full-size work goes through this thread's buffers: a fresh array of a large frame costs
        # about as much in page faults as the warp that fills it
        scratch = self._scratch(h, w)
        motion = cv2.resize(motion, (w, h), dst=scratch["motion"], interpolation=cv2.INTER_LINEAR)
        motion *= np.array([w / sw, h / sh], np.float32)
        warped = [
            warp_backward(img, motion, IMAGE_SAMPLING, scale, coords=scratch["coords"], dst=scratch[name])
            for img, scale, name in ((a, -t, "a"), (b, 1 - t, "b"))
        ]
        out = cv2.addWeighted(warped[0], 1 - t, warped[1], t, 0.0)
        return np.clip(out, 0.0, 1.0, out=out)

    def _scratch(self, h: int, w: int) -> dict[str, np.ndarray]:
        """This thread's full-size work buffers (remade when the frame size changes)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch["a"].shape[:2] != (h, w):
            two, three = np.empty((h, w, 2), np.float32), np.empty((h, w, 3), np.float32)
            scratch = self._local.scratch = {
                "motion": two,
                "coords": np.empty_like(two),
                "a": three,
                "b": np.empty_like(three),
            }
        return scratch

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """The frame at time t (0 < t < 1) between frames ``a`` and ``b``."""
        return self._at(a, b, self._prepared(a, b), t)

    def many(self, requests, threads: int = 1) -> list[np.ndarray]:
        """Each pair is prepared once (flow, splat weights), then its times are made; with ``threads`` > 1
        the pairs are prepared and the times made on that many threads (the frames do not depend on it)."""
        out: list = [a if t == 0 else b if t == 1 else None for a, b, t in check_requests(requests)]
        pairs: dict[tuple[int, int], list[int]] = {}
        for i, (a, b, _) in enumerate(requests):
            if out[i] is None:
                pairs.setdefault((id(a), id(b)), []).append(i)
        if threads <= 1 or len(requests) <= 1:
            for indices in pairs.values():
                a, b, _ = requests[indices[0]]
                prepared = self._prepared(a, b)
                for i in indices:
                    out[i] = self._at(a, b, prepared, requests[i][2])
            return out
        with ThreadPoolExecutor(threads) as pool:
            preparing = [pool.submit(self._prepared, *requests[indices[0]][:2]) for indices in pairs.values()]
            made = {}
            for indices, prepared in zip(pairs.values(), preparing):
                a, b, _ = requests[indices[0]]
                for i in indices:
                    made[i] = pool.submit(self._at, a, b, prepared.result(), requests[i][2])
            for i, frame in made.items():
                out[i] = frame.result()
        return out

    def _cost(self, warp_a: np.ndarray, warp_b: np.ndarray) -> np.ndarray:
        """How badly two warped frames disagree around each pixel (the fusion's criterion)."""
        return cv2.GaussianBlur(_mean_absdiff(warp_a, warp_b), (0, 0), FUSION_SIGMA * self.scale)

    def _fused(self, a, b, motion, t: float, record: _PairRecord, choose_motion: bool = False) -> np.ndarray:
        """Per pixel, the candidate motion whose two warped frames agree best (see the module docstring).

        ``record`` (the pair's, see ``_prepared``) brings the other candidates; without fusion the
        motion is used as it is. Returns the interpolated frame, or with ``choose_motion`` the chosen
        motion field.
        """

        def blend(warp_a, warp_b):
            return cv2.addWeighted(warp_a, 1 - t, warp_b, t, 0.0)

        sampling = CHOICE_SAMPLING if choose_motion else IMAGE_SAMPLING
        warp_a = warp_backward(a, motion, sampling, -t)
        warp_b = warp_backward(b, motion, sampling, 1 - t)
        if not self.fuse:
            out = blend(warp_a, warp_b)
            return np.clip(out, 0.0, 1.0, out=out)
        f01, f10, zero_cost = record.f01, record.f10, record.zero_cost
        best = motion.copy() if choose_motion else blend(warp_a, warp_b)
        best_cost = self._cost(warp_a, warp_b)
        # the other candidates, in order: zero motion, F01 and -F10 read at the pixel itself
        others = [(None, 0.0), (f01, 1.0), (f10, -1.0)]
        for m, sign in others:
            if m is None:
                cost, out = zero_cost, (0.0 if choose_motion else blend(a, b))
            else:
                warp_a = warp_backward(a, m, sampling, -sign * t)
                warp_b = warp_backward(b, m, sampling, sign * (1 - t))
                cost = self._cost(warp_a, warp_b)
                out = (m if sign > 0 else np.negative(m)) if choose_motion else blend(warp_a, warp_b)
            better = cost < best_cost  # ties keep the earlier candidate
            np.copyto(best_cost, cost, where=better)
            np.copyto(best, out, where=better[..., None])
        return best if choose_motion else np.clip(best, 0.0, 1.0, out=best)


register("flow", lambda **kw: FlowInterpolator(**kw))
