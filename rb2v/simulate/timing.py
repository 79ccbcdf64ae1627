"""Per-take camera conventions: exposure windows (anchor, length, readout), drift and codec.

``take_settings`` resolves them for one take, from the ``SimConfig`` or — with ``randomize`` —
drawn from the seed and the take's key (its own random stream: the scene, clocks and noise of a
take are the same with and without ``randomize``). Everything is stated in the alignment
contract's terms (``rb2v.alignment.Exposure``, method ``"truth"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alignment import Exposure
from .config import BITRATE_REFERENCE_PIXELS, BOARD_REACH, BOARD_REACH_MAX, SimConfig, anchor_offset

# --randomize: the ranges draws come from (seconds unless said otherwise)
BLUR_EXPOSURE_RANGE = (1 / 100, 1 / 25)  # shutter of the 25 fps camera (log-uniform), capped at its period
SHARP_EXPOSURE_RANGE = (1 / 1000, 1 / 200)  # shutter of the 100 fps camera (log-uniform), capped at its period
READOUT_RANGE = (0.008, 0.016)  # rolling-shutter readout, capped at each camera's frame period
EXPOSURE_DRIFT_RANGE = (0.005, 0.03)  # relative amplitude of auto-exposure wander
WB_DRIFT_RANGE = (0.005, 0.02)  # relative amplitude of per-channel white-balance wander
BITRATE_RANGE = (45.0, 100.0)  # Mb/s at 1920x1080 (GoPro high/standard bitrates), scaled to the frame
DISTORTION_K1_RANGE = (0.02, 0.08)  # |k1| per camera, either sign (a session's lenses: shared by its takes)
DISTORTION_K2_RANGE = (0.0, 0.03)  # |k2| per camera, either sign
BOARD_REACH_RANGE = (BOARD_REACH, BOARD_REACH_MAX)  # how far out the calibration board is held (SimConfig.board_reach)


def draw_distortion(seed: int) -> tuple[tuple[float, float], tuple[float, float], float]:
    """--randomize: the session's radial distortion (k1, k2) of the blur and the sharp lens, different
    per camera, and how far from the centre its calibration board is held."""
    rng = np.random.default_rng([8, seed])
    k1 = rng.uniform(*DISTORTION_K1_RANGE, size=2) * rng.choice([-1.0, 1.0], size=2)
    # drawn after k1 so that a seed keeps the k1 it drew before k2 was drawn
    k2 = rng.uniform(*DISTORTION_K2_RANGE, size=2) * rng.choice([-1.0, 1.0], size=2)
    reach = rng.uniform(*BOARD_REACH_RANGE)
    return (float(k1[0]), float(k2[0])), (float(k1[1]), float(k2[1])), float(reach)


class Drift:
    """Smooth per-channel gains ``g(t)`` (3,) of a camera's encoded colours: exposure x white balance.

    Each is a sum of two sinusoids (0.1-0.8 Hz, random phase) normalised to amplitude ``a``: the
    wander of auto exposure and auto white balance, nearly constant over one blurry exposure.
    """

    def __init__(self, rng: np.random.Generator, exposure: float, wb: float):
        self.exposure, self.wb = float(exposure), float(wb)
        self.freq = rng.uniform(0.1, 0.8, size=(4, 2))  # rows: exposure, r, g, b
        self.phase = rng.uniform(0, 2 * np.pi, size=(4, 2))

    def _wave(self, t: float) -> np.ndarray:
        return np.sin(2 * np.pi * self.freq * t + self.phase).sum(axis=1) / 2  # in [-1, 1]

    def gain(self, t: float) -> np.ndarray:
        w = self._wave(float(t))
        return (1 + self.exposure * w[0]) * (1 + self.wb * w[1:])

    @property
    def active(self) -> bool:
        return self.exposure > 0 or self.wb > 0


@dataclass(frozen=True)
class TakeSettings:
    exposure: dict[str, Exposure]  # "blur", "sharp": the true windows (method "truth")
    anchor_offset_s: dict[str, float]  # seconds from the top row's exposure start to the timestamp
    exposure_drift: float
    wb_drift: float
    bitrate_mbps: float | None  # at 1920x1080; None: crf

    def bitrate_bps(self, width: int, height: int) -> int | None:
        """The encoder's bitrate for a ``width`` x ``height`` stream (GoPro rate scaled by pixel count)."""
        if self.bitrate_mbps is None:
            return None
        return int(round(self.bitrate_mbps * 1e6 * width * height / BITRATE_REFERENCE_PIXELS))

    def to_json(self) -> dict:
        return {
            "anchor_offset_s": dict(self.anchor_offset_s),
            "exposure_drift": self.exposure_drift,
            "wb_drift": self.wb_drift,
            "bitrate_mbps": self.bitrate_mbps,
        }


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _readout_range(fps: float) -> tuple[float, float]:
    """READOUT_RANGE capped at the frame period; a camera faster than 1/READOUT_RANGE[0] (125 fps) reads
    out in half to all of its period."""
    period = 1 / fps
    return (READOUT_RANGE[0] if period >= READOUT_RANGE[0] else period / 2), min(READOUT_RANGE[1], period)


def take_settings(cfg: SimConfig, key: list[int]) -> TakeSettings:
    """The take's camera conventions: from ``cfg``, or drawn per take when ``cfg.randomize``."""
    if cfg.randomize:
        rng = np.random.default_rng([6, *key])
        lengths = {
            "blur": min(_log_uniform(rng, *BLUR_EXPOSURE_RANGE), 1 / cfg.blur_fps),
            "sharp": min(_log_uniform(rng, *SHARP_EXPOSURE_RANGE), 1 / cfg.sharp_fps),
        }
        anchors = {c: float(rng.uniform(0, 1)) * lengths[c] for c in ("blur", "sharp")}  # anywhere in [start, end]
        readouts = {
            c: float(rng.uniform(*_readout_range(fps))) for c, fps in (("blur", cfg.blur_fps), ("sharp", cfg.sharp_fps))
        }
        exposure_drift = float(rng.uniform(*EXPOSURE_DRIFT_RANGE))
        wb_drift = float(rng.uniform(*WB_DRIFT_RANGE))
        bitrate = float(rng.uniform(*BITRATE_RANGE))
    else:
        lengths = {"blur": cfg.blur_exposure_s, "sharp": cfg.sharp_exposure_s}
        anchors = {
            "blur": anchor_offset(cfg.blur_anchor, cfg.blur_exposure_s),
            "sharp": anchor_offset(cfg.sharp_anchor, cfg.sharp_exposure_s),
        }
        readouts = {"blur": cfg.blur_readout_s, "sharp": cfg.sharp_readout_s}
        exposure_drift, wb_drift, bitrate = cfg.exposure_drift, cfg.wb_drift, cfg.bitrate_mbps
    exposure = {}
    for c in ("blur", "sharp"):
        centred = anchors[c] == lengths[c] / 2
        start = -lengths[c] / 2 if centred else -anchors[c]  # exactly -L/2 when centred (bit-identical renders)
        if cfg.mounted_upside_down(c) and readouts[c]:
            # the sensor reads the upright frame bottom up: the top row starts one readout after the bottom
            # row (which the anchor denotes), a negative skew in the contract's top-to-bottom terms
            exposure[c] = Exposure(start + readouts[c], lengths[c], -readouts[c], "truth")
        else:
            exposure[c] = Exposure(start, lengths[c], readouts[c], "truth")
    return TakeSettings(exposure, anchors, exposure_drift, wb_drift, bitrate)
