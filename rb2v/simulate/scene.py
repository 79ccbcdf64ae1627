"""Scenes: a backdrop and moving textured objects, rendered into any camera's pixel grid.

Coordinates: the *canonical* frame is the blur camera's pixel grid (pixel centres at
integers). A camera is described by ``G``, the 3x3 map from its pixel coordinates to
canonical ones (identity for the blur camera, the rig homography for the sharp camera
before its mirror flip). Objects live in their own texture coordinates and are placed
by a similarity transform that changes smoothly with world time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..pixels import per_channel
from .photos import COLOUR_PHOTOS, GREY_TEXTURES, SourceFrames, photo, resize_cover

WARP_FLAGS = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP


def similarity(cx: float, cy: float, scale: float, angle: float, ox: float, oy: float) -> np.ndarray:
    """Texture coords -> canonical: rotate/scale about texture point (ox, oy), then move it to (cx, cy)."""
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, cx - c * ox + s * oy], [s, c, cy - s * ox - c * oy], [0, 0, 1]], np.float64)


@dataclass
class Trajectory:
    """A smooth path: position, scale and angle as sums of sinusoids plus a drift."""

    base: np.ndarray  # (4,) cx, cy, log-scale, angle
    drift: np.ndarray  # (4,) per second
    amp: np.ndarray  # (K,4)
    freq: np.ndarray  # (K,) Hz
    phase: np.ndarray  # (K,4)

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        centre,
        pos_amp: float,
        speed: float,
        rot_amp: float,
        zoom_amp: float,
        motion_scale: float,
        tempo: float = 1.0,
    ) -> Trajectory:
        k = 3
        freq = rng.uniform(0.25, 1.6, size=k) * tempo
        amp = np.zeros((k, 4))
        amp[:, 0:2] = rng.uniform(0.3, 1.0, size=(k, 2)) * pos_amp / k
        amp[:, 2] = rng.uniform(0.3, 1.0, size=k) * zoom_amp / k
        amp[:, 3] = rng.uniform(0.3, 1.0, size=k) * rot_amp / k
        drift = np.zeros(4)
        drift[0:2] = rng.normal(size=2) * speed * 0.3
        return cls(
            base=np.array([centre[0], centre[1], 0.0, rng.uniform(-0.3, 0.3)]),
            drift=drift * motion_scale,
            amp=amp * motion_scale,
            freq=freq,
            phase=rng.uniform(0, 2 * np.pi, size=(k, 4)),
        )

    def at(self, tau: float) -> np.ndarray:
        osc = (self.amp * np.sin(2 * np.pi * self.freq[:, None] * tau + self.phase)).sum(axis=0)
        return self.base + self.drift * tau + osc


# Each layer's distance (m), for a rig whose cameras' centres differ (``SimConfig.centre_offset_mm``): a layer
# at depth Z then shifts by f t / Z between the views (parallax). A subject at arm's length before its green
# screen, a calibration board at 1 m, a street's objects and its far backdrop.
SUBJECT_DEPTH_M = 0.6
SCREEN_DEPTH_M = 1.5
BOARD_DEPTH_M = 1.0
STREET_OBJECT_DEPTH_M = 4.0
STREET_DEPTH_M = 12.0


def screen_box(points: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixels a warp of a layer whose outline reaches ``points`` (2, n; on screen) must cover: their bounding
    box and 2 px around it, inside a frame of ``size`` (w, h), as (x0, y0, x1, y1), ends excluded; None where
    that is empty."""
    w, h = size
    x0, y0 = max(int(np.floor(points[0].min())) - 2, 0), max(int(np.floor(points[1].min())) - 2, 0)
    x1, y1 = min(int(np.ceil(points[0].max())) + 3, w), min(int(np.ceil(points[1].max())) + 3, h)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def at_depth(G: np.ndarray, parallax: np.ndarray | None, depth: float) -> np.ndarray:
    """Camera map ``G`` for a layer at ``depth`` m seen from a centre ``parallax`` (f t, px m) off the blur
    camera's: the point a pixel sees lies f t / Z further along in the blur camera's view."""
    if parallax is None:
        return G
    return np.array([[1, 0, parallax[0] / depth], [0, 1, parallax[1] / depth], [0, 0, 1]], np.float64) @ G


@dataclass
class SceneObject:
    texture: np.ndarray  # (h,w,3) linear RGB
    mask: np.ndarray  # (h,w) coverage in [0,1]
    path: Trajectory
    spill: np.ndarray | None = None  # (h,w) how much screen light the object's rim reflects
    depth: float = SUBJECT_DEPTH_M  # m

    def transform(self, tau: float) -> np.ndarray:
        cx, cy, logs, ang = self.path.at(tau)
        h, w = self.mask.shape
        return similarity(cx, cy, math.exp(logs), ang, (w - 1) / 2, (h - 1) / 2)


def _ellipse_mask(h: int, w: int, feather: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - (w - 1) / 2) / (w / 2 - 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2 - 2)) ** 2)
    # distance to the rim in pixels, roughly: antialiased edge of width ~feather px
    d = (1 - r) * min(h, w) / 2
    return np.clip(d / feather + 0.5, 0, 1).astype(np.float32)


def _rounded_rect_mask(h: int, w: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    qx = np.abs(xx - (w - 1) / 2) - (w / 2 - 2 - radius)
    qy = np.abs(yy - (h - 1) / 2) - (h / 2 - 2 - radius)
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2) + np.minimum(np.maximum(qx, qy), 0) - radius
    return np.clip(0.5 - outside / 1.5, 0, 1).astype(np.float32)


def _hand_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A hand: palm, five fingers of random spread and length, and the wrist, drawn at 4x then reduced."""
    s = size * 4
    m = np.zeros((s, s), np.uint8)
    cx, cy = s // 2, int(s * 0.62)
    pw, ph = int(s * 0.20), int(s * 0.22)
    cv2.ellipse(m, (cx, cy), (pw, ph), 0, 0, 360, 255, -1)
    cv2.rectangle(m, (cx - int(pw * 0.8), cy), (cx + int(pw * 0.8), s - 1), 255, -1)  # wrist to the frame edge
    spread = rng.uniform(0.12, 0.28)
    for i, (dx, length) in enumerate(zip((-0.75, -0.35, 0.0, 0.35, 0.75), (0.62, 0.80, 0.86, 0.78, 0.55))):
        ang = -np.pi / 2 + (i - 2) * spread + (0.55 if i == 0 else 0)
        bx, by = cx + dx * pw * (1.4 if i == 0 else 1.0), cy - ph * (0.3 if i == 0 else 0.8)
        ln = length * s * 0.30 * rng.uniform(0.9, 1.1)
        ex, ey = bx + np.cos(ang) * ln, by + np.sin(ang) * ln
        cv2.line(m, (int(bx), int(by)), (int(ex), int(ey)), 255, int(s * 0.075), cv2.LINE_AA)
        cv2.circle(m, (int(ex), int(ey)), int(s * 0.0375), 255, -1, cv2.LINE_AA)
    return cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _skin_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Skin tone modulated by a real photo's detail, so the subject has features to match."""
    grey = photo(GREY_TEXTURES[rng.integers(len(GREY_TEXTURES))])[..., 1]
    detail = resize_cover(grey, w, h)
    detail = detail / max(float(detail.mean()), 1e-3)
    tone = np.array([rng.uniform(0.35, 0.6), rng.uniform(0.18, 0.3), rng.uniform(0.10, 0.2)], np.float32)
    shade = 0.75 + 0.25 * detail
    return np.clip(tone[None, None] * shade[..., None], 0, 1).astype(np.float32)


def _rim_spill(mask: np.ndarray, width: float) -> np.ndarray:
    """Screen light reflected by the subject's rim: strongest at the edge, fading inwards."""
    outside = cv2.GaussianBlur(1 - mask, (0, 0), width)
    return (mask * outside).astype(np.float32)


class Scene:
    """Backdrop + objects; ``render(G, tau, size)`` gives linear RGB and the foreground's coverage."""

    def __init__(
        self,
        category: str,
        rng: np.random.Generator,
        width: int,
        height: int,
        motion_scale: float,
        subject_index: int = 0,
        source: SourceFrames | None = None,
        calibration: bool = False,
        rig_motion: float = 1.0,
        subject_size: float = 0.62,
    ):
        self.width, self.height = width, height
        self.subject_size = subject_size
        self.category = category
        self.green_screen = category in ("face", "hand") and not calibration
        self.source = source
        self.objects: list[SceneObject] = []
        # Rig pan and handheld shake (the whole rig moves; both cameras see it).
        # a faster rig sees more of the backdrop (beyond it, its mirror image)
        self.margin = round(96 * max(1.0, rig_motion) ** 0.5)
        # Green-screen sessions are shot from a tripod: the screen is static, so each camera's
        # view of it is rendered once and cached.
        pan_scale = 0.0 if self.green_screen else motion_scale * rig_motion
        self.pan = Trajectory.random(
            rng,
            (0.0, 0.0),
            pos_amp=12.0,
            speed=25.0 if category == "street" else 4.0,
            rot_amp=0.01,
            zoom_amp=0.01,
            motion_scale=pan_scale,
        )
        self.pan.base[3] = 0.0
        self._static_views: dict[bytes, np.ndarray] = {}
        cw, ch = width + 2 * self.margin, height + 2 * self.margin
        if calibration:
            board = photo(COLOUR_PHOTOS[rng.integers(len(COLOUR_PHOTOS))])
            grey = photo(GREY_TEXTURES[rng.integers(len(GREY_TEXTURES))])
            self.backdrop_tex = (0.6 * resize_cover(board, cw, ch) + 0.4 * resize_cover(grey, cw, ch)).astype(
                np.float32
            )
        elif self.green_screen:
            self.backdrop_tex = self._green_screen(rng, cw, ch)
        elif source is None:
            self.backdrop_tex = resize_cover(photo(COLOUR_PHOTOS[(subject_index * 3 + 1) % len(COLOUR_PHOTOS)]), cw, ch)
        else:
            self.backdrop_tex = None
        self.screen_colour = np.array([0.06, 0.42, 0.09], np.float32)
        self.backdrop_depth = BOARD_DEPTH_M if calibration else SCREEN_DEPTH_M if self.green_screen else STREET_DEPTH_M
        if calibration:
            return
        if category == "street":
            self._add_street_objects(rng, motion_scale)
        elif category == "hand":
            self._add_subject(rng, motion_scale, subject_index, hand=True)
        else:
            self._add_subject(rng, motion_scale, subject_index, hand=False)

    # ------------------------------------------------------------------ construction
    def _green_screen(self, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u, v = xx / w - 0.5, yy / h - 0.5
        light = 1.0 + rng.uniform(-0.25, 0.25) * u + rng.uniform(-0.2, 0.2) * v - 0.35 * (u**2 + v**2)
        wrinkles = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), 24)
        wrinkles *= 0.06 / max(float(wrinkles.std()), 1e-6)
        shade = (light + wrinkles).astype(np.float32)
        base = np.array([0.05, 0.40, 0.08], np.float32) * rng.uniform(0.85, 1.15)
        return (base[None, None] * shade[..., None]).astype(np.float32)

    def _add_street_objects(self, rng: np.random.Generator, motion_scale: float) -> None:
        n = int(rng.integers(2, 5))
        for i in range(n):
            h, w = int(rng.integers(70, 170)), int(rng.integers(90, 220))
            tex = resize_cover(photo(COLOUR_PHOTOS[rng.integers(len(COLOUR_PHOTOS))]), w, h)
            mask = _rounded_rect_mask(h, w, radius=rng.uniform(6, min(h, w) / 3)) if i % 2 == 0 else _ellipse_mask(h, w)
            centre = (rng.uniform(0.25, 0.75) * self.width, rng.uniform(0.25, 0.75) * self.height)
            path = Trajectory.random(
                rng,
                centre,
                pos_amp=rng.uniform(60, 160),
                speed=rng.uniform(40, 120),
                rot_amp=rng.uniform(0.05, 0.3),
                zoom_amp=0.08,
                motion_scale=motion_scale,
            )
            self.objects.append(SceneObject(tex.astype(np.float32), mask, path, depth=STREET_OBJECT_DEPTH_M))

    def _add_subject(self, rng: np.random.Generator, motion_scale: float, subject_index: int, hand: bool) -> None:
        srng = np.random.default_rng([subject_index, 7 if hand else 11])  # one look per subject
        size = int(min(self.width, self.height) * self.subject_size)
        if hand:
            mask = _hand_mask(srng, size)
            tex = _skin_texture(srng, size, size)
        else:
            face = photo(("astronaut", "chelsea", "coffee")[subject_index % 3])
            h = size
            w = int(size * 0.78)
            mask = _ellipse_mask(h, w, feather=2.0)
            tex = resize_cover(face, w, h)
        centre = (self.width * rng.uniform(0.42, 0.58), self.height * rng.uniform(0.45, 0.6))
        # A waving hand moves faster than a head: larger swings at a quicker tempo.
        path = Trajectory.random(
            rng,
            centre,
            pos_amp=rng.uniform(50, 110),
            speed=rng.uniform(20, 60),
            rot_amp=rng.uniform(0.3, 0.6) if hand else 0.12,
            zoom_amp=0.06,
            motion_scale=motion_scale,
            tempo=1.8 if hand else 1.0,
        )
        self.objects.append(SceneObject(tex.astype(np.float32), mask, path, spill=_rim_spill(mask, 6.0)))

    # ------------------------------------------------------------------ rendering
    def backdrop_transform(self, tau: float) -> np.ndarray:
        """Backdrop texture coords -> canonical at world time tau."""
        dx, dy, logs, ang = self.pan.at(tau)
        tex_w = self.width + 2 * self.margin
        tex_h = self.height + 2 * self.margin
        return similarity(
            (self.width - 1) / 2 + dx, (self.height - 1) / 2 + dy, math.exp(logs), ang, (tex_w - 1) / 2, (tex_h - 1) / 2
        )

    def backdrop_texture(self, tau: float) -> np.ndarray:
        if self.backdrop_tex is not None:
            return self.backdrop_tex
        # A real video plays slowly (one source frame per 0.16 s) under the rig's own motion.
        tex = self.source.at(tau * 6.25)
        return resize_cover(tex, self.width + 2 * self.margin, self.height + 2 * self.margin)

    def _warp_backdrop(self, G: np.ndarray, tau: float, size: tuple[int, int]) -> np.ndarray:
        M = np.linalg.inv(self.backdrop_transform(tau)) @ G
        return cv2.warpPerspective(self.backdrop_texture(tau), M, size, flags=WARP_FLAGS, borderMode=cv2.BORDER_REFLECT)

    def render(
        self,
        G0: np.ndarray,
        tau: float,
        size: tuple[int, int],
        backdrop: np.ndarray | None = None,
        spill: bool = True,
        parallax: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Linear RGB (h,w,3) and foreground coverage (h,w) seen through camera map ``G0`` at time ``tau``
        (from a centre ``parallax`` off the blur camera's: ``at_depth``).

        ``backdrop`` (h,w,3 linear, already in this camera's pixel grid) replaces the scene's own.
        """
        w, h = size
        G = at_depth(G0, parallax, self.backdrop_depth)
        if backdrop is None and self.green_screen:
            key = G.tobytes() + bytes(f"{w}x{h}", "ascii")
            if key not in self._static_views:
                self._static_views[key] = self._warp_backdrop(G, 0.0, (w, h))
            img = self._static_views[key].copy()
        elif backdrop is None:
            img = self._warp_backdrop(G, tau, (w, h))
        else:
            img = backdrop.copy()
            spill = False
        alpha = np.zeros((h, w), np.float32)
        for obj in self.objects:
            G = at_depth(G0, parallax, obj.depth)
            Ginv = np.linalg.inv(G)
            A = obj.transform(tau)
            oh, ow = obj.mask.shape
            corners = np.array([[0, 0, 1], [ow - 1, 0, 1], [0, oh - 1, 1], [ow - 1, oh - 1, 1]], np.float64).T
            cam = Ginv @ A @ corners
            box = screen_box(cam[:2] / cam[2], size)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
            M = np.linalg.inv(A) @ G @ shift
            roi = (x1 - x0, y1 - y0)
            m = cv2.warpPerspective(obj.mask, M, roi, flags=WARP_FLAGS, borderMode=cv2.BORDER_CONSTANT)
            tex = cv2.warpPerspective(obj.texture, M, roi, flags=WARP_FLAGS, borderMode=cv2.BORDER_REPLICATE)
            if spill and obj.spill is not None and self.green_screen:
                rim = cv2.warpPerspective(obj.spill, M, roi, flags=WARP_FLAGS, borderMode=cv2.BORDER_CONSTANT)
                tex = tex + 0.6 * rim[..., None] * self.screen_colour[None, None]
            m3 = per_channel(m)
            sub = img[y0:y1, x0:x1]  # a view: the "over" is written into img
            keep = 1 - m3
            keep *= sub
            np.add(np.multiply(m3, tex, out=m3), keep, out=sub)
            a = alpha[y0:y1, x0:x1]
            alpha[y0:y1, x0:x1] = 1 - (1 - a) * (1 - m)
        return img, alpha
