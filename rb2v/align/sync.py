"""Temporal synchronisation of the blur and sharp streams of one take.

Result convention (DESIGN.md, alignment contract): ``t_sharp = clock_ratio * t_blur + time_offset_s``,
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
from typing import Iterator

import numpy as np
from scipy import optimize

from .. import ffmpeg
from ..errors import Rb2vError
from ..io.video import VideoSource, read_audio

AUDIO_RATE = 16000
GRID = 8  # visual signals: GRID x GRID cell means of the luma
MIN_AUDIO_PSR = 8.0  # GCC-PHAT peak-to-sidelobe ratio below which audio is not trusted
MIN_VISUAL_CORR = 0.5
FLIPS = ("none", "horizontal", "vertical")


@dataclasses.dataclass(frozen=True)
class SyncResult:
    time_offset_s: float
    clock_ratio: float
    method: str
    confidence: float  # 0..1
    prior: str | None = None  # "timecode" when a timecode prior narrowed the search
    flip_hint: str | None = None  # visual sync's best flip (by signal correlation)
    details: dict = dataclasses.field(default_factory=dict)

    def sharp_time(self, t_blur: float | np.ndarray) -> float | np.ndarray:
        return self.clock_ratio * t_blur + self.time_offset_s


# ---------------------------------------------------------------- audio
def gcc_phat(ref: np.ndarray, sig: np.ndarray, max_lag: int, interp: int = 8) -> tuple[float, float]:
    """Lag L (samples, fractional) with ``sig[n] ≈ ref[n - L]``, and the peak-to-sidelobe ratio.

    ``max_lag`` bounds |L|. The phase transform whitens the spectrum so the peak is sharp
    whatever the sound's colour; the cross-spectrum is zero-padded ``interp`` times and the
    peak refined by a parabola for sub-sample precision.
    """
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
    side = np.concatenate([window[: max(0, i - 4 * interp)], window[i + 4 * interp + 1:]])
    psr = float((peak - side.mean()) / (side.std() + 1e-12)) if side.size > 8 else 0.0
    return float(lag), psr


def _fit_drift(times: np.ndarray, offsets: np.ndarray) -> tuple[float, float]:
    """Least-squares (time_offset_s, clock_ratio) from local offsets d(t) = t_sharp - t_blur."""
    slope, intercept = np.polyfit(times, offsets, 1)
    return float(intercept), float(1.0 + slope)


def audio_sync(blur: VideoSource, sharp: VideoSource, *, max_offset_s: float, drift_min_s: float,
               prior: float | None = None, prior_window_s: float = 0.1) -> SyncResult | None:
    """GCC-PHAT offset (and drift) from the two cameras' audio, or None when it is not trustworthy."""
    if not (blur.has_audio and sharp.has_audio):
        return None
    b, rate = read_audio(blur, rate=AUDIO_RATE)
    s, _ = read_audio(sharp, rate=AUDIO_RATE)
    if min(len(b), len(s)) < rate // 2 or b.std() < 1e-5 or s.std() < 1e-5:
        return None
    if prior is None:
        lag, psr = gcc_phat(b, s, int(max_offset_s * rate))
    else:  # search only near the timecode prior: shift the sharp track by it first
        shift = int(round(prior * rate))
        s_shift = s[shift:] if shift >= 0 else np.concatenate([np.zeros(-shift, s.dtype), s])
        lag, psr = gcc_phat(b, s_shift, int(prior_window_s * rate))
        lag += shift
    if psr < MIN_AUDIO_PSR:
        return None
    offset, ratio = lag / rate, 1.0
    duration = min(len(b), len(s)) / rate
    windows = []
    if duration >= drift_min_s:
        offset, ratio, windows = _audio_drift(b, s, rate, offset, duration)
    return SyncResult(offset, ratio, "audio", float(np.clip((psr - 5) / 20, 0, 1)),
                      prior="timecode" if prior is not None else None,
                      details={"psr": psr, "drift_windows": len(windows)})


def _audio_drift(b: np.ndarray, s: np.ndarray, rate: int, offset: float, duration: float
                 ) -> tuple[float, float, list]:
    """Local GCC-PHAT lags in windows spread over the take, fitted by a line."""
    win = min(4.0, duration / 4)
    margin = 0.01 + 2e-4 * duration  # clock drift of GoPros is tens of ppm
    times, local = [], []
    for centre in np.linspace(win / 2, duration - win / 2, 8):
        lo = int((centre - win / 2) * rate)
        seg_b = b[lo: lo + int(win * rate)]
        s_lo = lo + int(round(offset * rate))
        if s_lo < 0 or s_lo + len(seg_b) > len(s):
            continue
        lag, psr = gcc_phat(seg_b, s[s_lo: s_lo + len(seg_b)], int(margin * rate))
        if psr >= MIN_AUDIO_PSR:
            times.append(centre)
            local.append((s_lo - lo + lag) / rate)
    if len(times) < 3:
        return offset, 1.0, []
    o, r = _fit_drift(np.array(times), np.array(local))
    return o, r, times


# ---------------------------------------------------------------- visual
def grid_signals(src: VideoSource, grid: int = GRID, inner: float = 0.8) -> np.ndarray:
    """``(frames, grid, grid)`` float32 luma means of a grid over the central ``inner`` part.

    Decoded by ffmpeg at 8x the grid size (area filter), so no full-size frame reaches Python.
    """
    side = grid * 8
    out = []
    for info in src.chapters:
        vf = f"crop=iw*{inner}:ih*{inner},scale={side}:{side}:flags=area"
        proc = ffmpeg.popen(["-v", "error", "-i", str(info.path), "-map", "0:v:0", *ffmpeg.passthrough_args(),
                             "-vf", vf, "-f", "rawvideo", "-pix_fmt", "gray", "-"], stdout=subprocess.PIPE)
        frame_bytes = side * side
        got = 0
        try:
            while True:
                buf = proc.stdout.read(frame_bytes * 256)
                n = len(buf) // frame_bytes
                if n == 0:
                    break
                frames = np.frombuffer(buf[: n * frame_bytes], np.uint8).reshape(n, grid, 8, grid, 8)
                out.append(frames.mean(axis=(2, 4), dtype=np.float32))
                got += n
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            proc.wait()
        if got < info.frames:
            raise Rb2vError(f"{info.path}: decoded {got} of {info.frames} frames ({ffmpeg.last_error_line(err)})")
    return np.concatenate(out)[: src.frames]


def _flip_cells(cells: np.ndarray, flip: str) -> np.ndarray:
    if flip == "horizontal":
        return cells[:, :, ::-1]
    if flip == "vertical":
        return cells[:, ::-1, :]
    return cells


def _box_integral(sig: np.ndarray) -> np.ndarray:
    """Cumulative integral of the piecewise-linear interpolant of ``sig`` at integer positions."""
    mids = 0.5 * (sig[1:] + sig[:-1])
    return np.concatenate([np.zeros((1,) + sig.shape[1:], sig.dtype), np.cumsum(mids, axis=0)])


def _box_average(sig: np.ndarray, cum: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """Mean of the linear interpolant of ``sig`` over [c - width/2, c + width/2] for each centre."""

    def integral(x):
        i = np.clip(np.floor(x).astype(int), 0, len(sig) - 2)
        f = (x - i)[:, None]
        return cum[i] + sig[i] * f + (sig[i + 1] - sig[i]) * f * f / 2

    return (integral(centres + width / 2) - integral(centres - width / 2)) / width


def _correlation(pred: np.ndarray, obs: np.ndarray) -> float:
    """Mean over cells of the Pearson correlation of two ``(frames, cells)`` signals."""
    p = pred - pred.mean(0)
    o = obs - obs.mean(0)
    den = np.sqrt((p * p).sum(0) * (o * o).sum(0)) + 1e-9
    return float(((p * o).sum(0) / den).mean())


class _VisualModel:
    """Predicts blur signals from sharp signals for a given (offset, ratio)."""

    def __init__(self, blur_cells: np.ndarray, sharp_cells: np.ndarray, blur_fps: float, sharp_fps: float):
        self.b = blur_cells.reshape(len(blur_cells), -1).astype(np.float64)
        self.s = sharp_cells.reshape(len(sharp_cells), -1).astype(np.float64)
        self.cum = _box_integral(self.s)
        self.blur_fps, self.sharp_fps = blur_fps, sharp_fps
        self.width = sharp_fps / blur_fps  # exposure ≈ one blur frame period (symmetric: centre unaffected)
        self.k = np.arange(len(self.b))

    def score(self, offset: float, ratio: float = 1.0) -> float:
        centres = self.sharp_fps * (ratio * self.k / self.blur_fps + offset)
        ok = (centres - self.width / 2 >= 0) & (centres + self.width / 2 <= len(self.s) - 1)
        if ok.sum() < max(8, len(self.k) // 4):
            return -1.0
        pred = _box_average(self.s, self.cum, centres[ok], self.width)
        return _correlation(pred, self.b[ok])


def visual_sync(blur: VideoSource, sharp: VideoSource, *, max_offset_s: float, drift_min_s: float,
                flip: str | None = None, prior: float | None = None, prior_window_s: float = 0.1
                ) -> SyncResult | None:
    """Offset (and drift) by matching blur grid signals to box-filtered sharp signals."""
    b_cells = grid_signals(blur)
    s_cells = grid_signals(sharp)
    fb, fs = float(blur.fps), float(sharp.fps)
    if prior is None:
        offsets = np.arange(-max_offset_s, max_offset_s + 1e-9, 1 / fs)
    else:
        offsets = prior + np.arange(-prior_window_s, prior_window_s + 1e-9, 1 / fs)
    best = None
    for cand in ([flip] if flip else FLIPS):
        model = _VisualModel(b_cells, _flip_cells(s_cells, cand), fb, fs)
        scores = np.array([model.score(o) for o in offsets])
        i = int(np.argmax(scores))
        if best is None or scores[i] > best[0]:
            best = (scores[i], cand, model, scores, i)
    peak, flip_hint, model, scores, i = best
    if peak < MIN_VISUAL_CORR:
        return None
    far = np.abs(np.arange(len(scores)) - i) > 2 * fs / fb
    second = float(scores[far].max()) if far.any() else -1.0
    lo, hi = offsets[i] - 1.5 / fs, offsets[i] + 1.5 / fs
    res = optimize.minimize_scalar(lambda o: -model.score(o), bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-6})
    offset, ratio = float(res.x), 1.0
    duration = len(b_cells) / fb
    if duration >= drift_min_s:
        nm = optimize.minimize(lambda p: -model.score(p[0], 1 + p[1] * 1e-6), x0=[offset, 0.0], method="Nelder-Mead",
                               options={"xatol": 1e-7, "fatol": 1e-9, "initial_simplex": [[offset, 0], [offset + 2e-3, 0],
                                                                                          [offset, 200]]})
        if -nm.fun >= -res.fun and abs(nm.x[1]) < 1000:
            offset, ratio = float(nm.x[0]), 1 + float(nm.x[1]) * 1e-6
    corr = model.score(offset, ratio)
    confidence = float(np.clip(corr, 0, 1) * np.clip((corr - second) / 0.2, 0, 1))
    return SyncResult(offset, ratio, "visual", confidence, prior="timecode" if prior is not None else None,
                      flip_hint=flip_hint, details={"correlation": corr, "second_peak": second})


# ---------------------------------------------------------------- all methods
def timecode_offset(blur: VideoSource, sharp: VideoSource) -> float | None:
    """time_offset_s from the start timecodes (frame-accurate), or None when a stream has none."""
    tb, ts = blur.chapters[0].timecode_s, sharp.chapters[0].timecode_s
    if tb is None or ts is None:
        return None
    # The same instant has t_blur = T - tb and t_sharp = T - ts.
    return tb - ts


def synchronise(blur: VideoSource, sharp: VideoSource, *, methods: tuple[str, ...], max_offset_s: float,
                drift_min_s: float, flip: str | None = None) -> SyncResult:
    """Try the methods in order; the first trustworthy result wins."""
    unknown = set(methods) - {"timecode", "audio", "visual"}
    if unknown:
        raise Rb2vError(f"align.sync_methods: unknown method(s) {sorted(unknown)}")
    prior = timecode_offset(blur, sharp) if "timecode" in methods else None
    tried = []
    for method in methods:
        if method == "audio":
            result = audio_sync(blur, sharp, max_offset_s=max_offset_s, drift_min_s=drift_min_s, prior=prior)
        elif method == "visual":
            result = visual_sync(blur, sharp, max_offset_s=max_offset_s, drift_min_s=drift_min_s, flip=flip,
                                 prior=prior)
        else:
            continue
        if result is not None:
            return result
        tried.append(method if method != "audio" or (blur.has_audio and sharp.has_audio) else "audio (no track)")
    if prior is not None:
        return SyncResult(prior, 1.0, "timecode", 0.5)
    raise Rb2vError(f"{blur.path.parent}: cannot synchronise the cameras (tried {', '.join(tried) or 'nothing'})")


def iter_sync_pairs(sync: SyncResult, blur_frames: int, blur_fps: float, sharp_fps: float) -> Iterator[tuple[int, float]]:
    """(blur frame k, exposure centre of k in sharp frame units) for every blur frame."""
    for k in range(blur_frames):
        yield k, float(sharp_fps * sync.sharp_time(k / blur_fps))
