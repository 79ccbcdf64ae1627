"""The two cameras: exposure integration, noise, response, colour, flip and the rig's borders."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..colorspace import linear_to_srgb_fast
from ..io.images import apply_flip
from ..pixels import per_channel
from .lens import SimLens, pinhole
from .scene import Scene

_NOISE_BANK = np.random.default_rng(12345).standard_normal(1 << 22).astype(np.float32)


def gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise from a fixed bank at a random offset and sign (several times faster
    than drawing fresh samples; within a frame it is white)."""
    n = int(np.prod(shape))
    if n >= _NOISE_BANK.size:
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, _NOISE_BANK.size - n))
    sign = np.float32(1 if rng.random() < 0.5 else -1)
    return (_NOISE_BANK[start : start + n] * sign).reshape(shape)


def random_colour_response(rng: np.random.Generator) -> np.ndarray:
    """A camera's 3x4 colour transform in encoded space: gains, cross-talk and black offset."""
    A = np.diag(rng.uniform(0.88, 1.08, size=3)) + rng.uniform(-0.04, 0.04, size=(3, 3)) * (1 - np.eye(3))
    b = rng.uniform(-0.01, 0.025, size=(3, 1))
    return np.hstack([A, b])


def compose_colour(M_to: np.ndarray, M_from: np.ndarray) -> np.ndarray:
    """The 3x4 map from camera ``from``'s colours to camera ``to``'s for the same radiance."""
    A_f, b_f = M_from[:, :3], M_from[:, 3:]
    A_t, b_t = M_to[:, :3], M_to[:, 3:]
    A = A_t @ np.linalg.inv(A_f)
    return np.hstack([A, b_t - A @ b_f])


def border_mask(width: int, height: int, sides: str, band: int) -> np.ndarray:
    """The rig housing's dark borders: 0 on ``band`` px of the given sides with a soft 4 px ramp."""
    m = np.ones((height, width), np.float32)
    ramp = np.clip((np.arange(band + 4, dtype=np.float32) - band + 0.5) / 4, 0, 1)
    if "lr" in sides:
        m[:, : band + 4] *= ramp[None]
        m[:, -(band + 4) :] *= ramp[::-1][None]
    if "tb" in sides:
        m[: band + 4] *= ramp[:, None]
        m[-(band + 4) :] *= ramp[::-1][:, None]
    return m


@dataclass
class Camera:
    name: str
    fps: float
    exposure_s: float
    G: np.ndarray  # camera pixel (before the mirror flip) -> canonical
    flip: str
    colour: np.ndarray  # 3x4 in encoded space
    read_noise: float
    shot_noise: float
    borders: np.ndarray  # (h,w) multiplicative, in the recorded (flipped) frame
    vignette: np.ndarray | None = None
    lens: SimLens | None = None  # lens distortion (None: a pinhole)
    # Frame k integrates from k/fps + start_s to k/fps + start_s + exposure_s (top row; own clock);
    # row r of H starts r/(H-1) * readout_s later (rolling shutter; negative: read bottom up). None: centred
    # on k/fps.
    start_s: float | None = None
    readout_s: float = 0.0
    # A camera knocked during the take: from world time ``moved[0]`` on it sees through ``moved[1]`` instead of G.
    moved: tuple[float, np.ndarray] | None = None
    # f t (px m) of a centre t off the blur camera's (None: the same centre): layers shift by f t / Z
    parallax: np.ndarray | None = None

    @property
    def exposure_start_s(self) -> float:
        return -self.exposure_s / 2 if self.start_s is None else self.start_s

    def subframe_times(self, centre: float, internal_fps: float) -> np.ndarray:
        """Sample times (own clock) integrating [centre - E/2, centre + E/2] at >= internal_fps."""
        n = max(1, int(np.ceil(self.exposure_s * internal_fps - 1e-9)))
        return centre + self.exposure_s * ((np.arange(n) + 0.5) / n - 0.5)

    def exposure_times(self, timestamp: float, internal_fps: float) -> np.ndarray:
        """Sample times (own clock) integrating frame ``timestamp``'s (global-shutter) exposure window,
        ``[timestamp + start_s, timestamp + start_s + E]``, at the midpoints of n >= E * internal_fps bins."""
        # (start_s + E/2) is exactly 0 for a centred exposure: the same samples as subframe_times
        return self.subframe_times(timestamp + (self.exposure_start_s + self.exposure_s / 2), internal_fps)

    def rolling_grid(self, timestamp: float, internal_fps: float, height: int) -> tuple[np.ndarray, float, np.ndarray]:
        """Rolling shutter: the render grid and each recorded row's weights for frame ``timestamp``.

        Renders sit at ``(j + 0.5) * dt`` on the camera's own clock, ``dt = 1 / (fps * m)`` with
        ``m = ceil(internal_fps / fps)``, so consecutive frames share them. Row r integrates
        ``[a_r, a_r + E]``, ``a_r = timestamp + start_s + r / (H - 1) * readout_s``; its weight on render j
        is the overlap of that window with bin ``[j dt, (j + 1) dt]`` over E (rows of the recorded
        frame: the sensor reads the frame it writes top to bottom). Returns (j, dt, weights (n, H)).
        """
        m = max(1, int(np.ceil(internal_fps / self.fps - 1e-9)))
        dt = 1.0 / (self.fps * m)
        a = timestamp + self.exposure_start_s + np.arange(height) / max(height - 1, 1) * self.readout_s
        b = a + self.exposure_s
        j = np.arange(int(np.floor(a.min() / dt + 1e-9)), int(np.ceil(b.max() / dt - 1e-9)))
        lo = np.maximum(a[None, :], j[:, None] * dt)
        hi = np.minimum(b[None, :], (j[:, None] + 1) * dt)
        w = np.clip(hi - lo, 0, None) / self.exposure_s
        keep = w.max(axis=1) > 0
        return j[keep], dt, (w[keep] / w[keep].sum(axis=0, keepdims=True)).astype(np.float32)

    def render(self, scene: Scene, tau: float, size: tuple[int, int], backdrop: np.ndarray | None = None):
        """The scene at world time ``tau`` through this camera's lens (linear RGB and coverage,
        unflipped): every render of a camera goes through here, so lens distortion applies to all."""
        G = self.moved[1] if self.moved is not None and tau >= self.moved[0] else self.G
        if self.lens is None:
            return scene.render(G, tau, size, backdrop=backdrop, parallax=self.parallax)
        return self.lens.render(scene, G, tau, backdrop)

    def film(
        self,
        scene: Scene,
        world_times: np.ndarray,
        size: tuple[int, int],
        rng: np.random.Generator | None,
        backdrop: np.ndarray | None = None,
        gain: np.ndarray | None = None,
        light: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One recorded frame (float32 RGB in [0,1], as flipped by the mirror) and its true alpha.

        The sensor averages radiance over the exposure (linear light, global shutter: the renders at
        ``world_times``), adds shot and read noise (``rng=None``: noiseless), then the response curve
        and colour transform are applied.
        """
        w, h = size
        radiance = np.zeros((h, w, 3), np.float32)
        alpha = np.zeros((h, w), np.float32)
        for tau in world_times:
            img, a = self.render(scene, float(tau), size, backdrop)
            radiance += img
            alpha += a
        radiance *= np.float32(light / len(world_times))
        alpha *= np.float32(1 / len(world_times))
        return self.develop(radiance, alpha, rng, gain)

    def integrate_rows(self, renders, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rolling shutter: sum of renders (linear RGB, alpha; unflipped) with per-row weights (n, H)
        given for the rows of the recorded frame."""
        radiance = np.zeros_like(renders[0][0])
        alpha = np.zeros_like(renders[0][1])
        weighted = np.empty_like(radiance)  # one buffer for every render's weighted rows
        for (img, a), wr in zip(renders, weights):
            wr = wr[::-1] if self.flip == "vertical" else wr  # recorded row r is rendered row H-1-r
            nz = np.flatnonzero(wr)
            if nz.size == 0:
                continue
            band = slice(nz[0], nz[-1] + 1)  # a render lights only the rows whose window overlaps its bin
            w = np.ascontiguousarray(wr[band])[:, None]
            radiance[band] += np.multiply(img[band], w[..., None], out=weighted[band])
            alpha[band] += a[band] * w
        return radiance, alpha

    def develop(
        self, radiance: np.ndarray, alpha: np.ndarray, rng: np.random.Generator | None, gain: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sensor radiance (unflipped, linear) -> recorded frame: noise, response, colour (times the
        per-frame ``gain`` of each encoded channel: exposure and white-balance drift), flip, borders."""
        if self.vignette is not None:
            radiance *= per_channel(self.vignette)
        if rng is not None:
            noise = np.maximum(radiance, 0)  # shot and read noise: sigma = sqrt(shot * radiance + read²)
            noise *= self.shot_noise
            noise += self.read_noise**2
            np.sqrt(noise, out=noise)
            noise *= gaussian_noise(rng, radiance.shape)
            radiance += noise
        encoded = linear_to_srgb_fast(radiance)
        colour = self.colour if gain is None else np.asarray(gain, np.float64)[:, None] * self.colour
        out = cv2.transform(encoded, colour.astype(np.float32))
        out = apply_flip(out, self.flip)
        alpha = apply_flip(alpha, self.flip)
        out = np.multiply(out, per_channel(self.borders))
        np.clip(out, 0, 1, out=out)
        return np.ascontiguousarray(out, dtype=np.float32), np.ascontiguousarray(alpha)


def falloff_field(width: int, height: int, vignetting: float, gradient: float = 0.0) -> np.ndarray | None:
    """A camera's light fall-off (``SimConfig.vignetting``, ``splitter_gradient``) on the radiance it films
    (before its mirror flip, so across the blur view), or None where it has none."""
    if not vignetting and not gradient:
        return None
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    return ((1 - vignetting * r2) * (1 + gradient * (2 * xx / max(width - 1, 1) - 1))).astype(np.float32)


def _about_centre(width: int, height: int, c: float, s: float, shift, perspective=(0.0, 0.0)) -> np.ndarray:
    """[[c, -s], [s, c]] (a turn, scaled when c² + s² != 1) about the frame's centre, then ``shift`` (px);
    ``perspective`` fills the bottom row."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, cx + shift[0]], [0, 1, cy + shift[1]], [0, 0, 1]], np.float64)
    R = np.array([[c, -s, 0], [s, c, 0], [perspective[0], perspective[1], 1]], np.float64)
    return back @ R @ to_c


def random_homography(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A mild sharp->blur homography: ±0.8°, ±2 % scale, ±10 px shift, slight perspective."""
    ang = np.deg2rad(rng.uniform(-0.8, 0.8))
    s = rng.uniform(0.98, 1.02)
    shift = rng.uniform(-10, 10), rng.uniform(-10, 10)
    perspective = rng.uniform(-2e-5, 2e-5), rng.uniform(-2e-5, 2e-5)
    H = _about_centre(width, height, np.cos(ang) * s, np.sin(ang) * s, shift, perspective)
    return H / H[2, 2]


def rig_drift(rng: np.random.Generator, width: int, height: int, px: float, in_3d: bool = False) -> np.ndarray:
    """A small turn about the frame's centre and a shift that together move its corners by at most ``px``;
    ``in_3d``: the camera itself turned about its centre of projection instead (pan, tilt and roll about an
    axis drawn at random, through a pinhole of ``lens.FOCAL_FRACTION``), which moves the corners by ``px`` at
    most too, but a pan or tilt leaves a keystone that no turn and shift of the picture make."""
    if in_3d:
        K = pinhole(width, height)
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        corners = np.float64([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]]).reshape(-1, 1, 2)

        def turned(angle: float) -> np.ndarray:
            R, _ = cv2.Rodrigues(axis * angle)
            M = K @ R @ np.linalg.inv(K)
            return M / M[2, 2]

        def reach(M: np.ndarray) -> float:
            return float(np.linalg.norm(cv2.perspectiveTransform(corners, M) - corners, axis=2).max())

        angle = 1e-3
        for _ in range(3):  # the corners' reach grows about linearly with the angle
            angle *= px / reach(turned(angle))
        return turned(angle)
    shift = px * rng.uniform(0.3, 1.0)
    ang = (px - shift) / math.hypot((width - 1) / 2, (height - 1) / 2) * rng.choice([-1.0, 1.0])
    phi = rng.uniform(0, 2 * math.pi)
    return _about_centre(width, height, math.cos(ang), math.sin(ang), (shift * math.cos(phi), shift * math.sin(phi)))
