"""Lens intrinsics and distortion: calibration from board takes, undistortion before the homography.

A homography cannot absorb two different lens distortions, so when the lenses are known both
streams are undistorted first (OpenCV model, the new camera matrix is the calibrated one: the
undistorted frame keeps the recorded size and focal length) and everything the align stage does
afterwards — features, ECC, exposure timing, the crop — happens in undistorted pixels.

Where the lenses come from, per take (``take_lenses``):
1. the take's calibration take (take.toml ``calibration = "<name>"``) when
   ``RAW/calibration/<name>/board.toml`` says it films a board: each camera is calibrated on it
   (``calibrate_take``, run by the calibration take's unit of work) and the intrinsics are
   stored in the output's calibration folder,
   ``OUT/calibration/<name>/intrinsics.json`` ({"schema": "rb2v.intrinsics/1", "board": {...},
   "blur": Lens, "sharp": Lens, "views": ...}); RAW stays read-only. A finished file whose input
   fingerprint matches is reused.
2. otherwise, with the rig's ``lens.undistort = true``, the rig's ``[lens]`` intrinsics (fx, fy, cx,
   cy for the rig's camera size, scaled to the recorded size; ``dist``), the same for both cameras.
3. otherwise none: frames are used as recorded (``lens: null`` in alignment.json).

The sharp camera is calibrated on its raw frames, mirror and all: a mirrored view of a board is a
perspective view of a mirrored board, so each view's object points take the handedness its
detected grid shows. Its lens is therefore in raw sharp pixels, applied before the flip.

board.toml: ``type = "checkerboard"`` (or ``"charuco"``), ``inner_corners = [cols, rows]``,
``square_mm``; charuco also ``marker_mm`` and ``dictionary`` (an OpenCV ``DICT_*`` name).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from ..alignment import Alignment, Crop, Lens
from ..errors import Rb2vError
from ..fsutil import write_json_atomic
from ..io.video import VideoSource, decode_pipe
from ..progress import say

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BOARD_FILE = "board.toml"
INTRINSICS_FILE = "intrinsics.json"
INTRINSICS_SCHEMA = "rb2v.intrinsics/1"
CALIBRATION_VERSION = 7  # bump when a change alters calibration results
MAX_TRIES = 60  # frame pairs tried per camera
MAX_VIEWS = 24  # views that go into one calibration
MIN_VIEWS = 6
STILL_PX = 0.35  # a view counts when its corners move less than this (median) to the next frame
MAX_RMS_PX = 1.5  # reprojection error above which a calibration is refused
SIGNIFICANT = 4.0  # a distortion term below this many standard deviations is not estimated (fixed at 0)
# A significant term (k2, the tangential pair) is kept only where the board's corners need it: if the
# model without it maps the region they covered to within this (after the best homography, which the
# alignment absorbs anyway), the term changes the map only where no corner constrained it. Beyond the
# board's hull a fitted term only extrapolates, and the detector's systematic errors can pass OpenCV's
# test. Measured on 39 simulated sessions (boards over 38-60 % of the frame; 35 with k2 lenses, 4 k1-only;
# each lens centred on its camera's principal point) with the saddle-refined corners, the crop corners'
# worst / mean error: 0.365 / 0.104 px at 0.03, 0.366 / 0.118 at 0.02 (a k1-only session 0.366 px: a
# spurious k2), 0.394 / 0.140 at 0.05. The same seeds simulated with the sharp lens centred on the frame,
# which made its tangential pair real: 0.284 / 0.123, 0.284 / 0.124, 0.330 / 0.143; 0.08 was worse on the
# first 15 (0.752 px worst). With cornerSubPix corners alone 0.05 was the best: 0.549 / 0.175.
AGREE_PX = 0.03
COVERED_STEP = 4  # px: the grid on which the board's covered region is sampled
SUBPIX_HALF_WINDOW = 5  # px: cornerSubPix's half window on a board seen large ...
SUBPIX_REACH = 0.5  # ... and at most this fraction of the gap between neighbouring corners
# Saddle refinement: the image, smoothed by this fraction of the half window, fitted by a quadratic
# under Gaussian weights of this fraction (chosen on clean and noisy renders of 6 simulated board takes)
SADDLE_SMOOTH = 0.25
SADDLE_WEIGHT = 0.7
SADDLE_ITERATIONS = 5
# ChArUco: the saddle fit's window reaches at most this fraction of the way from a corner to the markers
# (0.7 and 1.0 measured alike on 640x544 renders; on 1280x1088 ones 0.037 against 0.075 px worst)
CHARUCO_MARGIN_REACH = 0.7


# ---------------------------------------------------------------------- board.toml
@dataclasses.dataclass(frozen=True)
class Board:
    type: str
    cols: int
    rows: int
    square_mm: float
    marker_mm: float | None = None
    dictionary: str | None = None
    source: str = BOARD_FILE

    def to_json(self) -> dict:
        d = {"type": self.type, "inner_corners": [self.cols, self.rows], "square_mm": self.square_mm}
        if self.type == "charuco":
            d |= {"marker_mm": self.marker_mm, "dictionary": self.dictionary}
        return d

    def object_points(self) -> np.ndarray:
        """Inner corners in mm (row-major, x along cols), z = 0."""
        g = np.mgrid[0 : self.rows, 0 : self.cols].astype(np.float32)
        return np.stack([g[1].ravel(), g[0].ravel(), np.zeros(self.cols * self.rows, np.float32)], 1) * np.float32(
            self.square_mm
        )

    def charuco(self):
        name = self.dictionary or ""
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
        # a ChArUco board of N x M squares has (N-1) x (M-1) inner corners
        return cv2.aruco.CharucoBoard((self.cols + 1, self.rows + 1), self.square_mm, self.marker_mm, d)


def read_board(folder: str | Path) -> Board | None:
    """The folder's board.toml (None when there is none); a bad file is a one-line error naming it."""
    path = Path(folder) / BOARD_FILE
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise Rb2vError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise Rb2vError(f"{path}: cannot read: {e.strerror}") from None

    def bad(msg: str):
        return Rb2vError(f"{path}: {msg}")

    known = {"type", "inner_corners", "square_mm", "marker_mm", "dictionary", "notes"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise bad(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")
    kind = d.get("type")
    if kind not in ("checkerboard", "charuco"):
        raise bad(f'type must be "checkerboard" or "charuco", got {kind!r}')
    inner = d.get("inner_corners")
    if (
        not isinstance(inner, list)
        or len(inner) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in inner)
        or min(inner) < 2
    ):
        raise bad(f"inner_corners must be [cols, rows], two integers >= 2, got {inner!r}")
    square = d.get("square_mm")
    if isinstance(square, bool) or not isinstance(square, (int, float)) or not square > 0:
        raise bad(f"square_mm must be a positive number (mm), got {square!r}")
    marker = dictionary = None
    if kind == "charuco":
        marker, dictionary = d.get("marker_mm"), d.get("dictionary")
        if isinstance(marker, bool) or not isinstance(marker, (int, float)) or not 0 < marker < square:
            raise bad(f"marker_mm must be a positive number smaller than square_mm, got {marker!r}")
        if not isinstance(dictionary, str) or not dictionary.startswith("DICT_") or not hasattr(cv2.aruco, dictionary):
            raise bad(f'dictionary must name an OpenCV ArUco dictionary such as "DICT_5X5_100", got {dictionary!r}')
        marker = float(marker)
    elif inner[0] == inner[1]:
        raise bad(f"inner_corners {inner}: a square checkerboard has no unique orientation; use one with cols != rows")
    return Board(kind, int(inner[0]), int(inner[1]), float(square), marker, dictionary, str(path))


# ---------------------------------------------------------------------- detection
def detect(grey: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray] | None:
    """(image points (N,2) float32, object point ids (N,)) of the board in a grey uint8 frame, or None.

    Checkerboards: OpenCV's detector (with its fast check, so frames without the board cost little),
    ``findChessboardCornersSB`` as the fallback for views the first does not find, then
    ``cornerSubPix`` on either (on simulated boards seen small, SB's own corners were up to 1.0 px off,
    0.09 px once refined) and the saddle fit of ``refine_saddles``.
    """
    if board.type == "charuco":
        return _detect_charuco(grey, board)
    size = (board.cols, board.rows)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
    ok, corners = cv2.findChessboardCorners(grey, size, flags=flags)
    if not ok:
        ok, corners = cv2.findChessboardCornersSB(grey, size, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not ok:
            return None
    ids = np.arange(board.cols * board.rows, dtype=np.int32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-3)
    half = _half_window(_corner_gap(corners.reshape(-1, 2), ids, board.cols))
    corners = cv2.cornerSubPix(grey, corners, (half, half), (-1, -1), crit)
    corners, _ = refine_saddles(grey, corners.reshape(-1, 2), half)  # a failed fit keeps cornerSubPix's
    return corners.astype(np.float32), ids


def _detect_charuco(grey: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray] | None:
    """OpenCV's ChArUco detection, looking again for the markers the board's layout says are missing
    (on a simulated calibration take's frames, decoded: frames found 53 -> 87 of 120 on one camera, 50 ->
    119 of 128 on the other, corners per frame 18 -> 54), on the frame mirrored when it finds nothing as
    recorded (the camera behind the beam splitter sees the markers mirrored, and a mirrored marker
    decodes as no marker); then the saddle fit in a window kept clear of the markers, and a corner with
    no saddle within reach is dropped (OpenCV put it elsewhere, up to 4.8 px off: on a marker's corner).
    On simulated renders (2 grey levels of noise, squares 14-35 px) OpenCV's corners were 0.09-0.19 px
    rms off (0.9 px worst), these 0.016-0.022 (worst 0.07 px with squares of 16 px or more, 0.42 px
    under 16); a window reaching the markers, 0.44 rms (2.7 worst)."""
    params = cv2.aruco.CharucoParameters()
    params.tryRefineMarkers = True  # look again for the markers the board's layout says are missing
    det = cv2.aruco.CharucoDetector(board.charuco(), params)
    for mirrored in (False, True):
        corners, ids, _, _ = det.detectBoard(cv2.flip(grey, 1) if mirrored else grey)
        if ids is not None and len(ids) >= 8:
            break
    else:
        return None
    points, ids = corners.reshape(-1, 2).astype(np.float64), ids.ravel().astype(np.int32)
    if mirrored:
        points[:, 0] = grey.shape[1] - 1 - points[:, 0]
    gap = _corner_gap(points, ids, board.cols)
    if gap is None:  # no two neighbouring corners: no scale for a window clear of the markers
        return None
    margin = (board.square_mm - board.marker_mm) / (2 * board.square_mm)  # white around a marker, in squares
    half = max(min(_half_window(gap), int(np.floor(CHARUCO_MARGIN_REACH * margin * gap))), 2)
    points, saddle = refine_saddles(grey, points, half)
    # no saddle within reach: OpenCV put the corner elsewhere (on a marker's corner, measured up to 4.8 px off)
    if saddle.sum() < 8:
        return None
    return points[saddle].astype(np.float32), ids[saddle]


def _corner_gap(points: np.ndarray, ids: np.ndarray, cols: int) -> float | None:
    """The least distance (px) between two detected corners that are neighbours on the board's grid."""
    where = {int(i): k for k, i in enumerate(ids)}
    gaps = [
        np.hypot(*(points[k] - points[where[j]]))
        for k, i in enumerate(ids)
        for j in ((i + 1) if (i + 1) % cols else None, i + cols)
        if j in where
    ]
    return float(min(gaps)) if gaps else None


def _half_window(gap: float | None) -> int:
    """The refinement's half window for corners ``gap`` px apart: 5 px, less on a board seen small, so
    that the window reaches at most half-way to the nearest neighbouring corner (a window over two
    corners pulls each toward the other: on simulated boards with corners 5-10 px apart, errors up to
    0.6 px instead of 0.13)."""
    return int(np.clip(np.floor(SUBPIX_REACH * gap), 2, SUBPIX_HALF_WINDOW)) if gap else SUBPIX_HALF_WINDOW


def refine_saddles(grey: np.ndarray, corners: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Checkerboard corners (N, 2) moved to the saddle point of a quadratic fitted to the smoothed
    image around each (Lucchese and Mitra 2002). On simulated boards seen small (6 board takes, 2 grey
    levels of noise) ``cornerSubPix``'s corners were 0.052 px rms off (0.155 worst), these 0.013 (0.060).
    A corner whose fit is not a saddle, or wants to move more than half the window, keeps its place.
    Returns the corners and which of them were moved to a saddle."""
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), max(SADDLE_SMOOTH * half, 0.7))
    ys, xs = np.mgrid[-half : half + 1, -half : half + 1].reshape(2, -1).astype(np.float64)
    design = np.stack([xs * xs, xs * ys, ys * ys, xs, ys, np.ones_like(xs)], axis=1)
    weight = np.sqrt(np.exp(-(xs * xs + ys * ys) / (2 * (SADDLE_WEIGHT * half) ** 2)))
    solve = np.linalg.pinv(design * weight[:, None]) * weight  # patch -> quadratic's coefficients
    out = corners.astype(np.float64)
    saddle = np.zeros(len(out), dtype=bool)
    for k in range(len(out)):
        x, y = out[k]
        converged = False
        for _ in range(SADDLE_ITERATIONS):
            patch = cv2.getRectSubPix(smooth, (2 * half + 1, 2 * half + 1), (float(x), float(y)))
            a, b, c, d, e, _f = solve @ patch.ravel()
            det = 4 * a * c - b * b  # of the Hessian [[2a, b], [b, 2c]], solved in closed form below
            if det >= 0:  # an extremum or a ridge, not a saddle
                break
            step = np.array([-2 * c * d + b * e, b * d - 2 * a * e]) / det
            if np.abs(step).max() > half / 2:
                break
            x, y = x + step[0], y + step[1]
            if np.abs(step).max() < 1e-3:
                converged = True
                break
        else:
            converged = True  # every fit a saddle within reach, the last step still over 1e-3 px
        within = np.hypot(x - corners[k, 0], y - corners[k, 1]) <= half / 2
        if within:
            out[k] = x, y
        saddle[k] = converged and within
    return out, saddle


def _object_points(board: Board, pts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The view's object points, mirrored when the detected grid's handedness is mirrored (a camera
    behind a mirror, or a detector that ordered the grid the other way round)."""
    obj = board.object_points()[ids].copy()
    # sign of the image-space area of the object's (x, y) frame, from a least-squares affine fit
    A = np.hstack([obj[:, :2], np.ones((len(obj), 1), np.float32)])
    sol, *_ = np.linalg.lstsq(A, pts.astype(np.float64), rcond=None)
    if np.linalg.det(sol[:2].T) < 0:
        obj[:, 0] = (board.cols - 1) * board.square_mm - obj[:, 0]
    return obj


def _grey_frames(src: VideoSource, wanted: set[int]):
    """(index, grey uint8 frame) of the wanted frames, decoding the stream straight through (a
    calibration take is short, and the wanted frames are dense)."""
    offset = 0
    for info in src.chapters:
        if any(offset <= i < offset + info.frames for i in wanted):
            j = offset
            for chunk in decode_pipe(info, 0, info.frames, 16, vf="format=gray", channels=1):
                for frame in chunk:
                    if j in wanted:
                        yield j, frame
                    j += 1
        offset += info.frames


@dataclasses.dataclass
class View:
    index: int
    points: np.ndarray  # (N,2) image points
    ids: np.ndarray  # (N,) object point ids


def collect_views(src: VideoSource, board: Board, max_tries: int = MAX_TRIES) -> tuple[list[View], int]:
    """Detections in frames where the board holds still: frames are decoded in pairs (i, i+1)
    spread over the take, a view is kept when both detect it and its corners moved less than
    ``STILL_PX`` (median) in between (motion blur and rolling shutter skew the corners).
    Returns (views, pairs tried)."""
    n = src.frames
    starts = np.unique(np.linspace(0, max(n - 2, 0), min(max_tries, max(n - 1, 1))).round().astype(int))
    wanted = sorted({int(i) for s in starts for i in (s, s + 1) if i < n})
    found: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
    for i, frame in _grey_frames(src, set(wanted)):
        found[i] = detect(frame, board)
    views = []
    for s in starts:
        a, b = found.get(int(s)), found.get(int(s) + 1)
        if a is None or b is None:
            continue
        common, ia, ib = np.intersect1d(a[1], b[1], return_indices=True)
        if len(common) < 8:
            continue
        if float(np.median(np.linalg.norm(a[0][ia] - b[0][ib], axis=1))) < STILL_PX:
            views.append(View(int(s), a[0], a[1]))
    return views, len(starts)


def select_views(views: list[View], size: tuple[int, int], count: int = MAX_VIEWS) -> list[View]:
    """Up to ``count`` views spread over position, size and tilt (farthest-point sampling)."""
    if len(views) <= count:
        return views
    w, h = size
    feats = []
    for v in views:
        c = v.points.mean(axis=0)
        spread = v.points.std(axis=0)
        cov = np.cov(v.points.T)
        ev = np.linalg.eigvalsh(cov)
        feats.append([c[0] / w, c[1] / h, spread[0] / w, spread[1] / h, math.sqrt(ev[0] / max(ev[1], 1e-9))])
    f = np.asarray(feats)
    f = (f - f.mean(0)) / (f.std(0) + 1e-9)
    chosen = [int(np.argmax(np.linalg.norm(f - f.mean(0), axis=1)))]
    d = np.linalg.norm(f - f[chosen[0]], axis=1)
    while len(chosen) < count:
        i = int(np.argmax(d))
        chosen.append(i)
        d = np.minimum(d, np.linalg.norm(f - f[i], axis=1))
    return [views[i] for i in sorted(chosen)]


def covered_points(views: list[View], size: tuple[int, int], step: int = COVERED_STEP) -> np.ndarray:
    """Pixels (N,2) on a ``step`` grid inside the convex hull of every corner of the views: the part
    of the frame the calibration measured."""
    hull = cv2.convexHull(np.concatenate([v.points for v in views]).astype(np.float32))
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    ys, xs = np.nonzero(mask[::step, ::step])
    return np.stack([xs, ys], axis=1).astype(np.float64) * step


def map_difference(a: Lens, b: Lens, pts: np.ndarray) -> float:
    """Largest distance (px) between two lenses' undistortions of ``pts`` once the best homography
    between them is applied (focal length, principal point and pose trade off against it)."""
    ua, ub = undistort(a, pts), undistort(b, pts)
    H, _ = cv2.findHomography(ua, ub, 0)
    return float(np.linalg.norm(cv2.perspectiveTransform(ua.reshape(-1, 1, 2), H).reshape(-1, 2) - ub, axis=1).max())


def calibrate_views(
    views: list[View], board: Board, size: tuple[int, int], what: str, agree_px: float = AGREE_PX
) -> tuple[Lens, dict]:
    """OpenCV calibration on the views: k1 k2 p1 p2 (k3 fixed at 0), then the terms the views cannot
    determine are fixed at 0 and the calibration redone: k2 when |k2| < ``SIGNIFICANT`` standard
    deviations (OpenCV's estimate), the tangential pair when both are. An undetermined term only
    trades off against k1 and bends the map where no corner constrained it. A term that passes is
    still dropped when the model without it maps the board's covered region within ``agree_px`` (this
    camera's pixels; ``AGREE_PX`` of the output's, ``agree_threshold``) of the model with it: a
    detector's small systematic errors pass OpenCV's test, and beyond the corners the term only
    extrapolates.
    The worst views (per-view error above 3x the median) are dropped once."""
    if len(views) < MIN_VIEWS:
        raise Rb2vError(
            f"{what}: the board was found still in {len(views)} frame(s), need at least {MIN_VIEWS} "
            f"(hold it still in several poses, tilted, all over the view"
            + (", near enough that its markers are sharp: 14 px squares or more)" if board.type == "charuco" else ")")
        )
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)

    def run(vs: list[View], flags: int):
        obj = [_object_points(board, v.points, v.ids) for v in vs]
        img = [v.points.reshape(-1, 1, 2) for v in vs]
        return cv2.calibrateCameraExtended(obj, img, size, None, None, flags=flags, criteria=crit)

    flags = cv2.CALIB_FIX_K3
    rms, K, dist, _, _, sd, _, per_view = run(views, flags)
    per_view = np.asarray(per_view).ravel()
    keep = per_view <= 3 * np.median(per_view) + 0.05
    dropped = int((~keep).sum())
    if dropped and keep.sum() >= MIN_VIEWS:
        views = [v for v, k in zip(views, keep) if k]
        rms, K, dist, _, _, sd, _, per_view = run(views, flags)
    d, sd = np.asarray(dist).ravel(), np.asarray(sd).ravel()[4:8]  # sd: fx fy cx cy k1 k2 p1 p2 …
    z = np.abs(d[:4]) / np.maximum(sd, 1e-12)
    terms = {"k2": (cv2.CALIB_FIX_K2, z[1]), "p1 p2": (cv2.CALIB_ZERO_TANGENT_DIST, max(z[2], z[3]))}
    for flag, score in terms.values():
        if score < SIGNIFICANT:
            flags |= flag
    if flags != cv2.CALIB_FIX_K3:
        rms, K, dist, *_ = run(views, flags)

    def as_lens(rms, K, dist) -> Lens:
        K = tuple(tuple(float(v) for v in r) for r in K)
        dist = tuple(float(v) for v in np.asarray(dist).ravel())
        return Lens(K, dist, (int(size[0]), int(size[1])), "calibrated", float(rms))

    lens = as_lens(rms, K, dist)
    covered = covered_points(views, size)
    info = {"views": len(views), "dropped": dropped, "z": [round(float(v), 2) for v in z]}
    grid = math.ceil(size[0] / COVERED_STEP) * math.ceil(size[1] / COVERED_STEP)
    info["coverage"] = round(len(covered) / grid, 3)  # of the frame
    info["agree_px"] = {}  # per significant term: how differently the board's hull is mapped without it
    for name, (flag, _) in terms.items():
        if not flags & flag:
            reduced = as_lens(*run(views, flags | flag)[:3])
            info["agree_px"][name] = round(map_difference(lens, reduced, covered), 4)
            if info["agree_px"][name] <= agree_px:
                flags, lens = flags | flag, reduced
    model = ["k1"] + [t for name, (flag, _) in terms.items() if not flags & flag for t in name.split()]
    if not np.isfinite(lens.rms_px) or lens.rms_px > MAX_RMS_PX:
        raise Rb2vError(f"{what}: calibration failed (reprojection error {lens.rms_px:.2f} px over {len(views)} views)")
    return lens, {**info, "model": model, "frames": [v.index for v in views]}


def agree_threshold(width: int, blur_width: int) -> float:
    """``AGREE_PX`` in a camera's own pixels: it is meant in the output's, the blur camera's, so a sharp
    camera recording fewer pixels (1080p beside 2.7K) judges its terms by a proportionally smaller one."""
    return AGREE_PX * width / blur_width


def calibrate_camera(src: VideoSource, board: Board, what: str, agree_px: float = AGREE_PX) -> tuple[Lens, dict]:
    views, tried = collect_views(src, board)
    chosen = select_views(views, (src.width, src.height))
    lens, info = calibrate_views(chosen, board, (src.width, src.height), f"{what} ({len(views)} still views)", agree_px)
    return lens, {**info, "still_views": len(views), "pairs_tried": tried, "agree_threshold_px": round(agree_px, 4)}


# ---------------------------------------------------------------------- per session
def _fingerprint(src: VideoSource) -> list[dict]:
    out = []
    for p in src.paths:
        st = p.stat()
        out.append({"name": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def calibrate_take(take, out_folder: Path) -> dict[str, Lens]:
    """Both cameras' lenses from a board calibration take (``discover.Take``), stored in
    ``out_folder/intrinsics.json``; a stored file with the same inputs is reused."""
    board = read_board(take.folder)
    if board is None:
        raise Rb2vError(f"{take.folder}: no {BOARD_FILE}: not a board calibration take")
    inputs = {
        "blur": _fingerprint(take.blur),
        "sharp": _fingerprint(take.sharp),
        "board": board.to_json(),
        "version": CALIBRATION_VERSION,
    }
    path = Path(out_folder) / INTRINSICS_FILE
    stored = read_intrinsics(path, quiet=True)
    if stored is not None and stored[1].get("inputs") == json.loads(json.dumps(inputs)):
        return stored[0]
    lenses, views = {}, {}
    for cam, src in (("blur", take.blur), ("sharp", take.sharp)):
        agree = agree_threshold(src.width, take.blur.width)
        lenses[cam], views[cam] = calibrate_camera(src, board, f"{take.folder}: {cam} camera", agree)
    write_json_atomic(
        path,
        {
            "schema": INTRINSICS_SCHEMA,
            "board": board.to_json(),
            **{c: v.to_json() for c, v in lenses.items()},
            "views": views,
            "inputs": inputs,
        },
    )
    said = (
        f"{c} rms {lenses[c].rms_px:.3f} px ({views[c]['views']} views, board over {100 * views[c]['coverage']:.0f} % "
        f"of the frame, {' '.join(views[c]['model'])})"
        for c in ("blur", "sharp")
    )
    say(f"calibration {take.subject}: {', '.join(said)} -> {path}")
    return lenses


def read_intrinsics(path: str | Path, quiet: bool = False) -> tuple[dict[str, Lens], dict] | None:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        if d.get("schema") != INTRINSICS_SCHEMA:
            raise Rb2vError(f"{path}: unknown schema {d.get('schema')!r}")
        return {c: Lens.from_json(d[c], f"{path}: {c}") for c in ("blur", "sharp")}, d
    except FileNotFoundError:
        if quiet:
            return None
        raise Rb2vError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, Rb2vError) as e:
        if quiet:
            return None
        raise Rb2vError(f"{path}: not valid intrinsics ({e})") from None


def rig_lenses(rig, blur: VideoSource, sharp: VideoSource) -> dict[str, Lens] | None:
    """The rig file's ``[lens]`` intrinsics for both cameras (None unless ``undistort = true``)."""
    ls = rig.lens
    if not ls.undistort:
        return None
    own = {"blur": ls.intrinsics_blur, "sharp": ls.intrinsics_sharp}
    if (ls.fx <= 0 or ls.fy <= 0) and not all(own.values()):
        raise Rb2vError(
            f"rig {rig.name}: lens.undistort = true but no intrinsics: give lens.fx, fy, cx, cy, dist "
            "(or intrinsics_blur and intrinsics_sharp) or a board calibration take "
            "(RAW/calibration/<name>/board.toml named in take.toml)"
        )
    out = {}
    for cam, src, spec in (("blur", blur, rig.blur), ("sharp", sharp, rig.sharp)):
        fx, fy, cx, cy = own[cam] or (ls.fx, ls.fy, ls.cx, ls.cy)
        sx, sy = src.width / spec.width, src.height / spec.height
        cx = cx if cx > 0 else (spec.width - 1) / 2
        cy = cy if cy > 0 else (spec.height - 1) / 2
        K = ((fx * sx, 0.0, (cx + 0.5) * sx - 0.5), (0.0, fy * sy, (cy + 0.5) * sy - 0.5), (0.0, 0.0, 1.0))
        dist = (ls.dist_blur if cam == "blur" else ls.dist_sharp) or ls.dist
        out[cam] = Lens(K, tuple(float(v) for v in dist) or (0.0,) * 5, (src.width, src.height), "rig")
    return out


def check_size(lenses: dict[str, Lens], blur: VideoSource, sharp: VideoSource, where) -> None:
    for cam, src in (("blur", blur), ("sharp", sharp)):
        if tuple(lenses[cam].size) != (src.width, src.height):
            raise Rb2vError(
                f"{where}: the {cam} camera's intrinsics are for {lenses[cam].size[0]}x{lenses[cam].size[1]} "
                f"frames, the take's are {src.width}x{src.height}"
            )


# ---------------------------------------------------------------------- geometry
def _coeffs(lens: Lens) -> np.ndarray:
    """The distortion coefficients zero-padded to a length OpenCV takes (4, 5, 8, 12 or 14)."""
    d = lens.dist.ravel()
    n = next(k for k in (4, 5, 8, 12, 14) if k >= len(d)) if len(d) <= 14 else len(d)
    return np.concatenate([d, np.zeros(n - len(d))])


def distort(lens: Lens, pts: np.ndarray) -> np.ndarray:
    """Undistorted pixels (N,2) -> recorded pixels."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    K = lens.K
    n = np.linalg.solve(K, np.vstack([pts.T, np.ones(len(pts))]))
    obj = np.ascontiguousarray((n / n[2]).T.reshape(-1, 1, 3))
    out, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), K, _coeffs(lens))
    return out.reshape(-1, 2)


def undistort(lens: Lens, pts: np.ndarray) -> np.ndarray:
    """Recorded pixels (N,2) -> undistorted pixels (new camera matrix = the lens's own)."""
    pts = np.asarray(pts, np.float64).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    return cv2.undistortPoints(pts, lens.K, _coeffs(lens), None, None, lens.K, crit).reshape(-1, 2)


@functools.lru_cache(maxsize=16)
def _undistort_maps(lens: Lens, size: tuple[int, int], scale: float = 1.0):
    """float32 maps of an undistorted image of ``size`` (at ``scale`` of the lens's resolution)
    into the recorded one at the same scale."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    full = np.stack([(xs.ravel() + 0.5) / scale - 0.5, (ys.ravel() + 0.5) / scale - 0.5], 1)
    src = (distort(lens, full) + 0.5) * scale - 0.5
    return src[:, 0].reshape(h, w).astype(np.float32), src[:, 1].reshape(h, w).astype(np.float32)


def undistort_image(img: np.ndarray, lens: Lens, scale: float = 1.0) -> np.ndarray:
    """An image (grey or colour, any dtype OpenCV remaps) as the undistorted camera sees it; 0 outside."""
    mx, my = _undistort_maps(lens, (int(img.shape[1]), int(img.shape[0])), float(scale))
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def undistort_pairs(pairs, lenses: dict[str, Lens] | None) -> None:
    """Undistort loaded ``geometry.FramePair`` s in place (blur frame; synthetic blur in raw sharp pixels)."""
    if not lenses:
        return
    for p in pairs:
        if p.blur is not None:
            p.blur = undistort_image(p.blur, lenses["blur"])
        if p.synth is not None:
            p.synth = undistort_image(p.synth, lenses["sharp"])
        if p.synth_srgb is not None:
            p.synth_srgb = undistort_image(p.synth_srgb, lenses["sharp"])
        if p.motion is not None:
            p.motion = undistort_image(p.motion, lenses["sharp"])


def undistort_timing(data, lenses: dict[str, Lens] | None) -> None:
    """Undistort ``exposure.TimingData`` frames in place (they are at ``data.scale`` of full size)."""
    if not lenses:
        return
    data.blur = [undistort_image(b, lenses["blur"], data.scale) for b in data.blur]
    data.sharp = {i: undistort_image(f, lenses["sharp"], data.scale) for i, f in data.sharp.items()}


def coverage(lens: Lens, size: tuple[int, int], margin: float = 2.0, box=None) -> np.ndarray:
    """uint8 mask (255 inside) of undistorted pixels whose recorded pixel lies in the frame, or in
    ``box`` (x0, y0, x1, y1 inclusive, recorded pixels: the part free of the rig's dark borders),
    ``margin`` px in. Undistortion bends the box's straight edges: no box in undistorted pixels
    excludes them."""
    mx, my = _undistort_maps(lens, (int(size[0]), int(size[1])))
    x0, y0, x1, y1 = (0, 0, size[0] - 1, size[1] - 1) if box is None else box
    ok = (mx >= x0 + margin) & (mx <= x1 - margin) & (my >= y0 + margin) & (my <= y1 - margin)
    return ok.astype(np.uint8) * 255


def lens_json(lenses: dict[str, Lens] | None) -> dict | None:
    return None if lenses is None else {c: v.to_json() for c, v in lenses.items()}


def frame_maps(meta: Alignment, camera: str, sharp_size: tuple[int, int] | None = None):
    """float (map_x, map_y) from the cropped output grid to the camera's recorded frame: for the sharp
    camera undistorted blur pixel -> H⁻¹ -> flip -> sharp undistorted -> distort; for the blur camera
    crop -> distort. Without lens models (``meta.lens`` None) nothing is distorted, and the sharp
    camera's flip needs its frame's ``sharp_size`` (width, height)."""
    from .geometry import flip_matrix

    c = meta.crop
    ys, xs = np.mgrid[0 : c.height, 0 : c.width].astype(np.float64)
    pts = np.stack([xs.ravel() + c.x, ys.ravel() + c.y], 1)
    if camera == "sharp":
        w, h = meta.lens["sharp"].size if meta.lens else sharp_size
        M = flip_matrix(meta.flip_sharp, w, h) @ np.linalg.inv(meta.H)  # the flip is its own inverse
        q = M @ np.vstack([pts.T, np.ones(len(pts))])
        pts = (q[:2] / q[2]).T
    src = distort(meta.lens[camera], pts) if meta.lens else pts
    return src[:, 0].reshape(c.height, c.width), src[:, 1].reshape(c.height, c.width)


def choose_crop(
    lenses: dict[str, Lens] | None,
    H,
    flip: str,
    blur_shape,
    blur_box,
    sharp_box,
    sharp_shape,
    crop_w,
    crop_h,
    recorded=None,
):
    """``geometry.choose_crop``; with lenses, restricted to undistorted pixels that both cameras
    recorded (an undistorted frame has empty corners or edges where its lens showed less) inside
    their dark borders: ``recorded`` = ``Geometry.recorded`` (those masks, blur and raw sharp view)."""
    from .geometry import CROP_MARGIN_PX as margin
    from .geometry import choose_crop as plain
    from .geometry import recorded_by_both

    if not lenses:
        return plain(H, blur_shape, blur_box, sharp_box, sharp_shape, crop_w, crop_h)
    if recorded is None:
        (h, w), (sh, sw) = blur_shape, sharp_shape
        recorded = (coverage(lenses["blur"], (w, h), margin), coverage(lenses["sharp"], (sw, sh), margin))
    within = recorded_by_both(H, flip, recorded)
    return plain(H, blur_shape, blur_box, sharp_box, sharp_shape, crop_w, crop_h, margin, within)


def take_lenses(take, rig, calibration: Alignment | None) -> dict[str, Lens] | None:
    """The lenses to undistort a take with: its board calibration take's (carried in that take's
    alignment), else the rig file's when ``lens.undistort = true``, else None."""
    if calibration is not None and calibration.lens and {"blur", "sharp"} <= set(calibration.lens):
        lenses = {c: calibration.lens[c] for c in ("blur", "sharp")}
    else:
        lenses = rig_lenses(rig, take.blur, take.sharp)
    if lenses:
        check_size(lenses, take.blur, take.sharp, take.folder)
    return lenses


def board_alignment(take, out_folder: Path, opts, estimate) -> Alignment:
    """A board calibration take's alignment: both lenses calibrated (``intrinsics.json`` beside it)
    and, where the take allows one (a textured background behind the board), its homography
    between the undistorted views; otherwise the lenses alone (``inliers`` 0: its homography
    stands in for no take)."""
    lenses = calibrate_take(take, out_folder)
    carrier = Alignment(
        blur_fps=float(take.blur.fps),
        sharp_fps=float(take.sharp.fps),
        flip_sharp=opts.rig.flip_sharp,
        homography=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        crop=Crop(0, 0, 0, 0),
        time_offset_s=0.0,
        clock_ratio=1.0,
        sync_method="none",
        lens=lenses,
        inliers=0,
    )
    try:
        return estimate(take, opts, carrier)
    except Rb2vError as e:
        return dataclasses.replace(carrier, extra={"note": f"board take without a usable homography: {e}"})
