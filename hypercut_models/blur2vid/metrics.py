"""pPSNR and pSSIM exactly as the official HyperCUT evaluation computes them.

Per sample: the PSNR of each of the 7 predicted frames against its ground truth, on 0-255 values
(``rb2v.metrics.psnr(..., peak=255)``), once for the prediction as is and once reversed in time;
the direction whose *mean PSNR over the 7 frames* is higher is kept (ties: as is; with identical
frames, whose PSNR is inf, see ``_rank``), and that
direction's per-frame PSNRs are the sample's pPSNR. pPSNR per frame is the mean over samples;
p̄PSNR is the mean of those 7. A per-frame max (best direction chosen frame by frame) would score
higher and is not the definition. pSSIM: per sample, the mean SSIM over the 7 frames of the direction
whose mean SSIM is higher (scikit-image, RGB, 0-255 data range). The official code has no SSIM; its
README takes "the maximum value from the results of both forward and backward predictions for each
metric", so SSIM picks its own direction (until 2026-12-05 it took pPSNR's: within 1e-4 on a small
model). Frames are (7, H, W, 3) float arrays, [0, 1] scaled to 0-255. Predictions are scored as the
network gives them, neither rounded to 8 bits nor clipped, as the official validation
(``utils/metrics.py``) scores its output tensors; it saves PNGs only to look at. (Until 2026-12-05 they
were clipped and rounded to 8 bits first: on a small model 0.07-0.08 dB lower p̄PSNR, up to 0.43 dB on
one frame, and another direction for 3 of 9 samples, as an outside check measured.) An identical frame
has PSNR inf (the one PSNR of rb2v invents no ceiling), and a mean over it is inf too.

Beside the scores, how far things move from x0 to x6 in the ground truth and in the prediction
(``motion_extent``): a model that hedges between the two time directions predicts less motion than
there is, one that reads motion into a still image predicts some where there is none.
"""

from __future__ import annotations

import numpy as np

from rb2v.metrics import psnr

MOTION_MIN_SIDE = 48  # px: below this, optical flow between two frames is too unreliable to report


def scaled(frames: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> 0-255 values (float64), as they are: 8-bit frames give their integers back."""
    return np.asarray(frames, np.float64) * 255.0


def frame_psnrs(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(7,) PSNRs (dB, 0-255 values) of pred[k] against target[k]; inputs in [0, 1]."""
    return _psnrs(scaled(pred), scaled(target))


def _psnrs(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-frame PSNRs of frames already scaled (a sample's frames are scaled once)."""
    return np.array([psnr(p[k], t[k], peak=255.0) for k in range(len(t))])


def _rank(psnrs: np.ndarray) -> tuple[int, float]:
    """Order of directions: the mean PSNR; where frames are identical (inf), the number of such
    frames first, then the mean of the others (so two means of inf still compare)."""
    finite = psnrs[np.isfinite(psnrs)]
    return int(np.isinf(psnrs).sum()), float(finite.mean()) if len(finite) else 0.0


def _directions(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray]:
    """(per-frame PSNRs of the better direction, whether it is the reverse, the forward PSNRs) of
    scaled frames."""
    fwd, rev = _psnrs(p, t), _psnrs(p[::-1], t)
    return (rev, True, fwd) if _rank(rev) > _rank(fwd) else (fwd, False, fwd)


def ppsnr_sample(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
    """(per-frame PSNRs of the better direction, whether that direction is the reverse)."""
    chosen, reverse, _ = _directions(scaled(pred), scaled(target))
    return chosen, reverse


def _ssims(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-frame SSIMs of frames already scaled."""
    from skimage.metrics import structural_similarity

    win = min(7, *p.shape[1:3])
    win -= 1 - win % 2  # odd
    return np.array(
        [structural_similarity(p[k], t[k], data_range=255.0, channel_axis=2, win_size=win) for k in range(len(p))]
    )


def motion_extent(frames: np.ndarray) -> float:
    """Median length (px) of the optical flow from the first frame to the last of (T, H, W, 3) frames
    in [0, 1] (a robust "how far the picture moves": 0 on a still scene with small moving objects); nan
    for frames under ``MOTION_MIN_SIDE`` px. On a photo shifted by whole pixels (96 px crops) it
    measures the shift within 0.05 px (tested; 0.01 px or less measured)."""
    if min(frames.shape[1:3]) < MOTION_MIN_SIDE:
        return float("nan")
    from rb2v.interpolation.flow import optical_flow

    flow = optical_flow(frames[0], frames[-1])
    return float(np.median(np.hypot(flow[..., 0], flow[..., 1])))


class PPSNRAccumulator:
    """Sums over samples: pPSNR, forward PSNR, pSSIM (its own best direction), the floor (every frame
    = the blurry input, which is the same in both directions) and the x0 -> x6 motion extent of the
    ground truth and of the prediction (``motion_extent``); the same per subject (video)."""

    def __init__(self, ssim: bool = True):
        self.ssim = ssim
        self.ppsnr: list[np.ndarray] = []
        self.forward: list[np.ndarray] = []
        self.pssim: list[float] = []
        self.baseline: list[np.ndarray | None] = []  # None: a sample added without its blurry input
        self.subjects: list[str | None] = []
        self.motion: list[tuple[float, float]] = []  # (ground truth, prediction) px
        self.reversed = 0

    def add(self, pred: np.ndarray, target: np.ndarray, blur: np.ndarray | None = None, subject: str | None = None):
        p, t = scaled(pred), scaled(target)  # once per sample: every figure below reads them
        chosen, rev, forward = _directions(p, t)
        self.ppsnr.append(chosen)
        self.forward.append(forward)
        self.subjects.append(subject)
        self.reversed += int(rev)
        if self.ssim:
            self.pssim.append(max(float(_ssims(p, t).mean()), float(_ssims(p[::-1], t).mean())))
        self.baseline.append(None if blur is None else _psnrs(np.broadcast_to(scaled(blur), t.shape), t))
        self.motion.append((motion_extent(target), motion_extent(pred)))

    def _means(self, rows: list[int]) -> dict:
        """Figures over the samples ``rows``; the floor where each of them came with its blurry input."""
        out = {"samples": len(rows), "ppsnr": np.mean([self.ppsnr[i] for i in rows], axis=0).tolist()}
        if all(self.baseline[i] is not None for i in rows):
            out["baseline_ppsnr"] = np.mean([self.baseline[i] for i in rows], axis=0).tolist()
        if self.ssim:
            out["pssim_mean"] = float(np.mean([self.pssim[i] for i in rows]))
        motion = np.array([self.motion[i] for i in rows])
        if np.isfinite(motion).all():
            out["motion_true_px"], out["motion_predicted_px"] = motion.mean(axis=0).tolist()
        return out

    def result(self) -> dict:
        out = {
            **self._means(list(range(len(self.ppsnr)))),
            "ppsnr_mean": float(np.mean(self.ppsnr)),
            "psnr_forward": np.mean(self.forward, axis=0).tolist(),
            "reversed_fraction": self.reversed / max(len(self.ppsnr), 1),
        }
        rows: dict[str, list[int]] = {}
        for i, subject in enumerate(self.subjects):
            if subject is not None:
                rows.setdefault(subject, []).append(i)
        if rows:
            out["by_subject"] = {subject: self._means(r) for subject, r in sorted(rows.items())}
        return out


def pooled(by_subject: dict, subjects) -> dict:
    """``by_subject`` entries of ``subjects`` pooled as one set of samples: the figures that
    evaluating those samples alone gives (means weighted by each subject's sample count)."""
    parts = [by_subject[s] for s in subjects]
    weights = np.array([p["samples"] for p in parts], np.float64)
    out = {"samples": int(weights.sum())}
    for key in ("ppsnr", "baseline_ppsnr", "pssim_mean", "motion_true_px", "motion_predicted_px"):
        if all(key in p for p in parts):
            out[key] = (np.average([p[key] for p in parts], axis=0, weights=weights)).tolist()
    return out
