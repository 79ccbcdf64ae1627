"""Small physically plausible green-screen takes with exact alpha, for tests and benchmarks.

A "hand" (palm ellipse plus five finger capsules, textured with a skin-toned region of
scikit-image's astronaut photograph) moves and turns over a shaded green screen. Each
frame integrates many sub-frame positions over the exposure in linear light, so fast
edges get wide semi-transparent bands, then the camera adds a little green spill on the
subject's rim, encodes to sRGB, adds noise and quantises to 8 bits. The true alpha is
the exposure-averaged coverage, and the true foreground colour the coverage-weighted
average of the subject's colour, so the true composite over any background is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colorspace import linear_to_srgb, srgb_to_linear
from ..io.images import bundled_photo

SCREEN_LINEAR = np.array([0.07, 0.42, 0.10], np.float32)


@dataclass
class SyntheticTake:
    frames: np.ndarray  # (N,H,W,3) sRGB as filmed on the screen (noisy, 8-bit levels)
    alpha: np.ndarray  # (N,H,W) true coverage in [0,1]
    fg_linear: np.ndarray  # (N,H,W,3) true foreground colour, linear light (0 where alpha is 0)

    def true_composite(self, background: np.ndarray) -> np.ndarray:
        """(N,H,W,3) sRGB: the same exposures filmed in front of ``background`` (sRGB, noise-free)."""
        a = self.alpha[..., None]
        return linear_to_srgb(a * self.fg_linear + (1.0 - a) * srgb_to_linear(background))

    @property
    def band(self) -> np.ndarray:
        """Pixels of the semi-transparent band (0 < alpha < 1)."""
        return (self.alpha > 1e-4) & (self.alpha < 1.0 - 1e-4)


def _hand_mask(size: int) -> np.ndarray:
    """Anti-aliased hand silhouette in a ``size`` x ``size`` box (float32 in [0,1])."""
    s = 4  # draw at 4x and downsample: smooth, sub-pixel edges
    big = np.zeros((size * s, size * s), np.uint8)
    c = size * s / 2
    cv2.ellipse(big, (int(c), int(c * 1.25)), (int(c * 0.42), int(c * 0.48)), 0, 0, 360, 255, -1)
    fingers = [(-0.62, 0.55, 0.58), (-0.28, 0.78, 0.62), (0.05, 0.82, 0.66), (0.36, 0.74, 0.60), (0.62, 0.25, 0.45)]
    for dx, length, angle_scale in fingers:
        x0, y0 = c + dx * c * 0.55, c * 1.0
        x1, y1 = c + dx * c * (0.55 + angle_scale * 0.5), c * (1.0 - length * 0.95)
        cv2.line(big, (int(x0), int(y0)), (int(x1), int(y1)), 255, int(c * 0.16), cv2.LINE_AA)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _skin_texture(size: int) -> np.ndarray:
    face = bundled_photo("astronaut")[60:220, 150:310]  # the astronaut's face: real skin tones and detail
    tex = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return srgb_to_linear(tex)


def _screen(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / (w - 1) * 2 - 1, yy / (h - 1) * 2 - 1
    shade = 1.02 - 0.18 * (xn**2 + yn**2) * 0.5 + 0.08 * yn - 0.05 * xn  # vignetting + uneven lights
    return SCREEN_LINEAR[None, None, :] * shade[..., None]


def make_take(
    frames: int = 4,
    height: int = 192,
    width: int = 256,
    speed: float = 24.0,
    exposure: float = 1.0,
    subframes: int = 32,
    noise: float = 0.004,
    spill: float = 0.06,
    seed: int = 0,
) -> SyntheticTake:
    """A take of ``frames`` frames; the hand moves ``speed`` pixels per frame interval (exposure = that fraction)."""
    rng = np.random.default_rng(seed)
    size = int(min(height, width) * 0.8)
    mask = _hand_mask(size)
    tex = _skin_texture(size)
    screen = _screen(height, width)
    direction = rng.uniform(0, 2 * np.pi)
    centre = np.array([width / 2, height / 2]) - np.array([np.cos(direction), np.sin(direction)]) * speed * frames / 2
    spin = rng.uniform(-4, 4)  # degrees per frame
    out = np.empty((frames, height, width, 3), np.float32)
    alphas = np.empty((frames, height, width), np.float32)
    fgs = np.empty_like(out)
    for f in range(frames):
        cov = np.zeros((height, width), np.float32)
        col = np.zeros((height, width, 3), np.float32)
        for k in range(subframes):
            t = f + exposure * (k + 0.5) / subframes
            pos = centre + np.array([np.cos(direction), np.sin(direction)]) * speed * t
            M = cv2.getRotationMatrix2D((size / 2, size / 2), spin * t, 1.0)
            M[:, 2] += pos - size / 2
            m = cv2.warpAffine(mask, M, (width, height), flags=cv2.INTER_LINEAR)
            c = cv2.warpAffine(tex, M, (width, height), flags=cv2.INTER_LINEAR)
            cov += m
            col += m[..., None] * c
        a = cov / subframes
        col /= subframes
        fg = np.where(a[..., None] > 1e-6, col / np.maximum(a[..., None], 1e-6), 0.0)
        # Green light bouncing off the screen onto the subject's rim: part of what the camera
        # sees of the subject, so part of the true foreground too.
        rim = np.clip(1.0 - cv2.GaussianBlur(a, (0, 0), 3.0), 0.0, 1.0) * (a > 0)
        fg = fg + spill * rim[..., None] * SCREEN_LINEAR / SCREEN_LINEAR[1]
        lin = a[..., None] * fg + (1.0 - a[..., None]) * screen
        img = linear_to_srgb(lin) + rng.normal(0.0, noise, lin.shape).astype(np.float32)
        out[f] = np.round(np.clip(img, 0, 1) * 255) / 255
        alphas[f] = a
        fgs[f] = fg
    return SyntheticTake(frames=out, alpha=alphas, fg_linear=fgs.astype(np.float32))
