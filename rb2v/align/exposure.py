"""The blur camera's exposure window, estimated from the images instead of assumed.

A real rig never says which instant of its exposure a frame's timestamp ``k / fps`` denotes
(start, centre, end or anything between), how long the exposure is, or how far its rolling
shutter moves the exposure from the top row to the bottom one. Synchronisation by audio or
timecode relates the *timestamps* of the two cameras; this module finds where, relative to its
timestamp, the blur camera actually integrated light, with the synthetic-blur model of
Algorithm 1: for a candidate window, the synthetic blur of the sharp frames that cover it (the
box average of their linear interpolant in time, i.e. Algorithm 1's sub-frame average in the
limit) is warped into the blur view by the homography, fitted to the real blurry frame by a gain
and offset (the grey form of the colour matrix), and scored by PSNR, pooled over the frames used
for the homography and restricted to moving content (static pixels carry no timing). The
window maximising the score is searched on a grid of centres (a quarter of a sharp frame apart)
and exposure lengths, then refined continuously (Nelder-Mead on centre, length and, where the
data prefer it, the rolling-shutter skew). ``rb2v.align.stage`` alternates this with the
homography (whose synthetic blur uses the estimated window) until both settle.

What the images can tell, and what is assumed (stated in ``alignment.json``):
- blur ``start_s`` and ``length_s``: estimated. ``readout_s`` is the rolling-shutter skew of the
  blur camera *relative to the sharp one* (only the difference is visible; with a vertical flip
  the two readouts add): estimated when it improves the fit, else 0.
- sharp: its exposure is short (1/8 of its frame period is assumed) and centred on its
  timestamps, with no readout skew ("assumed"): only the blur window relative to the sharp
  frames is observable, so any sharp-side phase is absorbed by the blur window.
- with visual synchronisation, ``time_offset_s`` is measured on content (exposure centres), not
  on timestamps: there the blur window is estimated relative to that offset, and the timestamp
  phase of the exposure is not observable (no second clock says it).
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
from scipy import optimize

from ..alignment import Exposure
from ..colormatch.blur import box_weights_grouped
from ..colorspace import linear_to_srgb_fast, srgb_to_linear
from ..io.video import VideoSource, decode_pipe
from .decode import chapter_runs
from .geometry import TONE_CURVES, common_mask, flip_matrix
from .sync import SyncResult

WORK_SIDE = 640  # px: longer side of the images the timing is scored on
# blur frame periods either side of the timestamp searched for the exposure centre: the timestamp may
# mark any instant of the exposure (half a period), and audio sync carries any difference between the
# two cameras' sound latencies into this too (0.75 missed a 40 ms one, README)
CENTRE_RANGE = 1.5
CENTRE_STEP = 0.25  # sharp frames between the centres of the coarse grid
LENGTHS = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0)  # coarse exposure lengths, blur frame periods
SKEW_RANGE_S = 0.035  # rolling-shutter skews searched (top to bottom, relative to the sharp camera)
SKEW_MIN_GAIN_DB = 0.02  # a skew is kept only when it improves the pooled PSNR by this much
RIDGE_MIN_GAIN_DB = 0.05  # a joint centre and shift (``along_ridge``) is kept when it fits this much better
MOTION_LEVEL = 3.0  # grey levels: pixels whose sharp frames vary less than this carry no timing
MIN_MOVING_PX = 400  # below this many moving pixels (all pairs) the timing is not estimated
MAX_PIXELS = 20000  # moving pixels kept per blurry frame (a regular subsample beyond)
# dB: a value of the window is determined when moving it (the centre half a sharp frame, the length a quarter
# blur period, either way) costs the fit at least this much. Measured on 22 simulated and outside takes that
# move: 0.25-9.7 dB (centre, within 0.4 ms of the truth where known) and 0.02-6.5 dB (length; 3.6-5.1 ms too
# long below 0.3 dB); boards held still lose 0.004-0.087 and 0.04-0.15 dB, and there the fit put the length
# at its bound (40 ms, true 31.7) and the centre up to 5.1 ms off
MIN_DROP_DB = {"centre": 0.15, "length": 0.3}
_NO_SKEW = np.zeros(1)  # every row's exposure at the window's centre
SHARP_EXPOSURE_FRACTION = 1 / 8  # the sharp camera's exposure, assumed: 1/8 of its period (1/800 s at 100 fps)


@dataclasses.dataclass(frozen=True)
class Window:
    """The blur camera's exposure relative to its timestamps (blur clock, seconds)."""

    centre_s: float  # exposure centre of the middle row minus the timestamp
    length_s: float
    skew_s: float = 0.0  # the exposure's shift from the top row to the bottom one (relative to the sharp camera)

    @property
    def start_s(self) -> float:
        """Start of the top row's exposure minus the timestamp (the contract's ``start_s``)."""
        return self.centre_s - self.length_s / 2 - self.skew_s / 2

    def exposure(self, method: str = "estimated") -> Exposure:
        return Exposure(self.start_s, self.length_s, self.skew_s, method)

    def close_to(self, other: Window | None, tol_s: float = 2.5e-4) -> bool:
        if other is None:
            return False
        return (
            abs(self.centre_s - other.centre_s) <= tol_s
            and abs(self.length_s - other.length_s) <= 4 * tol_s
            and abs(self.skew_s - other.skew_s) <= 4 * tol_s
        )


def sharp_exposure(sharp_fps: float) -> Exposure:
    """What is assumed of the sharp camera: a short exposure centred on its timestamps."""
    return Exposure.centred(SHARP_EXPOSURE_FRACTION / sharp_fps, "assumed")


@dataclasses.dataclass
class TimingData:
    """Blur frames and the raw sharp frames around them, grey, at the working scale."""

    blur_indices: list[int]
    blur: list[np.ndarray]  # float32 (h, w)
    sharp: dict[int, np.ndarray]  # raw sharp frames (see per_frame), uint8 (hs, ws)
    scale: float  # working / full resolution
    blur_fps: float
    sharp_fps: float
    sharp_size: tuple[int, int]  # full resolution (width, height)
    blur_size: tuple[int, int]
    per_frame: int = 1  # entries of ``sharp`` per sharp frame: 2 with midpoints (entry j is frame j / per_frame)

    @property
    def stream_fps(self) -> float:
        """The rate of the entries of ``sharp``."""
        return self.sharp_fps * self.per_frame


def _grey_frames(src: VideoSource, indices, scale: float) -> dict[int, np.ndarray]:
    """Grey uint8 frames at ``indices``, scaled inside ffmpeg (area): contiguous runs are decoded
    as they come, separate runs by seeking (no per-frame select expression)."""
    w, h = max(2, round(src.width * scale)), max(2, round(src.height * scale))
    vf = "format=gray" if scale >= 1.0 else f"scale={w}:{h}:flags=area,format=gray"
    out: dict[int, np.ndarray] = {}
    for info, offset, runs in chapter_runs(src, indices):
        for run in runs:
            n = run[-1] - run[0] + 1
            frames = np.concatenate(list(decode_pipe(info, run[0], n, 32, vf=vf, size=(w, h), channels=1)))
            keep = set(run)
            for j, frame in enumerate(frames):
                if run[0] + j in keep:
                    out[offset + run[0] + j] = frame
    return out


def with_midpoints(data: TimingData) -> TimingData:
    """The timing data with a frame halfway between each two consecutive sharp frames, moved along their
    optical flow: the sharp stream at twice its rate. The model's synthetic blur blends consecutive frames
    linearly, a double image where the picture moves several pixels a frame, which the fit took for a
    shorter exposure (a 12 ms one under a walking rig's pan of up to 5.8 px a sharp frame was found as
    8.2 ms; with the midpoints and the light averaged, 11.1 ms)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    grid = None
    frames: dict[int, np.ndarray] = {}
    small: dict[int, np.ndarray] = {}  # flow at half size: a smooth motion needs no finer field
    for i in sorted(data.sharp):
        a = frames[2 * i] = data.sharp[i]
        b = data.sharp.get(i + 1)
        if b is None:
            continue
        h, w = a.shape
        for j in (i, i + 1):
            if j not in small:
                small[j] = cv2.resize(data.sharp[j], (max(w // 2, 16), max(h // 2, 16)), interpolation=cv2.INTER_AREA)
        flow = dis.calc(small[i], small[i + 1], None)
        small.pop(i)
        # a(x) ~ b(x + flow(x)): the midpoint sees a(x - flow / 2) and b(x + flow / 2) (the field upsampled
        # and its displacements scaled to the full size)
        half = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        half *= np.float32(0.5 * w / flow.shape[1])
        if grid is None:
            grid = np.ascontiguousarray(np.mgrid[0:h, 0:w][::-1].transpose(1, 2, 0), np.float32)
            where = np.empty_like(grid)  # one buffer for both maps
        back = cv2.remap(a, np.subtract(grid, half, out=where), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ahead = cv2.remap(b, np.add(grid, half, out=where), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frames[2 * i + 1] = cv2.addWeighted(back, 0.5, ahead, 0.5, 0.0)
    return dataclasses.replace(data, sharp=frames, per_frame=2 * data.per_frame)


def leaving_out(data: TimingData, frames) -> TimingData:
    """The timing data without the blur frames ``frames`` (indices)."""
    keep = [i for i, k in enumerate(data.blur_indices) if k not in frames]
    return dataclasses.replace(
        data, blur_indices=[data.blur_indices[i] for i in keep], blur=[data.blur[i] for i in keep]
    )


def load_timing_data(sync: SyncResult, blur: VideoSource, sharp: VideoSource, blur_indices: list[int]) -> TimingData:
    """Decode the blur frames and every sharp frame a candidate window of theirs can reach."""
    fb, fs = float(blur.fps), float(sharp.fps)
    scale = min(1.0, WORK_SIDE / max(blur.width, blur.height, sharp.width, sharp.height))
    reach = fs * ((CENTRE_RANGE + 0.5) / fb + SKEW_RANGE_S / 2) + 2
    wanted: set[int] = set()
    inside = []
    for k in blur_indices:  # only frames every candidate window of which lies inside the sharp stream
        c = fs * float(sync.sharp_time(k / fb))
        if c - reach >= 0 and c + reach <= sharp.frames - 1:
            inside.append(k)
            wanted.update(range(int(np.floor(c - reach)), int(np.ceil(c + reach)) + 1))
    blur_indices = inside
    frames = _grey_frames(sharp, wanted, scale)
    blurs = {i: f.astype(np.float32) for i, f in _grey_frames(blur, blur_indices, scale).items()}
    ks = [k for k in blur_indices if k in blurs]
    return TimingData(
        ks, [blurs[k] for k in ks], frames, scale, fb, fs, (sharp.width, sharp.height), (blur.width, blur.height)
    )


def _decoded(recorded: np.ndarray) -> np.ndarray:
    """sRGB-encoded values (0..255) as linear light (0..1), float64 (decoded in float32, the fast path)."""
    return srgb_to_linear((recorded * (1 / 255.0)).astype(np.float32)).astype(np.float64)


def _gradients(frames: list[np.ndarray], idx: np.ndarray, tones) -> dict:
    """Per tone, the x and y derivatives (central differences) of each frame at ``idx``: (frames, n) each."""
    out = {}
    for tone in tones:
        dxs, dys = [], []
        for f in frames:
            g = srgb_to_linear(np.clip(f, 0, 255) * np.float32(1 / 255.0)) if tone == "srgb" else f
            dxs.append(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=1).reshape(-1)[idx] * 0.5)
            dys.append(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=1).reshape(-1)[idx] * 0.5)
        out[tone] = (np.stack(dxs).astype(np.float64), np.stack(dys).astype(np.float64))
    return out


class TimingModel:
    """Scores exposure windows against the real blurry frames under one homography.

    The sharp frames are warped into the blur view once; per pair only its moving pixels (at most
    ``MAX_PIXELS`` of them, on a regular subsample) are kept, as one row of values per sharp frame,
    so a candidate window costs a weighted sum of a few short vectors per pair.
    """

    def __init__(
        self,
        data: TimingData,
        sync: SyncResult,
        homography: np.ndarray,
        flip: str,
        blur_box,
        sharp_box,
        tones: tuple[str, ...] = TONE_CURVES,
        gradients: bool = False,
    ):
        self.data, self.sync = data, sync
        self.tones, self.tone = tones, tones[0]  # the curve ``score`` averages light under (see ``synth``)
        s = data.scale
        to_small = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])  # pixel centres
        sw, sh = data.sharp_size
        # raw sharp (small) -> blur (small): undo the scaling, flip, H, scale again
        M = to_small @ homography @ flip_matrix(flip, sw, sh) @ np.linalg.inv(to_small)
        h, w = data.blur[0].shape
        full_mask = common_mask(
            homography, (data.blur_size[1], data.blur_size[0]), blur_box, sharp_box, (sh, sw), erode=6
        )
        valid = cv2.resize(full_mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
        # bicubic: bilinear resampling softens the synthetic blur, and the fit took that softness for a
        # shorter exposure (simulated face take: 17.1 ms found as 5.7 ms, bicubic 13.8 ms)
        warped = {
            i: cv2.warpPerspective(f.astype(np.float32), M, (w, h), flags=cv2.INTER_CUBIC)
            for i, f in data.sharp.items()
        }
        row_fraction = np.arange(h, dtype=np.float64) / max(h - 1, 1)
        # (k, first sharp index, {tone: values (frames, n)}, blur values (n,), rows (unique), inverse, pixels
        # per row: ``idx`` increases, so each row's pixels are consecutive)
        self.pairs = []
        self.gradients = []  # per pair {tone: (d/dx, d/dy) (frames, n)} when ``gradients``
        self.moving_px = 0
        for k, blur in zip(data.blur_indices, data.blur):
            span = self._span(k, warped)
            if len(span) < 2:
                continue
            frames = [warped[i] for i in span]  # the extremes pairwise: no stack of whole frames
            moving = (functools.reduce(np.maximum, frames) - functools.reduce(np.minimum, frames)) > MOTION_LEVEL
            moving = (cv2.dilate(moving.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & valid
            idx = np.flatnonzero(moving)
            if len(idx) > MAX_PIXELS:
                idx = idx[:: -(-len(idx) // MAX_PIXELS)]
            if len(idx) == 0:
                continue
            self.moving_px += len(idx)
            rows, inverse, per_row = np.unique(idx // w, return_inverse=True, return_counts=True)
            recorded = np.stack([f.reshape(-1)[idx] for f in frames]).astype(np.float64)
            values = {t: _decoded(recorded) if t == "srgb" else recorded for t in tones}
            self.pairs.append(
                (k, span[0], values, blur.reshape(-1)[idx].astype(np.float64), row_fraction[rows], inverse, per_row)
            )
            if gradients:
                self.gradients.append(_gradients(frames, idx, tones))
        self.real = [_centred(pair[3]) for pair in self.pairs]  # the blurry frames' values, for ``_pooled_psnr``
        self.evaluations = 0

    def _span(self, k: int, warped: dict) -> list[int]:
        d = self.data
        c = d.stream_fps * float(self.sync.sharp_time(k / d.blur_fps))
        reach = d.stream_fps * ((CENTRE_RANGE + 0.5) / d.blur_fps + SKEW_RANGE_S / 2) + 1
        span = list(range(int(np.floor(c - reach)), int(np.ceil(c + reach)) + 1))
        return span if all(i in warped for i in span) else []

    def synth(self, pair, weights) -> np.ndarray | None:
        """The synthetic blur of a pair at its kept pixels, in recorded values, under its window's ``weights``
        (``_weights``): the sharp frames' light averaged under ``self.tone`` (the sRGB curve decoded and the
        average encoded again; identity: the recorded values averaged), as the sensor averages light over its
        exposure."""
        out = self._average(pair, weights, pair[2][self.tone])
        if out is None:
            return None
        return linear_to_srgb_fast(out.astype(np.float32)).astype(np.float64) * 255.0 if self.tone == "srgb" else out

    def _weights(self, window: Window) -> list[tuple[int, np.ndarray]]:
        """Per pair, the window's weights of its frames (``box_weights_rows``, for every pair at once): (the
        first frame's entry in the pair's values, weights (frames, 1 or one per row of the pair's pixels))."""
        if not self.pairs:
            return []
        d = self.data
        offsets = [(pair[4] - 0.5) * window.skew_s if window.skew_s else _NO_SKEW for pair in self.pairs]
        t = np.concatenate([pair[0] / d.blur_fps + window.centre_s + o for pair, o in zip(self.pairs, offsets)])
        centres = d.stream_fps * np.asarray(self.sync.sharp_time(t), np.float64)
        starts = np.cumsum([0] + [len(o) for o in offsets[:-1]])
        first, w = box_weights_grouped(centres, d.stream_fps * window.length_s, starts)
        out = []
        for pair, f, s, o in zip(self.pairs, first, starts, offsets):
            pw = w[:, s : s + len(o)]
            used = np.flatnonzero(pw.max(axis=1) > 1e-9)  # a run: the box covers the frames between
            out.append((int(f) + int(used[0]) - pair[1], pw[used[0] : used[-1] + 1]))
        return out

    @staticmethod
    def _average(pair, weights, values: np.ndarray) -> np.ndarray | None:
        """The window's weighted sum of a pair's per-sharp-frame ``values`` (frames, n); None past the frames.
        (einsum adds the frames in order, as the loop does, without BLAS's threads.)"""
        j, w = weights
        if j < 0 or j + len(w) > len(values):
            return None  # the window reaches past the decoded frames
        if w.shape[1] == 1:
            return np.einsum("f,fn->n", w[:, 0], values[j : j + len(w)])
        return np.einsum("fn,fn->n", np.repeat(w, pair[6], axis=1), values[j : j + len(w)])  # a weight per row

    def score_shifted(self, window: Window) -> tuple[float, np.ndarray]:
        """``score`` with the sharp view moved by the one shift and shear that fit best, to first order, and
        those: (x, y shift, x, y shear from the top row to the bottom one), px at the working scale. Where
        the pictures move as one (a pan), a time offset and a shift of the view trade against each other,
        and a rolling-shutter skew and a shear; the best window under a fixed homography lies on that ridge,
        not at its top."""
        parts = []
        for pair, real, grads, weights in zip(self.pairs, self.real, self.gradients, self._weights(window)):
            s = self._average(pair, weights, pair[2][self.tone])
            if s is None:
                return -np.inf, np.zeros(4)
            gx, gy = (self._average(pair, weights, g) for g in grads[self.tone])
            if self.tone == "srgb":
                lin = s.astype(np.float32)
                enc = linear_to_srgb_fast(lin).astype(np.float64) * 255.0
                slope = (linear_to_srgb_fast(lin + 1e-3).astype(np.float64) * 255.0 - enc) / 1e-3
                s, gx, gy = enc, gx * slope, gy * slope
            down = pair[4][pair[5]] - 0.5  # each pixel's row, -0.5 (top) .. 0.5 (bottom)
            parts.append((s, np.stack([gx, gy, gx * down, gy * down]), pair[3], real))
        if not parts:
            return -np.inf, np.zeros(4)
        shift = np.zeros(4)
        for _ in range(3):  # gain/offset per pair, then the shared shift and shear
            normal, rhs = np.zeros((4, 4)), np.zeros(4)
            for s, grads, y, (dy, _) in parts:
                x = s + shift @ grads
                dx = x - x.mean()
                gain = float(np.sum(dx * dy) / max(float(np.sum(dx * dx)), 1e-9))
                offset = float(y.mean() - gain * x.mean())
                G = grads * gain
                normal += G @ G.T
                rhs += G @ (y - offset - gain * s)
            shift = np.linalg.solve(normal + 1e-6 * np.eye(4), rhs)
        if np.abs(shift).max() > 3.0:  # beyond what the first order carries
            return -np.inf, shift
        return _pooled_psnr((s + shift @ grads, real) for s, grads, _, real in parts), shift

    def score(self, window: Window) -> float:
        """Pooled PSNR (dB, 8-bit peak) over the moving pixels of every pair, each pair's synthetic
        blur fitted to its blurry frame by a gain and offset."""
        self.evaluations += 1
        return _pooled_psnr((self.synth(p, w), r) for p, r, w in zip(self.pairs, self.real, self._weights(window)))


def _centred(y: np.ndarray) -> tuple[np.ndarray, float]:
    """Real values as ``_pooled_psnr`` takes them: less their mean, and their sum of squares."""
    dy = y - y.mean()
    return dy, float(np.sum(dy * dy))


def _pooled_psnr(fits) -> float:
    """PSNR (dB, 8-bit peak) pooled over (synthetic values, real ones as ``_centred``) pairs, each synthetic fitted
    to its real one by a gain and offset; -inf where one synthetic is None (its window reaches past the frames)
    or none is given."""
    sse, n = 0.0, 0
    for x, (dy, syy) in fits:
        if x is None:
            return -np.inf
        dx = x - x.mean()
        # plain sums, not BLAS dots: those spin threads per call (slow on a busy machine)
        sxx, sxy = float(np.sum(dx * dx)), float(np.sum(dx * dy))
        sse += syy - (sxy * sxy / sxx if sxx > 1e-9 else 0.0)
        n += len(x)
    if n == 0:
        return -np.inf
    return float(10 * np.log10(255.0**2 / max(sse / n, 1e-12)))


RIDGE_STEPS = 8  # profiled-shift refinements at most
RIDGE_REACH_MS = 15.0  # the centre is searched this far either side of the previous one, each step


def _moved(H: np.ndarray, shift: np.ndarray, scale: float, height: int) -> np.ndarray:
    """H followed by the blur view moved back by ``shift`` (``TimingModel.score_shifted``'s, working scale
    ``scale``, ``height`` rows): its synthetic blur then needs no shift."""
    tx, ty, kx, ky = (float(v) for v in shift)
    per_row = scale / max(height - 1, 1)  # shear per full-resolution row
    T = np.array(
        [[1, -kx * per_row, -(tx - kx / 2) / scale], [0, 1 - ky * per_row, -(ty - ky / 2) / scale], [0, 0, 1.0]]
    )
    H = T @ H
    return H / H[2, 2]


def along_ridge(make_model, window: Window, homography: np.ndarray, scale: float) -> tuple[Window, dict]:
    """The window's centre and skew fitted together with the homography's shift and shear, where the rounds
    that alternate them creep: where the pictures move as one (a pan), a time offset and a shift of the view
    trade against each other, and a rolling-shutter skew and a shear, so each round moves the window a few ms
    along that ridge. Each step searches centre and skew with the view's shift and shear profiled out
    (``TimingModel.score_shifted``), then moves the homography by those found at the best window. Returns the
    window and what it did (the input window where that does not fit better); the caller refits the
    homography under it."""
    H = homography.copy()
    model = make_model(H)
    height = model.data.blur[0].shape[0]
    before = model.score(window)
    best, steps = window, []
    for _ in range(RIDGE_STEPS):

        def cost(p, m=model, w=best) -> float:
            if abs(p[1]) > SKEW_RANGE_S * 1e3 or abs(p[0] - w.centre_s * 1e3) > RIDGE_REACH_MS:
                return 1e3
            psnr = m.score_shifted(dataclasses.replace(w, centre_s=p[0] * 1e-3, skew_s=p[1] * 1e-3))[0]
            return -psnr if np.isfinite(psnr) else 1e3  # past the frames, or beyond the first order

        x0 = [best.centre_s * 1e3, best.skew_s * 1e3]
        res = optimize.minimize(
            cost,
            x0,
            method="Nelder-Mead",
            options={"initial_simplex": [x0, [x0[0] + 2.0, x0[1]], [x0[0], x0[1] + 4.0]], "xatol": 0.05, "fatol": 1e-4},
        )
        still = optimize.minimize_scalar(  # no skew, as ``fit_window`` keeps one only where it fits better
            lambda c, f=cost: f([c, 0.0]),
            bounds=(x0[0] - RIDGE_REACH_MS, x0[0] + RIDGE_REACH_MS),
            method="bounded",
            options={"xatol": 0.05},
        )
        if still.fun - res.fun < SKEW_MIN_GAIN_DB:
            res.x = np.array([still.x, 0.0])
        moved = abs(res.x[0] - x0[0]) + abs(res.x[1] - x0[1])
        best = dataclasses.replace(best, centre_s=float(res.x[0]) * 1e-3, skew_s=float(res.x[1]) * 1e-3)
        _, shift = model.score_shifted(best)
        H = _moved(H, shift, scale, height)
        model = make_model(H)
        steps.append(
            {
                "centre_ms": round(float(res.x[0]), 3),
                "skew_ms": round(float(res.x[1]), 3),
                "shift_px": [round(float(v) / scale, 3) for v in shift],
            }
        )
        if np.abs(shift).max() < 0.02 and moved < 0.1:
            break
    after = model.score(best)
    kept = after > before + RIDGE_MIN_GAIN_DB
    details = {"steps": steps, "psnr_before": round(before, 4), "psnr_after": round(after, 4), "kept": kept}
    return (best if kept else window), details


def at_search_edge(window: Window, blur_fps: float, sharp_fps: float) -> bool:
    """Whether the window's centre lies within a grid step of the searched range's end."""
    return abs(window.centre_s) >= CENTRE_RANGE / blur_fps - CENTRE_STEP / sharp_fps


def _refine(model: TimingModel, start: Window, fb: float, with_skew: bool) -> tuple[Window, float]:
    """Nelder-Mead on (centre, length[, skew]) in milliseconds from ``start``, inside the search bounds."""
    period_ms = 1e3 / fb
    lo_c, hi_c = -CENTRE_RANGE * period_ms, CENTRE_RANGE * period_ms

    def window(p) -> Window | None:
        c, L = float(p[0]), float(p[1])
        sk = float(p[2]) if with_skew else 0.0
        if not (lo_c <= c <= hi_c and 0.05 * period_ms <= L <= period_ms and abs(sk) <= SKEW_RANGE_S * 1e3):
            return None
        return Window(c * 1e-3, L * 1e-3, sk * 1e-3)

    def cost(p) -> float:
        w = window(p)
        return 1e3 if w is None else -model.score(w)

    x0 = [start.centre_s * 1e3, start.length_s * 1e3] + ([start.skew_s * 1e3] if with_skew else [])
    steps = [1.0, 3.0] + ([4.0] if with_skew else [])
    simplex = [x0] + [[v + (s if i == j else 0.0) for j, v in enumerate(x0)] for i, s in enumerate(steps)]
    res = optimize.minimize(
        cost, x0, method="Nelder-Mead", options={"initial_simplex": simplex, "xatol": 0.02, "fatol": 1e-4}
    )
    best = window(res.x)
    if best is None or -res.fun < model.score(start):
        return start, model.score(start)
    return best, float(-res.fun)


def fit_window(model: TimingModel, prior: Window | None = None, skew: bool = True) -> tuple[Window | None, dict]:
    """The exposure window that best explains the blurry frames (None when the take shows too little
    motion to tell), and what the search saw. With a ``prior`` (a previous round's answer) only the
    continuous refinement runs, from it. Each of the model's tone curves is fitted and the better kept
    (both predict the same recorded values, so their PSNRs compare)."""
    d = model.data
    details: dict = {"pairs": len(d.blur_indices), "moving_px": model.moving_px}
    if not d.blur_indices:
        details["why_not"] = "no blurry frame whose every candidate window lies inside the sharp stream"
        return None, details
    if model.moving_px < MIN_MOVING_PX:
        details["why_not"] = f"too little motion ({model.moving_px} moving px at the working scale)"
        return None, details
    fits = {}
    for tone in model.tones:
        model.tone = tone
        fits[tone] = _fit(model, prior, skew)
    tone = max(fits, key=lambda t: fits[t][1])
    model.tone = tone
    best, psnr, seen = fits[tone]
    details.update(seen)
    details["tone"] = tone
    details["tone_psnr"] = {t: round(f[1], 4) for t, f in fits.items()}
    details["evaluations"] = model.evaluations
    return best, details


def _fit(model: TimingModel, prior: Window | None, skew: bool) -> tuple[Window, float, dict]:
    """``fit_window`` under the model's current tone curve: (window, pooled PSNR, what the search saw)."""
    d = model.data
    fb, fs = d.blur_fps, d.sharp_fps
    details: dict = {}
    if prior is None:
        step = CENTRE_STEP / fs
        centres = np.arange(-CENTRE_RANGE / fb, CENTRE_RANGE / fb + 1e-12, step)
        L0 = 0.75 / fb
        curve = np.array([model.score(Window(float(c), L0)) for c in centres])
        c0 = float(centres[int(np.argmax(curve))])
        lengths = [L / fb for L in LENGTHS]
        by_length = [model.score(Window(c0, L)) for L in lengths]
        start = Window(c0, lengths[int(np.argmax(by_length))])
        details["grid_centre_ms"] = round(c0 * 1e3, 3)
        details["grid_psnr_spread_db"] = round(float(np.max(curve) - np.min(curve[np.isfinite(curve)])), 3)
    else:
        start = prior
    best, psnr = _refine(model, dataclasses.replace(start, skew_s=0.0), fb, with_skew=False)
    details["psnr_no_skew"] = round(psnr, 4)
    if skew:
        skews = np.linspace(-SKEW_RANGE_S, SKEW_RANGE_S, 15)
        guess = [model.score(dataclasses.replace(best, skew_s=float(s))) for s in skews]
        s0 = float(skews[int(np.argmax(guess))])
        if prior is not None and abs(prior.skew_s) > 0:
            s0 = prior.skew_s if model.score(dataclasses.replace(best, skew_s=prior.skew_s)) > max(guess) else s0
        skewed, psnr_s = _refine(model, dataclasses.replace(best, skew_s=s0), fb, with_skew=True)
        details["psnr_skew"] = round(psnr_s, 4)
        if psnr_s - psnr >= SKEW_MIN_GAIN_DB:
            best, psnr = skewed, psnr_s
    details["psnr"] = round(psnr, 4)
    details.update(_steepness(model, best, psnr))
    return best, psnr, details


def undetermined(fit: dict) -> list[str]:
    """Which of the window's "centre" and "length" the fit (``fit_window``'s details) did not determine
    (``MIN_DROP_DB``)."""
    drops = {name: fit.get(f"{name}_drop_db") for name in MIN_DROP_DB}
    return [name for name, drop in drops.items() if drop is not None and drop < MIN_DROP_DB[name]]


def _steepness(model: TimingModel, best: Window, psnr: float) -> dict:
    """PSNR (dB) the fit loses with its centre half a sharp frame either way, and with its length a quarter
    blur period either way (inside the searched lengths): the least of each (``undetermined``)."""
    fb, fs = model.data.blur_fps, model.data.sharp_fps
    dc, dl = 0.5 / fs, 0.25 / fb
    centres = [dataclasses.replace(best, centre_s=best.centre_s + d) for d in (-dc, dc)]
    lengths = [
        dataclasses.replace(best, length_s=L)
        for L in (best.length_s - dl, best.length_s + dl)
        if 0.05 / fb <= L <= 1.0 / fb + 1e-12
    ]
    return {
        "centre_drop_db": round(psnr - max(model.score(w) for w in centres), 4),
        "length_drop_db": round(psnr - max(model.score(w) for w in lengths), 4) if lengths else None,
    }
