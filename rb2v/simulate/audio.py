"""The sound both cameras hear: claps, chirps and room noise, recorded on each camera's clock."""

from __future__ import annotations

import numpy as np
from scipy import signal


class WorldSound:
    """A deterministic sound field sampled at 96 kHz over world time [t0, t1]."""

    rate = 96000

    def __init__(self, rng: np.random.Generator, t0: float, t1: float):
        self.t0 = t0
        n = int(np.ceil((t1 - t0) * self.rate)) + 1
        t = np.arange(n) / self.rate
        # Room tone: pink-ish noise, band-limited below 16 kHz.
        noise = rng.standard_normal(n)
        b, a = signal.butter(4, 16000 / (self.rate / 2))
        x = 0.02 * signal.lfilter(b, a, noise)
        # Transients at random times: claps (decaying noise) and short chirps.
        duration = t1 - t0
        for tc in rng.uniform(0, duration, size=max(3, int(duration * 3))):
            i0 = int(tc * self.rate)
            length = int(0.08 * self.rate)
            env = np.exp(-np.arange(length) / (0.012 * self.rate))
            if rng.random() < 0.6:
                burst = rng.standard_normal(length) * env * rng.uniform(0.3, 0.8)
            else:
                tt = np.arange(length) / self.rate
                burst = np.sin(2 * np.pi * (rng.uniform(300, 900) + rng.uniform(2e3, 8e3) * tt) * tt) * env * 0.5
            seg = slice(i0, min(i0 + length, n))
            x[seg] += burst[: seg.stop - seg.start]
        self.samples = x.astype(np.float64)
        self.times = t + t0

    def at(self, tau: np.ndarray) -> np.ndarray:
        return np.interp(tau, self.times, self.samples, left=0.0, right=0.0)


def record(
    sound: WorldSound, n_samples: int, rate: int, to_world, rng: np.random.Generator, gain: float, noise: float
) -> np.ndarray:
    """What a camera's microphone records: its own sample clock mapped to world time."""
    t_own = np.arange(n_samples) / rate
    x = gain * sound.at(to_world(t_own)) + noise * rng.standard_normal(n_samples)
    return np.clip(x, -1, 1).astype(np.float32)
