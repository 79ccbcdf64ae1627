"""Lens distortion of the simulated cameras and the checkerboard calibration take.

Model: OpenCV's (``k1 k2 p1 p2 [k3]``) around a pinhole ``K``: the blur camera's has ``fx = fy =
FOCAL_FRACTION · width`` and the principal point at the frame centre, the sharp camera's is what
the rig's homography makes of it (``effective_pinhole``), and each lens is centred on its camera's
principal point, as a real lens is. A camera's *undistorted* pixel grid is the
one its map ``G`` (camera pixel -> canonical, see ``scene.py``) is defined on; the recorded pixel
``p_d`` shows the undistorted point ``p_u = K · undistort(K⁻¹ · p_d)``. So a distorted camera
renders the scene on an undistorted canvas large enough to hold every ``p_u`` and resamples it
once per frame through a fixed map. truth.json states each camera's ``(K, dist)`` as an
``rb2v.alignment.Lens`` with method "truth".

The calibration take (``RAW/calibration/<name>/`` with ``board.toml``) films a planar
checkerboard held in a sequence of poses in front of the rig (tilted up to about 35°, all over
the field of view), each held still for a moment: ``BoardScene`` renders it over the calibration
backdrop from its 3-D pose, seen by both cameras through the rig (canonical = the blur camera's
undistorted pixels, ``K_blur [r1 r2 t]`` maps the board plane in mm to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.linalg

from ..alignment import Lens
from ..errors import Rb2vError
from ..pixels import per_channel
from .config import BOARD_REACH
from .scene import BOARD_DEPTH_M, WARP_FLAGS, Scene, at_depth, screen_box

FOCAL_FRACTION = 0.8  # fx = fy = 0.8 * width: about 64° horizontal field of view
MAX_COEFFS = 8

# the board (board.toml): inner corners (cols, rows), square side in mm
BOARD_INNER = (9, 6)
BOARD_SQUARE_MM = 25.0
CHARUCO_MARKER_MM = 18.0  # ChArUco: the markers in the white squares, and their dictionary
CHARUCO_DICTIONARY = "DICT_5X5_100"
BOARD_POSES = 12
POSE_HOLD_S = 0.25  # the board is held still this long in each pose ...
POSE_MOVE_S = 0.15  # ... and moved to the next one in this time
BOARD_TEXELS_PER_MM = 3.0
TEXTURE_SIGMA_TEXELS = 0.45 * BOARD_TEXELS_PER_MM  # the least prefilter (the board seen up close)
PIXEL_SIGMA = 0.5  # camera pixels: the low-pass a pixel's area applies


def pinhole(width: int, height: int, focal_fraction: float = FOCAL_FRACTION) -> np.ndarray:
    f = focal_fraction * width
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], np.float64)


def pixel_scaling(sx: float, sy: float) -> np.ndarray:
    """3x3 map from a frame's pixels to those of the same frame resampled by (sx, sy), pixel centres kept:
    ``x' = sx (x + 1/2) - 1/2``. It commutes with mirror flips of either frame."""
    return np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]], np.float64)


def scale_lens(lens: Lens, S: np.ndarray, size: tuple[int, int]) -> Lens:
    """``lens`` for the frame resampled by ``pixel_scaling`` ``S`` to ``size``: distortion acts on
    normalised coordinates, so only the camera matrix changes."""
    if tuple(size) == tuple(lens.size):
        return lens
    K = S @ lens.K
    return Lens(tuple(tuple(float(v) for v in r) for r in K), lens.dist_coeffs, tuple(size), lens.method)


def effective_pinhole(G: np.ndarray, K_view: np.ndarray) -> np.ndarray:
    """The pinhole of a camera whose undistorted pixels map to a view of pinhole ``K_view`` by ``G``.

    The two share a centre of projection (a beam splitter), so ``G⁻¹ K_view = K R`` up to scale: the
    RQ factors give the camera's own ``K``. Its principal point is where a real lens is centred; it
    sits a few pixels from the frame's centre under the rig's homography. The skew (under 0.1 px
    for the drawn homographies) is dropped, as OpenCV's lens model has none.
    """
    R, _ = scipy.linalg.rq(np.linalg.inv(G) @ K_view)
    R = R * np.sign(np.diag(R))  # positive focal lengths (the rotation takes the signs)
    K = R / R[2, 2]
    K[0, 1] = 0.0
    return K


def check_coeffs(coeffs, what: str) -> tuple[float, ...]:
    """Distortion coefficients as a tuple (empty: no distortion); one-line error when unusable."""
    try:
        c = tuple(float(v) for v in (coeffs or ()))
    except (TypeError, ValueError):
        raise Rb2vError(f"simulate-rig: {what} must be numbers (k1 k2 p1 p2 k3), got {coeffs!r}") from None
    if len(c) > MAX_COEFFS or not all(math.isfinite(v) for v in c):
        raise Rb2vError(f"simulate-rig: {what} must be at most {MAX_COEFFS} finite numbers, got {coeffs!r}")
    if c and abs(c[0]) > 0.5:
        raise Rb2vError(f"simulate-rig: {what}: |k1| must be at most 0.5, got {c[0]}")
    return c


@dataclass(frozen=True)
class SimLens:
    """One simulated camera's lens: pinhole ``K`` plus OpenCV distortion ``dist``, for frames of ``size``."""

    K: np.ndarray
    dist: np.ndarray
    size: tuple[int, int]

    @classmethod
    def make(cls, coeffs, K: np.ndarray, width: int, height: int) -> SimLens | None:
        """``K``: the camera's pinhole, where the lens is centred. None when ``coeffs`` do not distort."""
        c = check_coeffs(coeffs, "distortion")
        if not any(c):
            return None
        dist = np.zeros(max(5, len(c)) if len(c) <= 5 else 8)
        dist[: len(c)] = c
        return cls(K, dist, (width, height))

    def to_lens(self, flip: str = "none") -> Lens:
        """The lens as ``rb2v.alignment.Lens`` states it: in the recorded pixels, after the camera's
        mirror ``flip``. The lens is centred on the unflipped principal point, so a flip mirrors the
        principal point, and the tangential term along the flipped axis changes sign."""
        K, dist = self.K.copy(), self.dist.copy()
        w, h = self.size
        if flip == "horizontal":
            K[0, 2], dist[3] = (w - 1) - K[0, 2], -dist[3]
        elif flip == "vertical":
            K[1, 2], dist[2] = (h - 1) - K[1, 2], -dist[2]
        return Lens(tuple(tuple(float(v) for v in r) for r in K), tuple(float(v) for v in dist), self.size, "truth")

    def undistort_points(self, pts: np.ndarray) -> np.ndarray:
        """Recorded pixels (N,2) -> undistorted pixels (iterative inverse, converged to < 1e-6 px)."""
        pts = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        return cv2.undistortPoints(pts, self.K, self.dist, None, None, self.K, crit).reshape(-1, 2)

    def distort_points(self, pts: np.ndarray) -> np.ndarray:
        return distort_points(self.K, self.dist, pts)

    def canvas(self) -> tuple[np.ndarray, tuple[int, int], tuple[np.ndarray, np.ndarray]]:
        """(shift, canvas size, (map_x, map_y)): the undistorted canvas that holds every recorded
        pixel's ``p_u`` (``shift`` maps canvas pixels to undistorted camera pixels) and the float32
        maps from the recorded grid into the canvas."""
        cached = getattr(self, "_canvas", None)
        if cached is not None:
            return cached
        w, h = self.size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        pu = self.undistort_points(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(h, w, 2)
        x0, y0 = math.floor(pu[..., 0].min()) - 2, math.floor(pu[..., 1].min()) - 2
        x1, y1 = math.ceil(pu[..., 0].max()) + 3, math.ceil(pu[..., 1].max()) + 3
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        maps = ((pu[..., 0] - x0).astype(np.float32), (pu[..., 1] - y0).astype(np.float32))
        out = (shift, (x1 - x0, y1 - y0), maps)
        object.__setattr__(self, "_canvas", out)
        return out

    def render(self, scene: Scene, G: np.ndarray, tau: float, backdrop: np.ndarray | None):
        """What the camera records (before its mirror flip) at world time ``tau``: linear RGB and coverage.

        ``backdrop`` is in the recorded grid: the foreground is rendered premultiplied on an empty
        canvas, resampled, and composited over it (the "over" operator is associative).
        """
        shift, csize, (mx, my) = self.canvas()
        if backdrop is None:
            img, a = scene.render(G @ shift, tau, csize)
            # a scene of no foreground (a calibration take's) covers nothing: its resampled coverage is zero too
            return _remap(img, mx, my), (_remap(a, mx, my) if a.any() else np.zeros(mx.shape, a.dtype))
        empty = np.zeros((csize[1], csize[0], 3), np.float32)
        fg, a = scene.render(G @ shift, tau, csize, backdrop=empty)
        fg, a = _remap(fg, mx, my), _remap(a, mx, my)
        return fg + per_channel(1 - a) * backdrop, a


def _remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def distort_points(K: np.ndarray, dist: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Undistorted pixels (N,2) -> recorded (distorted) pixels under OpenCV's model."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    n = np.linalg.solve(K, np.vstack([pts.T, np.ones(len(pts))]))
    obj = np.ascontiguousarray((n / n[2]).T.reshape(-1, 1, 3))
    out, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, np.asarray(dist, np.float64))
    return out.reshape(-1, 2)


# ---------------------------------------------------------------------- the calibration board
def board_toml(kind: str = "checkerboard", inner=BOARD_INNER, square_mm=BOARD_SQUARE_MM) -> str:
    text = (
        f"# simulated {kind} calibration take: a planar board moved in front of the rig\n"
        f'type = "{kind}"\n'
        f"inner_corners = [{inner[0]}, {inner[1]}]\n"
        f"square_mm = {square_mm}\n"
    )
    if kind == "charuco":
        text += f'marker_mm = {CHARUCO_MARKER_MM}\ndictionary = "{CHARUCO_DICTIONARY}"\n'
    return text


def board_seconds(poses: int | None = None) -> float:
    return (BOARD_POSES if poses is None else poses) * (POSE_HOLD_S + POSE_MOVE_S)


def _rodrigues(v) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(v, np.float64))[0]


class BoardScene:
    """A scene (the calibration backdrop) with a board held in front of it in several poses: a
    checkerboard, or a ChArUco board of the same squares (OpenCV's image of it, markers in the white
    squares)."""

    def __init__(
        self,
        scene: Scene,
        rng: np.random.Generator,
        K_canonical: np.ndarray,
        inner=BOARD_INNER,
        square_mm=BOARD_SQUARE_MM,
        poses: int | None = None,
        reach: float = BOARD_REACH,
        kind: str = "checkerboard",
    ):
        self.scene = scene
        self.green_screen = scene.green_screen
        self.inner, self.square = tuple(inner), float(square_mm)
        self.K = np.asarray(K_canonical, np.float64)
        cols, rows = self.inner
        s = BOARD_TEXELS_PER_MM
        # board plane: x right, y down, mm, origin at the top-left inner corner; a white quiet
        # zone of one square around the (cols+1) x (rows+1) squares
        self.x0, self.y0 = -2 * self.square, -2 * self.square
        bw, bh = (cols + 3) * self.square, (rows + 3) * self.square
        tw, th = int(round(bw * s)), int(round(bh * s))
        u = (np.arange(tw) + 0.5) / s + self.x0
        v = (np.arange(th) + 0.5) / s + self.y0
        cu = np.floor(u / self.square).astype(int)
        cv = np.floor(v / self.square).astype(int)
        inside = (cu[None, :] >= -1) & (cu[None, :] <= cols - 1) & (cv[:, None] >= -1) & (cv[:, None] <= rows - 1)
        black = ((cu[None, :] + cv[:, None]) % 2 == 0) & inside
        tex = np.where(black, 0.02, 0.75).astype(np.float32)
        if kind == "charuco":
            side = int(round(self.square * s))  # texels per square (a whole number keeps the edges on texels)
            # built here from OpenCV, not from rb2v.align.lens.Board: a wrong board definition there must show
            d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, CHARUCO_DICTIONARY))
            charuco = cv2.aruco.CharucoBoard((cols + 1, rows + 1), self.square, CHARUCO_MARKER_MM, d)
            squares = charuco.generateImage(((cols + 1) * side, (rows + 1) * side), marginSize=0, borderBits=1)
            tex[side : side * (rows + 2), side : side * (cols + 2)] = np.where(squares < 128, 0.02, 0.75)
        self.texture = tex  # grey, unfiltered: warped as one channel, composited into all three
        self._filtered: dict[float, np.ndarray] = {}
        self.mask = np.ones((th, tw), np.float32)
        self.tex_from_board = np.array([[s, 0, -self.x0 * s - 0.5], [0, s, -self.y0 * s - 0.5], [0, 0, 1]])
        self.poses = self._draw_poses(rng, BOARD_POSES if poses is None else poses, reach)

    def _draw_poses(self, rng: np.random.Generator, n: int, reach: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Poses (rvec, t in mm) spread over the field of view: board centres on a 3x3 grid, random
        tilts; the whole board (with its quiet zone) stays inside the frame with a margin."""
        cols, rows = self.inner
        centre_mm = np.array([(cols - 1) * self.square / 2, (rows - 1) * self.square / 2, 0.0])
        outline = np.array(
            [[self.x0, self.y0], [-self.x0 + (cols - 1) * self.square, self.y0]]
            + [
                [self.x0, -self.y0 + (rows - 1) * self.square],
                [-self.x0 + (cols - 1) * self.square, -self.y0 + (rows - 1) * self.square],
            ]
        )
        f = self.K[0, 0]
        w, h = 2 * self.K[0, 2] + 1, 2 * self.K[1, 2] + 1
        margin = 0.06 * w
        steps = (0.5 - reach, 0.5, 0.5 + reach)
        grid = [(gx, gy) for gy in steps for gx in steps]
        order = rng.permutation(len(grid))
        poses = []
        for i in range(n):
            gx, gy = grid[order[i % len(grid)]]
            for attempt in range(200):
                shrink = 1.0 + 0.01 * attempt  # farther away until it fits
                z = rng.uniform(1.0, 1.3) * shrink * f * (cols + 3) * self.square / (0.62 * w)
                tilt = np.deg2rad(rng.uniform(15, 38))
                axis = rng.uniform(0, 2 * np.pi)
                rvec = np.array([tilt * np.cos(axis), tilt * np.sin(axis), rng.uniform(-0.3, 0.3)])
                R = _rodrigues(rvec)
                px = np.array([(gx + rng.uniform(-0.05, 0.05)) * w, (gy + rng.uniform(-0.05, 0.05)) * h])
                ray = np.linalg.solve(self.K, np.array([px[0], px[1], 1.0]))
                t = ray * z - R @ centre_mm  # the board's centre on that pixel's ray at depth z
                Hb = self.K @ np.column_stack([R[:, 0], R[:, 1], t])
                q = Hb @ np.vstack([outline.T, np.ones(4)])
                q = q[:2] / q[2]
                inside = (q[0] > margin) & (q[0] < w - margin) & (q[1] > margin) & (q[1] < h - margin)
                if inside.all():
                    break
            poses.append((rvec, t))
        return poses

    def pose(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        period = POSE_HOLD_S + POSE_MOVE_S
        i = int(np.clip(np.floor(tau / period), 0, len(self.poses) - 1))
        phase = tau - i * period
        if phase <= POSE_HOLD_S or i == len(self.poses) - 1:
            return self.poses[i]
        s = (phase - POSE_HOLD_S) / POSE_MOVE_S
        s = s * s * (3 - 2 * s)  # smoothstep
        (r0, t0), (r1, t1) = self.poses[i], self.poses[i + 1]
        return r0 + s * (r1 - r0), t0 + s * (t1 - t0)

    def board_to_canonical(self, tau: float) -> np.ndarray:
        rvec, t = self.pose(tau)
        R = _rodrigues(rvec)
        return self.K @ np.column_stack([R[:, 0], R[:, 1], t])

    def _prefiltered(self, M: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The texture low-passed for the minification ``M`` (camera pixel -> texel) shows at the board's
        centre on screen: a Gaussian of half a camera pixel, as a pixel's area integrates the light (a
        board held far away is otherwise aliased, and its corners move by tenths of a pixel)."""
        x, y = (cols[0] + cols[-1]) / 2, (rows[0] + rows[-1]) / 2
        p = M @ np.array([[x, x + 1, x], [y, y, y + 1], [1.0, 1.0, 1.0]])
        p = p[:2] / p[2]
        texels_per_px = math.sqrt(abs(np.linalg.det(np.column_stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]]))))
        sigma = max(TEXTURE_SIGMA_TEXELS, round(4 * PIXEL_SIGMA * texels_per_px) / 4)  # cached per quarter texel
        if sigma not in self._filtered:
            self._filtered[sigma] = cv2.GaussianBlur(self.texture, (0, 0), sigma)
        return self._filtered[sigma]

    def render(
        self,
        G: np.ndarray,
        tau: float,
        size: tuple[int, int],
        backdrop=None,
        spill: bool = True,
        parallax: np.ndarray | None = None,
    ):
        """``Scene.render`` with the board over the backdrop (both at ``BOARD_DEPTH_M``)."""
        img, alpha = self.scene.render(G, tau, size, backdrop=backdrop, spill=spill, parallax=parallax)
        G = at_depth(G, parallax, BOARD_DEPTH_M)
        # camera pixel -> canonical -> board mm -> texture pixel
        M = self.tex_from_board @ np.linalg.inv(self.board_to_canonical(tau)) @ G
        # warped only inside the box around the board's outline on screen (2 px beyond it): a full frame's warps
        # of mask and texture took most of a board take's time
        th, tw = self.mask.shape
        outline = np.linalg.inv(M) @ np.array(
            [[-0.5, tw - 0.5, -0.5, tw - 0.5], [-0.5, -0.5, th - 0.5, th - 0.5], [1] * 4]
        )
        # the board reaching behind the camera: no box bounds it
        box = (0, 0, *size) if (outline[2] <= 0).any() else screen_box(outline[:2] / outline[2], size)
        if box is None:
            return img, alpha
        x0, y0, x1, y1 = box
        Mroi = M @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        roi = (x1 - x0, y1 - y0)
        m = cv2.warpPerspective(self.mask, Mroi, roi, flags=WARP_FLAGS, borderMode=cv2.BORDER_CONSTANT)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if len(rows) == 0:
            return img, alpha
        tex = cv2.warpPerspective(
            self._prefiltered(M, rows + y0, cols + x0), Mroi, roi, flags=WARP_FLAGS, borderMode=cv2.BORDER_CONSTANT
        )
        # the "over" only where the board covers a pixel: elsewhere it leaves img as it is
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        m, under = m[box], img[y0:y1, x0:x1][box]
        np.multiply(under, per_channel(1 - m), out=under)
        np.add(under, per_channel(m * tex[box]), out=under)
        return img, alpha
