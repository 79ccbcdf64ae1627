"""The homography from the (flipped) sharp camera to the blur camera, and the crop.

Blur frames are matched against *synthetic* blur frames: the exposure average of the sharp
frames that the synchronisation places inside each blur frame, so both sides carry the same
motion blur. ORB matches pooled over many frame pairs (in runs along the take) go into a USAC/MAGSAC
homography, which ECC then refines photometrically on the same pairs (one ECC per pair; the
median of the refined corner positions is the answer, robust to a pair that ECC got wrong).

The sensor averages light, not the recorded values: where the cameras encode with a tone curve,
the synthetic blur must average the sharp frames in linear light. Averaging the encoded values
instead moves each blurred edge toward its brighter side, by more where the picture moves more;
on takes simulated outside rb2v (sRGB cameras, turning and zooming) that put a crop corner 0.53
px off where the linear-light average put it 0.21 px off. Which curve the cameras use is not
assumed: ECC runs with the synthetic blur of each candidate curve (``TONE_CURVES``) and the one
the blurry frames correlate with best is kept (``Geometry.tone_curve``).

Conventions (alignment contract): the homography maps sharp pixel coordinates *after* the
flip to blur pixel coordinates, full frame, pixel centres at integers. OpenCV's keypoints,
``findHomography`` and ``warpPerspective`` use the same convention.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading

import cv2
import numpy as np

from ..colormatch.blur import box_weights, box_weights_rows
from ..colorspace import linear_to_srgb_fast, srgb_to_linear
from ..errors import Rb2vError
from ..io.images import apply_flip
from ..io.video import VideoSource
from .decode import grey_selected
from .sync import SyncResult

RANSAC_THRESHOLD_PX = 2.0
ECC_PAIRS = 4
# px kept clear of both views' valid-box edges in ECC: the housing's soft border ramp (and its spread by
# ECC's smoothing) within 8 px of the mask pulled the fit by up to 1.5 px on simulated takes; 16 px: < 0.1 px
ECC_MARGIN = 16
# px: ECC aligns the images less their local means (a Gaussian of this sigma). It matches the views' grey levels
# up to one gain and offset, and light that falls off across one view only (vignetting, a beam splitter's
# gradient, the cameras' different colour responses on coloured content) it traded against texture by moving
# the picture: 0.49 px at a crop corner of a colour-washed calibration board, 0.19 px with 30 / 15 % vignetting,
# against 0.03 and 0.02 px with this (rb2v's simulator, the true exposure); 8 px measured the same, 16 px 0.39
ECC_SHADING_SIGMA = 4.0
# px at the reference points: an ECC fit moved further from the feature fit has drifted (failed), unless, when
# every pair moved that far, at least ECC_CONSENSUS pairs land within ECC_AGREE_PX of their median and within
# ECC_FAR_PX of the feature fit: independent pairs do not drift to one place. A 454x386 sharp camera's board take
# (rb2v's simulator, seed 7701): the feature fit 0.31-2.03 px off at the crop's corners, its 4 ECC fits 3.31-3.40
# px from it and together, 0.006-0.109 px off once taken
ECC_DRIFT_PX, ECC_AGREE_PX, ECC_FAR_PX, ECC_CONSENSUS = 3.0, 0.5, 8.0, 3
SPREAD_SECONDS = 60.0
FEATURE_SIDE = 1024  # px: longer side of the images features are detected on
CROP_MARGIN_PX = 2  # the crop stays this far inside both cameras' valid views
DARK_LEVEL = 16  # uint8 luma: columns/rows darker than this at every sampled frame are the rig's border
# the cameras' tone curve candidates: "srgb" (recorded values sRGB-encoded: average in linear light)
# or "identity" (recorded values proportional to light: average them as they are)
TONE_CURVES = ("srgb", "identity")
_SRGB_DECODE = srgb_to_linear(np.arange(256, dtype=np.float32) / np.float32(255.0))  # uint8 luma -> linear


MOTION_SIGMA_PX = 2.0  # the change over the exposure is smoothed by this much: a match's point, not its pixel
MOVING_LEVEL = 4.0  # grey levels of change over the exposure at a match: its content moves


@dataclasses.dataclass(frozen=True)
class Geometry:
    homography: np.ndarray  # 3x3, flipped sharp -> blur
    flip_sharp: str
    inliers: int
    residual_px: float  # RMS distance of the inlier matches under the final homography
    pairs: int  # frame pairs used
    ecc_pairs: int  # pairs that ECC refined
    blur_valid: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive) free of dark borders, blur frame
    sharp_valid: tuple[int, int, int, int]  # the same for the flipped sharp frame
    # undistorted pairs: uint8 masks of the pixels each camera recorded inside its dark borders
    # (blur view, raw sharp view), else None
    recorded: tuple[np.ndarray, np.ndarray] | None = None
    cover: float = 0.0  # fraction of the blur frame inside the convex hull of the inlier matches
    matched: tuple[np.ndarray, np.ndarray] | None = None  # the inlier matches: (N,2) flipped sharp, (N,2) blur
    tone_curve: str | None = None  # the cameras' tone curve ECC found (TONE_CURVES); None without ECC
    tone_scores: dict[str, float] | None = None  # each curve's mean ECC correlation over the pairs
    moving: np.ndarray | None = None  # per inlier match: whether its content moves within the exposure
    frame: np.ndarray | None = None  # per inlier match: the blur frame index of the pair it was made on


def flip_matrix(flip: str, width: int, height: int) -> np.ndarray:
    """3x3 map from raw sharp pixel coordinates to flipped ones (an involution)."""
    m = np.eye(3)
    if flip == "horizontal":
        m[0, 0], m[0, 2] = -1.0, width - 1.0
    elif flip == "vertical":
        m[1, 1], m[1, 2] = -1.0, height - 1.0
    elif flip != "none":
        raise Rb2vError(f"flip_sharp: unknown flip {flip!r} (horizontal, vertical or none)")
    return m


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


@dataclasses.dataclass
class FramePair:
    blur_index: int
    centre: float  # exposure centre (the blur frame's middle row) in sharp frame units
    blur: np.ndarray | None = None  # grey float32
    synth: np.ndarray | None = None  # grey float32, raw (unflipped) sharp geometry: the recorded values averaged
    synth_srgb: np.ndarray | None = None  # the same averaged in linear light under the sRGB curve, re-encoded
    width: float | None = None  # exposure length in sharp frames (None: one blur frame period)
    skew: float = 0.0  # rolling shutter: the exposure centre moves this many sharp frames from top to bottom row
    flip: str = "none"  # the sharp camera's flip (which raw sharp rows are the blur frame's top rows)
    # how much the content changes over the exposure (raw sharp geometry): |last - first| sharp frame, smoothed
    motion: np.ndarray | None = None
    _ends: list[np.ndarray] = dataclasses.field(default_factory=list)  # the first and last sharp frames added

    def add(self, frame: np.ndarray, weight: np.ndarray | float) -> None:
        """Accumulate one grey uint8 sharp frame into the synthetic blurs, with its weight (a scalar
        or a column of per-row weights)."""
        self._ends = [self._ends[0] if self._ends else frame, frame]
        g, lin = frame.astype(np.float32), _SRGB_DECODE[frame]
        self.synth = g * weight if self.synth is None else self.synth + g * weight
        self.synth_srgb = lin * weight if self.synth_srgb is None else self.synth_srgb + lin * weight

    def finish(self) -> None:
        """After the last ``add``: the linear-light average back on the recorded scale."""
        if self.synth_srgb is not None:
            self.synth_srgb = linear_to_srgb_fast(self.synth_srgb) * np.float32(255.0)
        if self._ends:
            change = np.abs(self._ends[-1].astype(np.float32) - self._ends[0].astype(np.float32))
            self.motion, self._ends = cv2.GaussianBlur(change, (0, 0), MOTION_SIGMA_PX), []

    def row_centres(self, height: int) -> np.ndarray:
        """The exposure centre (sharp frame units) of each row of the raw sharp frame."""
        f = np.arange(height, dtype=np.float64) / max(height - 1, 1)  # blur-row fraction seen by each sharp row
        if self.flip == "vertical":
            f = f[::-1]
        return self.centre + (f - 0.5) * self.skew


def sample_pairs(
    sync: SyncResult,
    blur: VideoSource,
    sharp: VideoSource,
    count: int,
    step: int = 2,
    *,
    centre_s: float = 0.0,
    length_s: float | None = None,
    skew_s: float = 0.0,
    flip: str = "none",
) -> list[FramePair]:
    """Up to ``count`` blur frames (every ``step``-th; every one in a take too short for that) whose
    exposure lies inside the sharp stream.

    The exposure of blur frame k spans ``length_s`` (default: one frame period) around
    ``k / fps + centre_s`` (blur clock, middle row; ``skew_s`` from the top row to the bottom
    one), sharp frame i being at ``i / fps`` (rb2v.align.exposure estimates these).
    They come in runs so that only short stretches of both streams are decoded: one run at the
    start of a take shorter than ``SPREAD_SECONDS`` (reaching a later run costs decoding from the
    keyframe before it, up to a whole GOP, as much as the run itself), three runs spread over
    longer takes, whose content and lighting may change along the way.
    """
    clusters = 3 if blur.frames / float(blur.fps) >= SPREAD_SECONDS else 1
    fb, fs = float(blur.fps), float(sharp.fps)
    width = fs * (1.0 / fb if length_s is None else length_s)
    reach = width / 2 + abs(fs * skew_s) / 2
    k = np.arange(blur.frames)
    centres = fs * sync.sharp_time(k / fb + centre_s)
    ok = (centres - reach >= 1) & (centres + reach <= sharp.frames - 2)
    valid = k[ok]
    if len(valid) == 0:
        raise Rb2vError(f"{blur.path.parent}: after synchronisation no blur frame lies inside the sharp stream")
    if len(valid) < count * step:
        step = 1  # a short take: every frame it has
    per = max(1, -(-count // clusters))
    picks = []
    for c in range(clusters):
        start = max(valid[0], min(valid[int(round(c / clusters * (len(valid) - 1)))], valid[-1] - per * step))
        picks += [int(i) for i in range(start, start + per * step, step) if i < len(ok) and ok[i]]
    picks = sorted(set(picks))[:count]
    return [FramePair(i, float(centres[i]), width=width, skew=fs * skew_s, flip=flip) for i in picks]


def load_pairs(pairs: list[FramePair], blur: VideoSource, sharp: VideoSource) -> None:
    """Fill each pair's blur frame and synthetic blurs, for each of ``TONE_CURVES`` (streamed: sharp
    frames are accumulated, not kept). Under a rolling shutter (``skew``) each row of the synthetic
    blur has its own window."""
    period = float(sharp.fps) / float(blur.fps)
    by_blur = {p.blur_index: p for p in pairs}
    for i, frame in grey_selected(blur, by_blur):
        by_blur[i].blur = frame.astype(np.float32)
    needs: dict[int, list[tuple[FramePair, np.ndarray | float]]] = {}
    for p in pairs:
        width = period if p.width is None else p.width
        if p.skew:
            for i, w in box_weights_rows(p.row_centres(sharp.height), width).items():
                needs.setdefault(i, []).append((p, w.astype(np.float32)[:, None]))
        else:
            for i, w in box_weights(p.centre, width).items():
                needs.setdefault(i, []).append((p, w))
    for i, frame in grey_selected(sharp, needs):
        for p, w in needs[i]:
            p.add(frame, w)
    for p in pairs:
        p.finish()


def _inner_edge(profile: np.ndarray) -> int:
    """Index of the first column (row) inside a dark border at the start of ``profile``:
    past the run of black ones, then past the soft ramp (darker than 85 % of the level inside)."""
    n, i = len(profile), 0
    while i < n and profile[i] <= DARK_LEVEL:
        i += 1
    if i == 0:
        return 0
    while i < n - 17 and profile[i] < 0.85 * np.median(profile[i + 1 : i + 17]):
        i += 1
    return i


def valid_box(images: list[np.ndarray]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1, inclusive) inside the rig's dark borders.

    Profiles are the 90th percentile of each column (row) of the per-pixel brightest value
    over the sampled frames; only dark runs that touch the frame's edge count as border, so
    dark scene content is never cut away.
    """
    peak = np.max(np.stack(images), axis=0)
    col, row = np.percentile(peak, 90, axis=0), np.percentile(peak, 90, axis=1)
    x0, x1 = _inner_edge(col), len(col) - 1 - _inner_edge(col[::-1])
    y0, y1 = _inner_edge(row), len(row) - 1 - _inner_edge(row[::-1])
    if x1 - x0 < 16 or y1 - y0 < 16:
        raise Rb2vError("frames are black: no valid image area")
    return int(x0), int(y0), int(x1), int(y1)


_ORB = None


def feature_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """(width, height) a blurry frame of ``shape`` is searched for features at: no larger than FEATURE_SIDE."""
    scale = min(1.0, FEATURE_SIDE / max(shape[:2]))
    return round(shape[1] * scale), round(shape[0] * scale)


def _features(
    img: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB (points in full-frame pixels, descriptors) inside ``box``, on a copy resampled to ``size``
    (default ``feature_size``): features only seed the fit, ECC at full resolution sets the precision.
    (ORB finds more matches than SIFT on these blurred pairs and is ten times faster.)

    The sharp camera's frames are searched at the blurry frame's ``size``: ORB finds its points on an image
    pyramid, at whole pixels of each level, and a point found on another level in the other view sits a
    fraction of that level's pixel off. A photo seen by a sharp camera of 0.7x the pixels: the matches' median
    0.31 px off the known homography as recorded, 0.01 px at one size (tests/test_align_geometry.py)."""
    global _ORB
    if _ORB is None:
        _ORB = cv2.ORB_create(nfeatures=1000, fastThreshold=5)
    size = feature_size(img.shape) if size is None else size
    mask = np.zeros(img.shape, np.uint8)
    x0, y0, x1, y1 = box
    mask[y0 + 4 : y1 - 3, x0 + 4 : x1 - 3] = 255
    u8 = np.clip(img, 0, 255).astype(np.uint8)
    if size != (img.shape[1], img.shape[0]):
        smaller = size[0] * size[1] < img.shape[0] * img.shape[1]
        u8 = cv2.resize(u8, size, interpolation=cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    kps, desc = _ORB.detectAndCompute(u8, mask)
    sx, sy = img.shape[1] / u8.shape[1], img.shape[0] / u8.shape[0]
    pts = np.float32([((k.pt[0] + 0.5) * sx - 0.5, (k.pt[1] + 0.5) * sy - 0.5) for k in kps]).reshape(-1, 2)
    return pts, desc


_BLUR_FEATURES: collections.OrderedDict = collections.OrderedDict()
_BLUR_FEATURES_LOCK = threading.Lock()
BLUR_FEATURES_KEPT = 64  # blurry frames whose features are kept (about 40 kB each)


def _blur_features(img: np.ndarray, box: tuple[int, int, int, int]):
    """``_features`` of a blurry frame, kept by its content: a take's homography is estimated several times
    (a calibration take seven, as its exposure window settles) on the same blurry frames against new
    synthetic blurs."""
    key = (hashlib.blake2b(np.ascontiguousarray(img).data, digest_size=16).digest(), img.shape, img.dtype.str, box)
    with _BLUR_FEATURES_LOCK:
        if key in _BLUR_FEATURES:
            _BLUR_FEATURES.move_to_end(key)
            return _BLUR_FEATURES[key]
    feats = _features(img, box)
    with _BLUR_FEATURES_LOCK:
        _BLUR_FEATURES[key] = feats
        while len(_BLUR_FEATURES) > BLUR_FEATURES_KEPT:
            _BLUR_FEATURES.popitem(last=False)
    return feats


def match_pair(blur_feats, synth_feats, ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Putative matches (synth points, blur points) of two (points, descriptors), Lowe's ratio test."""
    kb, db = blur_feats
    ks, ds = synth_feats
    if db is None or ds is None or len(kb) < 4 or len(ks) < 4:
        return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(ds, db, k=2)
    src, dst = [], []
    for pair in matches:
        if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance:
            src.append(ks[pair[0].queryIdx])
            dst.append(kb[pair[0].trainIdx])
    return np.float32(src).reshape(-1, 2), np.float32(dst).reshape(-1, 2)


def flip_box(box, flip: str, width: int, height: int):
    x0, y0, x1, y1 = box
    if flip == "horizontal":
        return width - 1 - x1, y0, width - 1 - x0, y1
    if flip == "vertical":
        return x0, height - 1 - y1, x1, height - 1 - y0
    return box


def _robust_homography(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    if len(src) < 8:
        return None, np.zeros(len(src), bool)
    H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, RANSAC_THRESHOLD_PX, maxIters=10000, confidence=0.9999)
    if H is None:
        return None, np.zeros(len(src), bool)
    return H / H[2, 2], mask.ravel().astype(bool)


def map_points(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """A 3x3 projective map applied to (N, 2) points."""
    return cv2.perspectiveTransform(np.asarray(pts, np.float64).reshape(-1, 1, 2), H).reshape(-1, 2)


def common_mask(
    H: np.ndarray, blur_shape: tuple[int, int], blur_box, sharp_box, sharp_shape: tuple[int, int], erode: int = 0
) -> np.ndarray:
    """uint8 mask (255 inside) of blur pixels inside the blur camera's valid box *and* the
    (flipped) sharp camera's valid box mapped by H, shrunk by ``erode`` px."""
    box = np.zeros(blur_shape, np.uint8)
    x0, y0, x1, y1 = blur_box
    box[y0 : y1 + 1, x0 : x1 + 1] = 255
    sharp = np.zeros(sharp_shape, np.uint8)
    x0, y0, x1, y1 = sharp_box
    sharp[y0 : y1 + 1, x0 : x1 + 1] = 255
    sharp = cv2.warpPerspective(sharp, H, (blur_shape[1], blur_shape[0]), flags=cv2.INTER_NEAREST)
    mask = box & sharp
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask


def recorded_by_both(H: np.ndarray, flip: str, recorded: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """uint8 mask (255 inside), blur view, of the pixels both cameras recorded: ``recorded`` =
    (blur-view mask, raw sharp-view mask), the sharp one flipped and mapped by H."""
    blur_mask, sharp_mask = recorded
    sharp = np.ascontiguousarray(apply_flip(sharp_mask, flip))
    return blur_mask & cv2.warpPerspective(sharp, H, blur_mask.shape[::-1], flags=cv2.INTER_NEAREST)


def _without_shading(img: np.ndarray) -> np.ndarray:
    """The image less its local mean (``ECC_SHADING_SIGMA``): its texture without the light's fall-off."""
    img = img.astype(np.float32)
    return img - cv2.GaussianBlur(img, (0, 0), ECC_SHADING_SIGMA)


def _ecc_refine(
    H: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], mask: np.ndarray, ref_pts: np.ndarray
) -> tuple[np.ndarray, int, float]:
    """Refine H by ECC on each (blur, flipped synth) pair; combine by the median of mapped points.
    Returns (H, pairs used, their mean ECC correlation; -1 when none). Both images of a pair are compared
    without their shading (``_without_shading``).

    ``mask`` (blur view) must exclude the dark borders of *both* views: a border edge seen by one
    camera only pulls ECC off by pixels. OpenCV takes the mask in the *input* (synth) frame and
    warps it into the template's on each iteration, so it is handed over mapped there (the two
    frames differ by H, and in size when the cameras record different resolutions).
    """
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-6)
    pairs = [(_without_shading(b), _without_shading(s)) for b, s in pairs]
    mapped, scores, far = [], [], []
    start = map_points(H, ref_pts)
    synth_size = pairs[0][1].shape[1], pairs[0][1].shape[0]  # one sharp stream: one size
    input_mask = cv2.warpPerspective(mask, H, synth_size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    for blur_img, synth_img in pairs:
        warp = np.linalg.inv(H).astype(np.float32)  # ECC warps template (blur) coords into input (synth) coords
        warp /= warp[2, 2]
        try:
            rho, warp = cv2.findTransformECC(blur_img, synth_img, warp, cv2.MOTION_HOMOGRAPHY, criteria, input_mask, 3)
        except cv2.error:
            continue
        refined = np.linalg.inv(warp.astype(np.float64))
        pts = map_points(refined / refined[2, 2], ref_pts)
        if np.abs(pts - start).max() < ECC_DRIFT_PX:
            mapped.append(pts)
            scores.append(float(rho))
        else:
            far.append((pts, float(rho)))
    if not mapped and len(far) >= ECC_CONSENSUS:
        centre = np.median(np.stack([p for p, _ in far]), axis=0)
        agree = [(p, r) for p, r in far if np.abs(p - centre).max() < ECC_AGREE_PX]
        if len(agree) >= ECC_CONSENSUS and np.abs(centre - start).max() < ECC_FAR_PX:
            mapped, scores = [p for p, _ in agree], [r for _, r in agree]
    if not mapped:
        return H, 0, -1.0
    median = np.median(np.stack(mapped), axis=0)
    refined = cv2.getPerspectiveTransform(np.float32(ref_pts), np.float32(median))
    return refined / refined[2, 2], len(mapped), float(np.mean(scores))


def _flipped(img: np.ndarray, flip: str) -> np.ndarray:
    return np.ascontiguousarray(apply_flip(img, flip))


def _fit(pairs: list[FramePair], blur_feats, which, flip: str, synth_box_raw, sw: int, sh: int):
    """Pooled matches of the chosen pairs under one flip -> (inliers, flip, H, inlier src, inlier dst, flipped, box)."""
    synth_box = flip_box(synth_box_raw, flip, sw, sh)
    flipped = [_flipped(p.synth, flip) for p in pairs]
    src, dst, moving, frame = [], [], [], []
    for i in which:
        a, b = match_pair(blur_feats[i], _features(flipped[i], synth_box, feature_size(pairs[i].blur.shape)))
        src.append(a)
        dst.append(b)
        frame.append(np.full(len(a), pairs[i].blur_index))
        if pairs[i].motion is None:
            moving.append(np.zeros(len(a), bool))
        else:
            change = _flipped(pairs[i].motion, flip)
            x = np.clip(np.rint(a[:, 0]).astype(int), 0, change.shape[1] - 1)
            y = np.clip(np.rint(a[:, 1]).astype(int), 0, change.shape[0] - 1)
            moving.append(change[y, x] > MOVING_LEVEL)
    src, dst, moving, frame = (np.concatenate(v) for v in (src, dst, moving, frame))
    H, inl = _robust_homography(src, dst)
    if H is not None and not _upright(H, sw, sh):
        # ORB is rotation invariant: a vertical flip plus a 180° turn is a horizontal flip.
        # The rig's cameras are mounted upright, so a fit that turns the image over is the wrong flip.
        inl[:] = False
    return int(inl.sum()), flip, H, src[inl], dst[inl], flipped, synth_box, moving[inl], frame[inl]


def _upright(H: np.ndarray, width: int, height: int, max_turn_deg: float = 30.0) -> bool:
    """Whether H keeps orientation (no mirror) and turns the image centre by at most ``max_turn_deg``."""
    c = np.float64([[width / 2, height / 2], [width / 2 + 10, height / 2], [width / 2, height / 2 + 10]])
    p = map_points(H, c)
    ex, ey = p[1] - p[0], p[2] - p[0]
    det = ex[0] * ey[1] - ex[1] * ey[0]
    return bool(det > 0 and abs(np.degrees(np.arctan2(ex[1], ex[0]))) <= max_turn_deg)


def estimate_geometry(
    pairs: list[FramePair],
    sharp_size: tuple[int, int],
    flips: list[str],
    min_inliers: int,
    ecc: bool = True,
    recorded: tuple[np.ndarray, np.ndarray] | None = None,
) -> Geometry:
    """Homography (flipped sharp -> blur) from loaded frame pairs; with several ``flips`` the
    one with the most inliers is used. Too few inliers are reported, not raised: the caller
    decides whether to fall back to a calibration take.

    ``recorded``: when the pairs were undistorted, uint8 masks (255 inside) of the pixels each
    camera recorded inside its dark borders (blur view, raw sharp view): undistortion bends the
    borders' edges into the valid boxes, and an edge seen by one view only pulls ECC off.
    """
    sw, sh = sharp_size
    pairs = [p for p in pairs if p.blur is not None and p.synth is not None]
    if not pairs:
        raise Rb2vError("no frame pairs to match")
    blur_box = valid_box([p.blur for p in pairs])
    synth_box_raw = valid_box([p.synth for p in pairs])
    blur_feats = [_blur_features(p.blur, tuple(blur_box)) for p in pairs]
    # Choose the flip on one pair: the wrong flip still finds some matches on symmetric
    # structures, so the flip with the most inliers wins, not the first one above min_inliers.
    probe = [len(pairs) // 2]
    if len(flips) > 1:
        counts = [_fit(pairs, blur_feats, probe, f, synth_box_raw, sw, sh)[0] for f in flips]
        flips = [flips[int(np.argmax(counts))]]
    best = _fit(pairs, blur_feats, range(len(pairs)), flips[0], synth_box_raw, sw, sh)
    n, flip, H, src, dst, flipped, synth_box, moving, frame = best
    if H is None:
        return Geometry(np.eye(3), flip, 0, float("inf"), len(pairs), 0, blur_box, synth_box)
    ecc_used, tone_curve, tone_scores = 0, None, None
    if ecc and n >= min_inliers:
        # ECC on the pairs with the most texture, at most ECC_PAIRS of them
        order = np.argsort([-float(np.std(cv2.Laplacian(p.blur, cv2.CV_32F))) for p in pairs])[:ECC_PAIRS]
        x0, y0, x1, y1 = blur_box
        ref = np.float64(
            [
                [x0 + (x1 - x0) * 0.2, y0 + (y1 - y0) * 0.2],
                [x0 + (x1 - x0) * 0.8, y0 + (y1 - y0) * 0.2],
                [x0 + (x1 - x0) * 0.8, y0 + (y1 - y0) * 0.8],
                [x0 + (x1 - x0) * 0.2, y0 + (y1 - y0) * 0.8],
            ]
        )
        mask = common_mask(H, pairs[0].blur.shape, blur_box, synth_box, pairs[0].synth.shape)
        if recorded is not None:
            mask &= recorded_by_both(H, flip, recorded)
        mask = cv2.erode(mask, np.ones((2 * ECC_MARGIN + 1, 2 * ECC_MARGIN + 1), np.uint8))
        fits = {}
        curves = [c for c in TONE_CURVES if c == "identity" or all(pairs[i].synth_srgb is not None for i in order)]
        for curve in curves:
            synths = [flipped[i] if curve == "identity" else _flipped(pairs[i].synth_srgb, flip) for i in order]
            fits[curve] = _ecc_refine(H, [(pairs[i].blur, s) for i, s in zip(order, synths)], mask, ref)
        tone_curve = max(curves, key=lambda c: (fits[c][1] > 0, fits[c][2]))
        H, ecc_used, _ = fits[tone_curve]
        tone_scores = {c: round(fits[c][2], 6) for c in curves}
    residual = float(np.sqrt(np.mean(np.sum((map_points(H, src) - dst) ** 2, axis=1)))) if n else float("inf")
    h, w = pairs[0].blur.shape[:2]  # the matches' blur-side points (dst) over the blur frame
    cover = cv2.contourArea(cv2.convexHull(dst.astype(np.float32).reshape(-1, 1, 2))) / (w * h) if n >= 3 else 0.0
    return Geometry(
        H,
        flip,
        n,
        residual,
        len(pairs),
        ecc_used,
        blur_box,
        synth_box,
        recorded,
        round(float(cover), 3),
        (src, dst),
        tone_curve,
        tone_scores,
        moving,
        frame,
    )


def offset_from(H: np.ndarray, matched: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Where (px, x and y) a take's matches sit from where ``H`` (its calibration take's homography) puts
    them: the median of their offsets. A rig bumped after its calibration take shifts the whole view (a
    camera turned by an angle a shifts it by about f·a), and so does parallax, for a subject at another
    distance than the board; the median of thousands of matches measures a shift even where they cover a
    small patch of the frame, where a fitted turn or scale would be noise."""
    src, dst = matched
    return np.median(dst - map_points(H, src), axis=0)


def shift_from(H: np.ndarray, matched: tuple[np.ndarray, np.ndarray]) -> float:
    """The length (px) of ``offset_from``."""
    return float(np.linalg.norm(offset_from(H, matched)))


def _box_corners(box) -> np.ndarray:
    """The 4 corners (4, 2) of a box (x0, y0, x1, y1 inclusive)."""
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)


def turn_onto(
    H: np.ndarray, matched: tuple[np.ndarray, np.ndarray], box, rounds: int = 3, K: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The turn and shift (3x3 in the blur view) that best carry where ``H`` puts a take's matches onto them,
    and the standard error (px) of where it puts ``box``'s corners (x0, y0, x1, y1, blur view; the largest,
    beside the matches' centre's), from their scatter: least squares (the angle linearised, a bump's being a
    fraction of a degree), refitted ``rounds`` times without the matches over 3 times the median distance.

    A rig bumped after its calibration take turns the view about its axis as well as shifting it (a pan or
    a tilt shifts it). No scale: a bump does not zoom, and a fitted one took up the matches' bias (hand
    takes on still rigs: up to 1.4 px at the corners with a scale, 0.45 without).

    With ``K`` (the blur camera's matrix, undistorted view) the sharp camera is turned about its centre of
    projection instead (pan, tilt and roll: K R K⁻¹, three numbers as well): a pan or tilt shifts the picture and
    leaves a keystone that no turn and shift of it make (``rotation_flow``)."""
    src, dst = matched
    p, q = map_points(H, src), np.asarray(dst, np.float64)
    centre = p.mean(axis=0)  # fitted about the matches' centre: the angle and the shift do not trade
    flow = (lambda points: rotation_flow(points, K)) if K is not None else (lambda points: _turn_flow(points - centre))
    keep = np.ones(len(p), bool)
    for _ in range(rounds):
        A = flow(p[keep])
        solution = np.linalg.lstsq(A, (q[keep] - p[keep]).reshape(-1), rcond=None)[0]
        M = camera_turn(K, solution) if K is not None else _shift(centre) @ _turn(*solution) @ _shift(-centre)
        misfit = map_points(M, p) - q
        gap = np.linalg.norm(misfit, axis=1)
        last, keep = keep, gap <= 3 * np.median(gap[keep])
    scatter = 1.4826 * np.median(np.abs(misfit[last] - np.median(misfit[last], axis=0)))  # per coordinate, robust
    # the corners' standard error beside the matches' centre's (which the offset measures well); A: the last fit's
    at = (flow(_box_corners(box)) - np.tile(flow(centre[None]), (4, 1))).reshape(4, 2, -1)
    cov = np.linalg.pinv(A.T @ A) * scatter**2
    return M, float(np.sqrt(np.einsum("cij,jk,cik->c", at, cov, at).max()))


def halfway(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The homography whose moves are, to first order, the mean of two near-identity ones' (3x3)."""
    return (np.asarray(a, np.float64) / a[2, 2] + np.asarray(b, np.float64) / b[2, 2]) / 2


def _shift(offset) -> np.ndarray:
    """The 3x3 shift by ``offset`` (px, x and y)."""
    return np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]], np.float64)


def _turn(angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty], [0.0, 0.0, 1.0]])


def _turn_flow(p: np.ndarray) -> np.ndarray:
    """(2n, 3): how points ``p`` (about the turn's centre) move per unit of (angle, x shift, y shift)."""
    A = np.zeros((2 * len(p), 3))
    A[0::2, 0], A[0::2, 1] = -p[:, 1], 1.0
    A[1::2, 0], A[1::2, 2] = p[:, 0], 1.0
    return A


def rotation_flow(p: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(2n, 3): how points ``p`` (px) of a camera of matrix ``K`` move per radian of its turn about its x, y and
    z axes (the rotation vector), to first order: the instantaneous rotational flow."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x, y = (p[:, 0] - cx) / fx, (p[:, 1] - cy) / fy
    A = np.zeros((2 * len(p), 3))
    A[0::2, 0], A[0::2, 1], A[0::2, 2] = -fx * x * y, fx * (1 + x * x), -fx * y
    A[1::2, 0], A[1::2, 1], A[1::2, 2] = -fy * (1 + y * y), fy * x * y, fy * x
    return A


def camera_turn(K: np.ndarray, rotation_vector) -> np.ndarray:
    """K R K⁻¹: where a camera of matrix ``K`` turned by ``rotation_vector`` (radians) sees what it saw."""
    R, _ = cv2.Rodrigues(np.asarray(rotation_vector, np.float64))
    M = K @ R @ np.linalg.inv(K)
    return M / M[2, 2]


def frames_apart(
    H: np.ndarray, matched: tuple[np.ndarray, np.ndarray], frames: np.ndarray, box, min_px: float, min_z: float
) -> dict[int, float]:
    """The frame pairs (blur indices, per match ``frames``) whose matches sit apart from the others': each
    pair's median offset from where ``H``, turned and shifted onto the other pairs' matches (``turn_onto``),
    puts them, where over ``min_px`` and ``min_z`` standard errors (the pair's scatter, robust, over the root
    of its matches); px by pair, none where half the pairs or more sit apart (which half moved is not told).
    The turn is refitted without the pairs found: theirs pulls it."""
    src, dst = matched
    pairs = np.unique(frames)
    apart: dict[int, float] = {}
    for _ in range(3):
        others = ~np.isin(frames, list(apart))
        turn, _ = turn_onto(H, (src[others], dst[others]), box)
        offsets = dst - map_points(turn @ H, src)
        found = {}
        for k in pairs:
            mine = offsets[frames == k]
            median = np.median(mine, axis=0)
            spread = 1.4826 * np.median(np.linalg.norm(mine - median, axis=1))
            px = float(np.hypot(*median))
            if px > min_px and px > min_z * spread / np.sqrt(len(mine)):
                found[int(k)] = round(px, 3)
        if 2 * len(found) >= len(pairs):
            return {}
        if found.keys() == apart.keys():
            return found
        apart = found
    return apart


def apart_at_corners(H: np.ndarray, other: np.ndarray, box) -> float:
    """How far (px) ``other`` puts the points that ``H`` maps onto the corners of ``box`` (x0, y0, x1, y1
    inclusive, blur view): the largest of the four distances."""
    corners = _box_corners(box)
    return float(np.linalg.norm(map_points(other, map_points(np.linalg.inv(H), corners)) - corners, axis=1).max())


def translated(H: np.ndarray, offset) -> np.ndarray:
    """``H`` followed by a shift of ``offset`` (px) in the blur view."""
    return _shift(offset) @ np.asarray(H, np.float64)


def choose_crop(
    H: np.ndarray,
    blur_shape: tuple[int, int],
    blur_box,
    sharp_box,
    sharp_shape: tuple[int, int],
    crop_w: int,
    crop_h: int,
    margin: int = CROP_MARGIN_PX,
    within: np.ndarray | None = None,
) -> dict:
    """A crop_w x crop_h box inside the blur camera's valid area *and* the sharp view mapped by H
    (``margin`` px inside both), as close to the centre of that common area as possible; ``within``
    (uint8 mask, blur view) restricts it further (undistorted takes: ``recorded_by_both``)."""
    common = common_mask(H, blur_shape, blur_box, sharp_box, sharp_shape, erode=margin)
    if within is not None:
        common &= within
    common //= 255
    # top-left positions where the whole crop lies inside the common area (summed-area table)
    sat = cv2.integral(common)
    area = sat[crop_h:, crop_w:] - sat[:-crop_h, crop_w:] - sat[crop_h:, :-crop_w] + sat[:-crop_h, :-crop_w]
    ys, xs = np.nonzero(area == crop_w * crop_h)
    if len(ys) == 0:
        views = "valid views" if within is None else "valid undistorted views"
        raise Rb2vError(f"the two cameras' {views} overlap in less than the {crop_w}x{crop_h} crop")
    cy, cx = np.argwhere(common).mean(axis=0)
    i = int(np.argmin((xs + crop_w / 2 - 0.5 - cx) ** 2 + (ys + crop_h / 2 - 0.5 - cy) ** 2))
    return {"x": int(xs[i]), "y": int(ys[i]), "width": int(crop_w), "height": int(crop_h)}


def crop_warp(H: np.ndarray, flip: str, crop: dict, sharp_width: int, sharp_height: int) -> np.ndarray:
    """The one matrix that takes a *raw* sharp frame to the cropped blur geometry (flip, H, crop)."""
    shift = np.array([[1.0, 0, -crop["x"]], [0, 1.0, -crop["y"]], [0, 0, 1.0]])
    return shift @ H @ flip_matrix(flip, sharp_width, sharp_height)
