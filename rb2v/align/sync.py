"""Temporal synchronisation of the blur and sharp streams of one take.

Result convention (the alignment contract, ``rb2v.alignment``): ``t_sharp = clock_ratio * t_blur + time_offset_s``,
each stream's time being its own clock (frame k at k / fps, audio sample n at n / rate).

Methods, tried in the rig's ``align.sync_methods`` order:
- timecode: start timecodes of both streams. Only frame-accurate, so when audio or video is
  available it is used as a prior that narrows their search, and they set the final value.
- audio: GCC-PHAT cross-correlation of the two cameras' sound (sub-sample peak); drift from
  the lag measured in windows spread over the take.
- visual: a blurry frame is the exposure average of about four sharp frames, so per-frame grid
  signals of the blur stream are matched against the box-filtered sharp signals; a coarse
  search over whole sharp frames, then a continuous fit of offset (and drift).
"""

from __future__ import annotations

import dataclasses
import subprocess

import cv2
import numpy as np
from scipy import optimize, signal

from .. import ffmpeg
from ..colorspace import srgb_to_linear
from ..errors import Rb2vError
from ..io.video import VideoSource, read_audio, read_frames

AUDIO_RATE = 16000
THUMB_WIDTH = 40  # visual signals: luma thumbnails this wide (16x16 px cells at 640 px)
COARSE_SECONDS = 8.0
MIN_AUDIO_PSR = 8.0  # GCC-PHAT peak-to-sidelobe ratio below which audio is not trusted
MIN_VISUAL_CORR = 0.5
MIN_VISUAL_FRAMES = 8  # blurry frames inside the sharp stream that a visual match needs at least
FLIPS = ("none", "horizontal", "vertical")
CONFIDENCE_SCALE = 0.2  # correlation lead over the next offset that gives full confidence
# A visual sync whose best offset beats the next peak (over two blur frames away) by less than this share of
# CONFIDENCE_SCALE is ambiguous: on rb2v's simulator a waving hand's repeating motion gave 0.30-0.31 (0.55 s
# off), right syncs 0.88-0.99. Its rivals (peaks within CONFIDENCE_SCALE of the best, at most MAX_RIVALS)
# are kept for align to settle per pixel (``stage``), whose confidence is ``settled_confidence``.
AMBIGUOUS_CONFIDENCE = 0.5
MAX_RIVALS = 3


class Unsynchronised(Rb2vError):
    """No sync method found a trustworthy offset."""


@dataclasses.dataclass(frozen=True)
class SyncResult:
    time_offset_s: float
    clock_ratio: float
    method: str
    confidence: float  # 0..1
    prior: str | None = None  # "timecode" when a timecode prior narrowed the search
    flip_hint: str | None = None  # visual sync's best flip (by signal correlation)
    details: dict = dataclasses.field(default_factory=dict)
    thumbs: tuple | None = dataclasses.field(default=None, repr=False)  # visual: (blur, sharp) thumbnails

    def sharp_time(self, t_blur: float | np.ndarray) -> float | np.ndarray:
        return self.clock_ratio * t_blur + self.time_offset_s


# ---------------------------------------------------------------- audio
def gcc_phat(ref: np.ndarray, sig: np.ndarray, max_lag: int, interp: int = 8) -> tuple[float, float]:
    """Lag L (samples, fractional) with ``sig[n] ≈ ref[n - L]``, and the peak-to-sidelobe ratio.

    ``max_lag`` bounds |L|. The phase transform whitens the spectrum so the peak is sharp
    whatever the sound's colour; the cross-spectrum is zero-padded ``interp`` times and the
    peak refined by a parabola for sub-sample precision.
    """
    # Tapered ends: a track's abrupt start and end are broadband steps that whitening would
    # turn into a false peak (at the lag where the two tracks' ends line up).
    ref = ref * signal.windows.tukey(len(ref), 0.1)
    sig = sig * signal.windows.tukey(len(sig), 0.1)
    n = len(ref) + len(sig)
    nfft = 1 << int(np.ceil(np.log2(n)))
    cross = np.fft.rfft(sig, nfft) * np.conj(np.fft.rfft(ref, nfft))
    cross /= np.abs(cross) + 1e-12
    cc = np.fft.irfft(cross, nfft * interp)
    max_lag = min(int(max_lag), nfft // 2 - 1) * interp
    window = np.concatenate([cc[-max_lag:], cc[: max_lag + 1]])  # lags -max_lag .. +max_lag
    i = int(np.argmax(window))
    peak = window[i]
    frac = 0.0
    if 0 < i < len(window) - 1:
        a, b, c = window[i - 1], window[i], window[i + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom < 0 else 0.0
    lag = (i - max_lag + frac) / interp
    side = np.concatenate([window[: max(0, i - 4 * interp)], window[i + 4 * interp + 1 :]])
    psr = float((peak - side.mean()) / (side.std() + 1e-12)) if side.size > 8 else 0.0
    return float(lag), psr


def _fit_drift(times: np.ndarray, offsets: np.ndarray) -> tuple[float, float]:
    """Least-squares (time_offset_s, clock_ratio) from local offsets d(t) = t_sharp - t_blur."""
    slope, intercept = np.polyfit(times, offsets, 1)
    return float(intercept), float(1.0 + slope)


def audio_sync(
    blur: VideoSource,
    sharp: VideoSource,
    *,
    max_offset_s: float,
    drift_min_s: float,
    prior: float | None = None,
    prior_window_s: float = 0.1,
) -> SyncResult | None:
    """GCC-PHAT offset (and drift) from the two cameras' audio, or None when it is not trustworthy."""
    if not (blur.has_audio and sharp.has_audio):
        return None
    b, rate = read_audio(blur, rate=AUDIO_RATE)
    s, _ = read_audio(sharp, rate=AUDIO_RATE)
    if min(len(b), len(s)) < rate // 2 or b.std() < 1e-5 or s.std() < 1e-5:
        return None
    # Coarse lag from a stretch of the blur track short enough that clock drift does not smear
    # the peak (50 ppm over a 10-minute take would be 30 ms), against the sharp track.
    seg = min(len(b), int(COARSE_SECONDS * rate))
    lo = (len(b) - seg) // 2
    centre, search = (0.0, max_offset_s) if prior is None else (prior, prior_window_s)
    s_lo = max(0, lo + int(round((centre - search) * rate)))
    s_hi = min(len(s), lo + seg + int(round((centre + search) * rate)))
    if s_hi - s_lo < rate // 4:
        return None
    lag, psr = gcc_phat(b[lo : lo + seg], s[s_lo:s_hi], int(search * rate) + (s_hi - s_lo))
    lag += s_lo - lo
    if psr < MIN_AUDIO_PSR:
        return None
    offset, ratio = lag / rate, 1.0
    duration = min(len(b), len(s)) / rate
    windows = []
    if duration >= drift_min_s:
        offset, ratio, windows = _audio_drift(b, s, rate, offset, duration)
    return SyncResult(
        offset,
        ratio,
        "audio",
        float(np.clip((psr - 5) / 20, 0, 1)),
        prior="timecode" if prior is not None else None,
        details={"psr": psr, "drift_windows": len(windows)},
    )


def _audio_drift(b: np.ndarray, s: np.ndarray, rate: int, offset: float, duration: float) -> tuple[float, float, list]:
    """Local GCC-PHAT lags in windows spread over the take, fitted by a line."""
    win = min(4.0, duration / 4)
    margin = 0.01 + 2e-4 * duration  # clock drift of GoPros is tens of ppm
    times, local = [], []
    for centre in np.linspace(win / 2, duration - win / 2, 8):
        lo = int((centre - win / 2) * rate)
        seg_b = b[lo : lo + int(win * rate)]
        s_lo = lo + int(round(offset * rate))
        if s_lo < 0 or s_lo + len(seg_b) > len(s):
            continue
        lag, psr = gcc_phat(seg_b, s[s_lo : s_lo + len(seg_b)], int(margin * rate))
        if psr >= MIN_AUDIO_PSR:
            times.append(centre)
            local.append((s_lo - lo + lag) / rate)
    if len(times) < 3:
        return offset, 1.0, []
    o, r = _fit_drift(np.array(times), np.array(local))
    return o, r, times


# ---------------------------------------------------------------- visual
def thumbnail_matrix(width: int, height: int, tw: int, th: int) -> np.ndarray:
    """Full-frame pixel coordinates -> the cell coordinates of its ``tw`` x ``th`` thumbnail (pixel centres)."""
    sx, sy = tw / width, th / height
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def thumbnails(src: VideoSource, width: int = THUMB_WIDTH) -> np.ndarray:
    """``(frames, th, tw)`` float32 luma thumbnails (area-averaged by ffmpeg, 16-bit), so no
    full-size frame reaches Python; small enough to keep for a whole long take."""
    th = max(2, round(width * src.height / src.width))
    out = []
    for info in src.chapters:
        proc = ffmpeg.popen(
            [
                "-v",
                "error",
                "-i",
                str(info.path),
                "-map",
                "0:v:0",
                *ffmpeg.passthrough_args(),
                "-vf",
                f"scale={width}:{th}:flags=area",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray16le",
                "-",
            ],
            stdout=subprocess.PIPE,
        )
        frame_bytes = width * th * 2
        got = 0
        try:
            while True:
                buf = proc.stdout.read(frame_bytes * 256)
                n = len(buf) // frame_bytes
                if n == 0:
                    break
                frames = np.frombuffer(buf[: n * frame_bytes], "<u2").reshape(n, th, width)
                out.append(frames.astype(np.float32) / 257.0)
                got += n
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            proc.wait()
        if got < info.frames:
            why = ffmpeg.not_the_input(err, proc.returncode) or ffmpeg.last_error_line(err)
            raise Rb2vError(f"{info.path}: decoded {got} of {info.frames} frames ({why})")
    return np.concatenate(out)[: src.frames]


def _flip_frames(frames: np.ndarray, flip: str) -> np.ndarray:
    if flip == "horizontal":
        return frames[:, :, ::-1]
    if flip == "vertical":
        return frames[:, ::-1, :]
    return frames


def _coarse_grid(thumbs: np.ndarray, block: int = 4) -> np.ndarray:
    """Block means of the thumbnails without the outer ring of blocks (the rig's borders)."""
    n, h, w = thumbs.shape
    gh, gw = h // block, w // block
    g = thumbs[:, : gh * block, : gw * block].reshape(n, gh, block, gw, block).mean(axis=(2, 4))
    return g[:, 1:-1, 1:-1] if gh > 2 and gw > 2 else g


def _box_integral(sig: np.ndarray) -> np.ndarray:
    """Cumulative integral of the piecewise-linear interpolant of ``sig`` at integer positions."""
    mids = 0.5 * (sig[1:] + sig[:-1])
    return np.concatenate([np.zeros((1,) + sig.shape[1:], sig.dtype), np.cumsum(mids, axis=0)])


def _box_average(sig: np.ndarray, cum: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """Mean of the linear interpolant of ``sig`` over [c - width/2, c + width/2] for each centre
    (``centres`` of any shape; the result has the signal axis appended)."""

    def integral(x):
        i = np.clip(np.floor(x).astype(int), 0, len(sig) - 2)
        f = (x - i)[..., None]
        return cum[i] + sig[i] * f + (sig[i + 1] - sig[i]) * f * f / 2

    return (integral(centres + width / 2) - integral(centres - width / 2)) / width


def _correlation(pred: np.ndarray, obs: np.ndarray) -> float:
    """Pooled correlation of two ``(frames, signals)`` arrays (each signal's mean removed): signals
    that change (moving content) dominate, static ones (a green screen) only add their noise."""
    p = pred - pred.mean(0)
    o = obs - obs.mean(0)
    return float((p * o).sum() / (np.sqrt((p * p).sum() * (o * o).sum()) + 1e-12))


def linear_luma(encoded: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Approximate linear light from 8-bit-scale encoded luma (sRGB curve, clipped to its range): the sensor
    averages radiance over the exposure, so the blur model is a box filter in linear light."""
    return srgb_to_linear(np.asarray(encoded, dtype) / 255.0)


class _VisualModel:
    """Predicts blur signals from sharp signals for a given (offset, ratio)."""

    def __init__(self, blur_sig: np.ndarray, sharp_sig: np.ndarray, blur_fps: float, sharp_fps: float):
        self.b = linear_luma(blur_sig.reshape(len(blur_sig), -1).astype(np.float64))
        self.s = linear_luma(sharp_sig.reshape(len(sharp_sig), -1).astype(np.float64))
        self.cum = _box_integral(self.s)
        self.blur_fps, self.sharp_fps = blur_fps, sharp_fps
        self.width = sharp_fps / blur_fps  # exposure ≈ one blur frame period (symmetric: centre unaffected)
        self.k = np.arange(len(self.b))

    def score(self, offset: float, ratio: float = 1.0) -> float:
        centres = self.sharp_fps * (ratio * self.k / self.blur_fps + offset)
        ok = (centres - self.width / 2 >= 0) & (centres + self.width / 2 <= len(self.s) - 1)
        if ok.sum() < max(MIN_VISUAL_FRAMES, len(self.k) // 4):
            return -1.0
        pred = _box_average(self.s, self.cum, centres[ok], self.width)
        return _correlation(pred, self.b[ok])

    def coarse_scores(self, offsets: np.ndarray) -> np.ndarray:
        """``score(o)`` for many offsets (clock ratio 1) with exposure centres rounded to whole
        sharp frames: a lookup in the once box-filtered signal. Good to one sharp frame, which is
        all the search needs before ``fit``; computed in batches that bound memory."""
        n_s = len(self.s)
        box = _box_average(
            self.s,
            self.cum,
            np.clip(np.arange(n_s, dtype=np.float64), self.width / 2, n_s - 1 - self.width / 2),
            self.width,
        )
        n_k, n_c = self.b.shape
        batch = max(1, int(4e6 // (n_k * n_c)))
        obs, obs2 = self.b, self.b * self.b
        out = []
        for lo in range(0, len(offsets), batch):
            centres = self.sharp_fps * (self.k[None] / self.blur_fps + offsets[lo : lo + batch, None])
            w = ((centres - self.width / 2 >= 0) & (centres + self.width / 2 <= n_s - 1)).astype(np.float64)
            n = w.sum(1)
            pred = box[np.clip(np.rint(centres).astype(int), 0, n_s - 1)] * w[..., None]
            safe = np.maximum(n, 1)[:, None]
            mp, mo = pred.sum(1) / safe, (w @ obs) / safe
            cov = np.einsum("bkc,kc->b", pred, obs) - n * (mp * mo).sum(1)
            var_p = np.einsum("bkc,bkc->b", pred, pred) - n * (mp * mp).sum(1)
            var_o = (w @ obs2).sum(1) - n * (mo * mo).sum(1)
            corr = cov / (np.sqrt(np.clip(var_p * var_o, 0, None)) + 1e-12)
            out.append(np.where(n >= max(MIN_VISUAL_FRAMES, n_k // 4), corr, -1.0))
        return np.concatenate(out)

    def fit(self, offset: float, drift: bool) -> tuple[float, float, float]:
        """Continuous (offset, ratio, correlation) near ``offset`` (within 1.5 sharp frames)."""
        half = 1.5 / self.sharp_fps
        res = optimize.minimize_scalar(
            lambda o: -self.score(o), bounds=(offset - half, offset + half), method="bounded", options={"xatol": 1e-6}
        )
        best = (float(res.x), 1.0, -float(res.fun))
        if drift:
            # parameters in ms and ppm, so one tolerance (0.01) suits both
            o_ms = best[0] * 1e3
            nm = optimize.minimize(
                lambda p: -self.score(p[0] * 1e-3, 1 + p[1] * 1e-6),
                x0=[o_ms, 0.0],
                method="Nelder-Mead",
                options={"xatol": 0.01, "fatol": 1e-7, "initial_simplex": [[o_ms, 0], [o_ms + 2, 0], [o_ms, 200]]},
            )
            if -nm.fun >= best[2] and abs(nm.x[1]) < 1000:
                best = (float(nm.x[0]) * 1e-3, 1 + float(nm.x[1]) * 1e-6, -float(nm.fun))
        return best


def visual_sync(
    blur: VideoSource,
    sharp: VideoSource,
    *,
    max_offset_s: float,
    drift_min_s: float,
    flip: str | None = None,
    prior: float | None = None,
    prior_window_s: float = 0.1,
) -> SyncResult | None:
    """Offset (and drift) by matching blur thumbnails to box-filtered sharp thumbnails.

    This first estimate compares coarse grid cells of the two views as they are (flip tried
    when unknown); ``refine_visual`` redoes the fit per thumbnail pixel once the homography
    is known, which removes the bias of cells that do not see quite the same scene.
    """
    b_thumbs, s_thumbs = thumbnails(blur), thumbnails(sharp)
    fb, fs = float(blur.fps), float(sharp.fps)
    if prior is None:
        offsets = np.arange(-max_offset_s, max_offset_s + 1e-9, 1 / fs)
    else:
        offsets = prior + np.arange(-prior_window_s, prior_window_s + 1e-9, 1 / fs)
    best = None
    for cand in [flip] if flip else FLIPS:
        model = _VisualModel(_coarse_grid(b_thumbs), _coarse_grid(_flip_frames(s_thumbs, cand)), fb, fs)
        scores = model.coarse_scores(offsets)
        i = int(np.argmax(scores))
        if best is None or scores[i] > best[0]:
            best = (scores[i], cand, model, scores, i)
    peak, flip_hint, model, scores, i = best
    if peak < MIN_VISUAL_CORR:
        return None
    gap = 2 * fs / fb
    # the next peak, not the best one's own shoulder: a slow pan's broad peak is no rival (an outside check's
    # street take: 0.996 against 0.920 two blur frames away, no other peak; said to be ambiguous)
    peaks = _rival_peaks(scores, i, gap, -np.inf)
    second = float(scores[peaks[0]]) if peaks else -1.0
    drift = len(b_thumbs) / fb >= drift_min_s
    offset, ratio, corr = model.fit(float(offsets[i]), drift=drift)
    confidence = sync_confidence(corr, second)
    details = {"correlation": corr, "second_peak": second}
    if confidence < AMBIGUOUS_CONFIDENCE:
        rivals = [j for j in peaks if scores[j] >= corr - CONFIDENCE_SCALE]
        details["rivals"] = [
            dict(zip(("offset_s", "clock_ratio", "correlation"), model.fit(float(offsets[j]), drift=drift)))
            for j in rivals
        ]
    return SyncResult(
        offset,
        ratio,
        "visual",
        confidence,
        prior="timecode" if prior is not None else None,
        flip_hint=flip_hint,
        details=details,
        thumbs=(b_thumbs, s_thumbs),
    )


def sync_confidence(corr: float, second: float) -> float:
    """0..1: how well the best offset matched, scaled by how far it beats the best one elsewhere."""
    return float(np.clip(corr, 0, 1) * np.clip((corr - second) / CONFIDENCE_SCALE, 0, 1))


def settled_confidence(best: float, second: float) -> float:
    """0..1 for per-pixel correlations (high, close together): the best offset's correlation times the share
    of the next one's unexplained signal (1 - r) that it explains; under 0.5 where the next leaves less than
    twice as much unexplained."""
    lead = (best - second) / max(1.0 - second, 1e-9)  # = 1 - (1 - best) / (1 - second)
    return float(np.clip(best, 0, 1) * np.clip(lead, 0, 1))


def _rival_peaks(scores: np.ndarray, best: int, gap: float, floor: float) -> list[int]:
    """Indices of the highest peaks of ``scores`` (the largest within ``gap`` either side; at most
    ``MAX_RIVALS``) above ``floor``, each more than ``gap`` from ``best`` and from each other, best first."""
    peaks = signal.argrelextrema(scores, np.greater_equal, order=max(1, int(gap)))[0]
    chosen = [best]
    for j in peaks[np.argsort(-scores[peaks], kind="stable")]:
        if scores[j] < floor or len(chosen) > MAX_RIVALS:
            break
        if all(abs(int(j) - c) > gap for c in chosen):
            chosen.append(int(j))
    return chosen[1:]


def ambiguity_note(result: SyncResult, key: str) -> str | None:
    """What to tell of a visual sync that another offset matched almost as well (None: nothing)."""
    if result.method != "visual" or result.confidence >= AMBIGUOUS_CONFIDENCE or "correlation" not in result.details:
        return None  # (no correlation: pictures not matched at all, a still calibration take)
    d = result.details.get("settled", result.details)  # per pixel, once align has settled it
    return (
        f"{key}: the visual sync is ambiguous: another offset matched almost as well (correlation "
        f"{d.get('correlation', float('nan')):.3f} against {d.get('second_peak', float('nan')):.3f}), as when the "
        "motion repeats; check time_offset_s against the pictures, or record sound on both cameras (--sync audio)"
    )


def refine_visual(
    result: SyncResult,
    sharp_to_blur: np.ndarray,
    mask: np.ndarray,
    blur: VideoSource,
    sharp: VideoSource,
    drift_min_s: float,
) -> SyncResult:
    """Refit a visual sync on per-pixel thumbnail signals with the sharp thumbnails warped into
    the blur view (``sharp_to_blur``: raw sharp -> blur full-frame pixels, flip included);
    ``mask``: blur pixels both cameras see validly."""
    b_thumbs, s_thumbs = result.thumbs
    (bw, bh), (sw, sh) = (blur.width, blur.height), (sharp.width, sharp.height)
    fb, fs = float(blur.fps), float(sharp.fps)
    th, tw = b_thumbs.shape[1:]
    sth, stw = s_thumbs.shape[1:]
    M = thumbnail_matrix(bw, bh, tw, th) @ sharp_to_blur @ np.linalg.inv(thumbnail_matrix(sw, sh, stw, sth))
    warped = np.stack([cv2.warpPerspective(f, M, (tw, th), flags=cv2.INTER_LINEAR) for f in s_thumbs])
    inside = cv2.resize((mask > 0).astype(np.float32), (tw, th), interpolation=cv2.INTER_AREA) > 0.999
    inside &= cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if inside.sum() < 16:
        return result
    model = _VisualModel(b_thumbs[:, inside], warped[:, inside], fb, fs)
    offset, ratio, corr = model.fit(result.time_offset_s, drift=len(b_thumbs) / fb >= drift_min_s)
    details = {
        **result.details,
        "refined_correlation": corr,
        "refined_signals": int(inside.sum()),
        "coarse_offset_s": result.time_offset_s,
    }
    return dataclasses.replace(result, time_offset_s=offset, clock_ratio=ratio, details=details, thumbs=None)


# ---------------------------------------------------------------- still pictures
def picture_motion_px(src: VideoSource, samples: int = 9) -> float:
    """How far the pictures of a stream move over its whole length: the largest shift of a frame corner, along
    x or y, between any two of ``samples`` frames spread over it (affine ECC at half size, in full-size px;
    inf when a pair cannot be registered). A still scene is the same whatever the sync."""
    idx = np.unique(np.linspace(0, src.frames - 1, samples).round().astype(int))
    frames = [cv2.cvtColor(read_frames(src, int(i), 1)[0], cv2.COLOR_RGB2GRAY) for i in idx]
    half = [cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames]
    ref = half[len(half) // 2]
    h, w = ref.shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    stop = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    mapped = []
    for f in half:
        try:
            _, warp = cv2.findTransformECC(ref, f, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, stop, None, 5)
        except cv2.error:  # no texture to register by
            return float("inf")
        mapped.append(warp.astype(np.float64) @ corners)
    spread = max(np.abs(a - b).max() for a in mapped for b in mapped)
    return 2.0 * float(spread)  # half-size px to full size


# ---------------------------------------------------------------- all methods
def timecode_offset(blur: VideoSource, sharp: VideoSource) -> float | None:
    """time_offset_s from the start timecodes (frame-accurate), or None when a stream has none."""
    tb, ts = blur.chapters[0].timecode_s, sharp.chapters[0].timecode_s
    if tb is None or ts is None:
        return None
    # The same instant has t_blur = T - tb and t_sharp = T - ts.
    return tb - ts


def synchronise(
    blur: VideoSource,
    sharp: VideoSource,
    *,
    methods: tuple[str, ...],
    max_offset_s: float,
    drift_min_s: float,
    flip: str | None = None,
) -> SyncResult:
    """Try the methods in order; the first trustworthy result wins."""
    prior = timecode_offset(blur, sharp) if "timecode" in methods else None
    tried = []
    for method in methods:
        if method == "audio":
            result = audio_sync(blur, sharp, max_offset_s=max_offset_s, drift_min_s=drift_min_s, prior=prior)
        elif method == "visual":
            result = visual_sync(
                blur, sharp, max_offset_s=max_offset_s, drift_min_s=drift_min_s, flip=flip, prior=prior
            )
        else:
            continue
        if result is not None:
            return result
        tried.append(method if method != "audio" or (blur.has_audio and sharp.has_audio) else "audio (no track)")
    if prior is not None:
        return SyncResult(prior, 1.0, "timecode", 0.5)
    raise Unsynchronised(f"{blur.path.parent}: cannot synchronise the cameras (tried {', '.join(tried) or 'nothing'})")
