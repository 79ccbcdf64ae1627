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
   failures on thin or fast objects and flow noise on static texture.

Measured on Middlebury "other" (rb2v bench interpolation): per-pixel visibility weights
from the consistency masks (``(1-t)*vis_a``, ``t*vis_b``) lowered the mean PSNR by
0.12 dB (the masks are noisy on real footage), so consistency is used where it is
reliable: deciding who wins when splatted pixels collide.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict

import cv2
import numpy as np

from ..errors import Rb2vError
from .base import Interpolator, register

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
VARIATIONAL_ITERS = 2


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


def _grey8(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False  # shared between calls
    return xs, ys


_THIRD = np.full((1, 3), 1 / 3, np.float32)


def _mean_absdiff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over the channels of |x - y|, (H,W) float32 (OpenCV: several times faster than numpy's mean(-1))."""
    return cv2.transform(cv2.absdiff(x, y), _THIRD)


def warp_backward(img: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``img`` sampled at ``x + flow(x)`` (bilinear unless told, border replicated)."""
    xs, ys = _grid(*flow.shape[:2])
    return cv2.remap(img, xs + flow[..., 0], ys + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistency(f01: np.ndarray, f10: np.ndarray) -> np.ndarray:
    """1 where a pixel of frame 0 comes back home through F01 then F10, 0 where it does not."""
    back = warp_backward(f10, f01)
    d = f01 + back
    err = np.einsum("ijk,ijk->ij", d, d)
    bound = FB_REL * (np.einsum("ijk,ijk->ij", f01, f01) + np.einsum("ijk,ijk->ij", back, back)) + FB_ABS
    return (err < bound).astype(np.float32)


def splat(
    values: np.ndarray, weights: np.ndarray, dest_x: np.ndarray, dest_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear forward splatting: sum of ``weights * values`` and of ``weights`` per target pixel."""
    h, w = weights.shape
    x0, y0 = np.floor(dest_x), np.floor(dest_y)
    fx, fy = dest_x - x0, dest_y - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    nch = values.shape[-1]
    acc = np.zeros((h * w, nch), np.float64)
    wsum = np.zeros(h * w, np.float64)
    for dx, dy, bw in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        idx = (yi * w + xi)[ok]
        wt = (bw * weights)[ok]
        wsum += np.bincount(idx, wt, minlength=h * w)
        for c in range(nch):
            acc[:, c] += np.bincount(idx, wt * values[..., c][ok], minlength=h * w)
    return acc.reshape(h, w, nch), wsum.reshape(h, w)


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
        self._dis = _dis(preset or ("medium" if scale == 1 else "fast"), variational_iters)
        self.fuse = fuse
        self.scale = scale
        # The same pair is often asked for at several t (1/3 and 2/3 for synthetic blur):
        # estimating its flow once saves the costliest step.
        self._flow_cache: OrderedDict = OrderedDict()

    def _batch(self, A: np.ndarray, B: np.ndarray, t: float) -> np.ndarray:
        return np.stack([self.interpolate(a, b, t) for a, b in zip(A, B)])

    def _pair(self, a: np.ndarray, b: np.ndarray) -> list:
        """The cached record of a pair: [F01, F10, splat importance (made when first needed)]."""
        ga, gb = _grey8(a), _grey8(b)
        key = hashlib.blake2b(ga.tobytes() + gb.tobytes(), digest_size=16).digest()
        hit = self._flow_cache.get(key)
        if hit is not None:
            self._flow_cache.move_to_end(key)
            return hit
        record = [self._dis.calc(ga, gb, None), self._dis.calc(gb, ga, None), None]
        self._flow_cache[key] = record
        if len(self._flow_cache) > FLOW_CACHE_PAIRS:
            self._flow_cache.popitem(last=False)
        return record

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F01`` (a->b) and ``F10`` (b->a), (H,W,2) float32 (x, y) displacements."""
        f01, f10, _ = self._pair(a, b)
        return f01, f10

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
        xs, ys = _grid(h, w)
        z0, z1 = importance if importance is not None else self.importance(a, b, f01, f10)
        m0, w0 = splat(f01, z0, xs + t * f01[..., 0], ys + t * f01[..., 1])
        m1, w1 = splat(-f10, z1, xs + (1 - t) * f10[..., 0], ys + (1 - t) * f10[..., 1])
        return push_pull((m0 + m1).astype(np.float32), (w0 + w1).astype(np.float32))

    def _motion(self, a: np.ndarray, b: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """F01, F10 and the motion at t; the pair's flows and splat weights are made once for every t."""
        record = self._pair(a, b)
        f01, f10 = record[0], record[1]
        if record[2] is None:
            record[2] = self.importance(a, b, f01, f10)
        return f01, f10, self.motion_at(a, b, f01, f10, t, record[2])

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
        """The frame at time t (0 < t < 1) between frames ``a`` and ``b``."""
        h, w = a.shape[:2]
        sw, sh = round(w * self.scale), round(h * self.scale)
        if self.scale == 1 or min(sw, sh) < MIN_FLOW_SIZE:
            f01, f10, motion = self._motion(a, b, t)
            return self._fused(a, b, motion, f01, f10, t)
        # flow, splatting and the fusion's choice at the reduced size; one warp of each frame at full size
        small_a = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
        small_b = cv2.resize(b, (sw, sh), interpolation=cv2.INTER_AREA)
        f01, f10, motion = self._motion(small_a, small_b, t)
        if self.fuse:
            motion = self._fused(small_a, small_b, motion, f01, f10, t, choose_motion=True)
        motion = cv2.resize(motion, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / sw, h / sh], np.float32)
        return self._fused(a, b, motion, None, None, t)

    def _fused(self, a, b, motion, f01, f10, t: float, choose_motion: bool = False) -> np.ndarray:
        """Per pixel, the candidate motion whose two warped frames agree best (see the module docstring).

        Returns the interpolated frame, or with ``choose_motion`` the chosen motion field.
        """
        candidates = [motion, np.zeros_like(motion), f01, -f10] if self.fuse and f01 is not None else [motion]
        best_out, best_cost = None, None
        for m in candidates:
            warp_a = warp_backward(a, -t * m, IMAGE_SAMPLING)
            warp_b = warp_backward(b, (1 - t) * m, IMAGE_SAMPLING)
            out = m if choose_motion else (1 - t) * warp_a + t * warp_b
            if best_out is None:
                best_out = out
                if len(candidates) == 1:
                    break
                best_cost = cv2.GaussianBlur(_mean_absdiff(warp_a, warp_b), (0, 0), FUSION_SIGMA * self.scale)
                continue
            cost = cv2.GaussianBlur(_mean_absdiff(warp_a, warp_b), (0, 0), FUSION_SIGMA * self.scale)
            better = cost < best_cost
            best_cost = np.where(better, cost, best_cost)
            best_out = np.where(better[..., None], out, best_out)
        return best_out if choose_motion else np.clip(best_out, 0.0, 1.0).astype(np.float32)


register("flow", lambda **kw: FlowInterpolator(**kw))
