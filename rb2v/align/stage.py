"""The align stage: per take, explicit inputs on disk -> outputs on disk.

``align_take`` synchronises, estimates the geometry (or takes a calibration take's), chooses
the crop and streams both cameras' frames through one warp each into
``OUT/aligned/<category>/<subject>/<take>/{blur,sharp}/%06d.png`` with ``alignment.json``.
Everything is written into a temporary folder that is renamed into place last, so a
folder that exists is finished. A finished take whose inputs (file names, sizes, mtimes)
and settings hash match is skipped. ``run_align`` does a whole RAW tree with N workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from .. import ffmpeg
from ..alignment import FLIPS, NOT_DETERMINED, Alignment, Crop, knocked_from, read_alignment, write_alignment
from ..config import settings_hash
from ..errors import PartialFailure, Rb2vError
from ..executor import INLINE, ExecutorSettings, Unit, run_units
from ..fsutil import atomic_dir, atomic_path, clean_partials
from ..io.images import png_params
from ..io.video import VideoSource
from ..progress import say
from ..settings import RigSettings
from . import decode, exposure, flicker, geometry, sync
from . import lens as lensmod
from .discover import CALIBRATION_DIR, Take, TakeError, discover, errors_table, takes_table
from .preflight import check_sync, preflight

ALGORITHM_VERSION = 22  # bump when a change alters results, so finished takes are redone

# A calibration take whose sharp pictures move less than this over its whole length (picture_motion_px) has
# the same homography whatever the sync: a board on a tripod, filmed without sound, needs none.
STILL_PX = 0.1
# A calibration take whose matches span less of the frame than this has a homography that extrapolates to the
# crop's corners (rb2v's simulator, face seed 33: a colour-wheel board, matches over 6 %, 8-21 px off there;
# boards that served their takes at 0.03-0.05 px: 34-63 %): said in its note and in its takes'.
MIN_CALIBRATION_COVER = 0.25
REFIT_SHARP_FRAMES = 0.1  # visual sync moved more than this on refinement: refit the homography
EXPOSURE_ROUNDS = 4  # exposure window <-> homography alternations at most (one more after a kept ridge step)
# A calibration shift above this fraction of ``max_calibration_shift_px`` is measured again inside the estimated
# blur exposure (``_shift_inside_exposure``): made around the timestamps, it is off by the exposure's phase, so one
# near the limit may sit on either side of it (an outside check's still rig: 1.47 px against 1.5).
REMEASURE_FRACTION = 0.5
# A take that uses its calibration take's homography has it moved by where the take's own matches, made inside
# the blur exposure, sit from it (``_calibration_offset``): a subject nearer or farther than the board shifts by
# parallax where the cameras' centres differ (a rig 5 mm off nodal: 1.07 px between 0.6 and 1 m). Under this
# length the offset is taken for noise and not applied: rb2v's simulator's nodal rigs measured 0.02-0.09 px on 5
# face and hand takes, whose calibration take's homography was 0.012-0.029 px off at the crop's corners, and
# 0.17 px on one of `make demo`'s hand takes.
MIN_OFFSET_PX = 0.25
# A rig bumped after its calibration take turns the view as well as shifting it, which the offset above cannot
# take up (rb2v bench rig-unknowns, rig-drift-2, street seed 7701: moved by (+0.59, +0.31) px, the crop's corners
# stayed 0.55-1.14 px off, and build rejected every sample). A turn and shift are fitted to the matches too
# (``geometry.turn_onto``), and applied where they move the valid box's corners over TURN_PX beyond the offset, by
# TURN_MIN_Z times the turn's standard error or more. rb2v bench rig-unknowns, 1.6 s takes, 2026-12-07: on 15
# takes of rigs that did not move (street, hand, face) 0.07-0.51 px, applied on none (two hand takes' 0.45 and 0.51
# px stood under 8 standard errors out, their matches biased by the subject's own motion: 3.4 for the first); on 8
# bumped takes 0.53-2.38 px, applied on all, their crop corners then 0.10-0.28 px off at most (a hand's 0.57: 1.47
# before); street seed 7701 40 / 40 samples accepted, 100 % at the exact start.
# Where the blur camera's lens is known (its matrix K), a bump is also fitted as the sharp camera turned about its
# centre of projection (``geometry.turn_onto`` with K): a pan or tilt shifts the view and leaves a keystone, about
# the shift times (x/f)^2 at x px from the centre. Which of a pan and a slide of the camera (parallax, no keystone)
# made a shift, matches over a patch of the frame barely tell (the two fits' residuals differed by under 0.8 %, and
# on all 5 hand takes tried the smaller was the wrong model's), so the mean of the two fits (``geometry.halfway``) is
# applied where either moves the corners as above: half the keystone, whichever moved. rb2v bench rig-unknowns, 1.6
# s takes, 2026-12-08, crop corners before -> after: bumps turning the camera (rig-drift-2-3d) hand 7417 / 7421, face
# 7519 / 7520 / 7522, street 7701 / 7703 / 7717 0.358 / 0.569, 0.591 / 0.561 / 0.316, 0.427 / 0.398 / 0.393 ->
# 0.222 / 0.401, 0.301 / 0.270 / 0.206, 0.175 / 0.267 / 0.221 px (hand 7402: 0.887 as before, its 750 matches'
# turn under the gate); bumps turning and shifting the picture (rig-drift-2) hand 7417 / 7402 / 7421, face 7519,
# street 7701 / 7702 0.127 / 0.570 / 0.238, 0.112, 0.095 / 0.194 -> 0.128 / 0.540 / 0.335, 0.333, 0.187 / 0.330 px
# (with the camera's turn alone, offline: 0.259 / 0.601 / -, 0.511, 0.248 / 0.609). 32 other takes with lenses
# (24 settings on hand 7417, 8 on face 7519) unchanged.
TURN_PX = 0.5
TURN_MIN_Z = 8.0
# A take whose matches sit over ``max_calibration_shift_px`` from its calibration take's homography (the rig
# moved) fits its own, unless they span less of the frame than this: its own then extrapolates to the crop's
# corners, and the calibration take's is shifted and turned onto the matches instead, as for a smaller move.
# rb2v's simulator, takes bumped by 3-6 px (align only): hands (matches over 14-20 % of the frame) 0.20-0.36 px off
# at the crop's corners that way, 0.57-2.36 px with their own; faces (21-23 %) 0.09-0.11 px, 0.05-0.14 px with
# theirs; rb2v bench rig-unknowns, rig-drift-2, hand 7412 (bumped 1.68 px, matches over 16 %): 0.39 px, 5.15 before.
MOVED_MIN_COVER = 0.25
# A rig knocked during a take moves the sharp view against the blur view from then on, and the exposure fit, which
# compares the blurry frames with the sharp ones under the one homography, takes the later frames' misregistration
# for time: rb2v bench rig-unknowns, bump, street seed 7713 (the view 1.4 px off at the centre after 0.8 s): two of
# the fit's 12 frames after the knock put the exposure 2.5 ms early, a rolling-shutter readout of -7.1 ms taking up
# the knock's turn, and no sample started at its true frame. Frames whose matches, made inside the exposure, sit
# over PAIR_OFF_PX and PAIR_MIN_Z standard errors from the others' (``geometry.frames_apart``), fewer than half, and
# every later frame compared with them (a view that moved stays moved: ``alignment.knocked_from``) are left out of
# the fit and of the homography's. Measured (median offsets of each frame's matches from the others' turn and
# shift): knocked frames 0.64-1.12 px on street (z 14-25), 0.79 px on hand (z 10); frames of takes that were not
# knocked (street, hand; parallax, a walking rig, a rig bumped before the take) <= 0.34 px, but for a fast hand's
# one frame (1.42 px, hand 7402 rig-drift-2) and a turning head's four in a row (0.76-0.99 px, face 7519
# rig-drift-2, with frames in line after them): those are kept. Their matches were made inside a window fitted
# under the calibration take's homography, before the rig's drift was measured, and sat off along the fast motion;
# left out, the fit put the exposure 0.85 ms early and 21 of the 39 samples kept a step early (66.7 % at the exact
# start); kept, 0.14 ms and 100 % (40 / 40).
PAIR_OFF_PX = 0.5
PAIR_MIN_Z = 8.0
LEFT_OUT = "left_out"  # the memo's entry of a take's frames left out (``_exposure_rounds``)
OFFSET_ROUNDS = 6  # offset <-> exposure window alternations at most
OFFSET_SETTLED_PX = 0.03  # an offset measured this close to the one applied has settled
# still content whose matches are this share of them or more is a layer of its own (a background): its offset is said
MIN_STILL_SHARE = 0.1
MAX_OFFSET_RATE = 0.8  # a secant rate above this (or not positive) is not extrapolated (at most 4x the step)
# The shortest take align accepts: visual synchronisation needs this many blurry frames inside the
# sharp stream (audio needs 0.5 s); from there one sample can be built.
MIN_BLUR_FRAMES = sync.MIN_VISUAL_FRAMES


@dataclasses.dataclass(frozen=True)
class AlignOptions:
    rig: RigSettings
    flip: str = "auto"  # "auto": detect from the images (the rig's flip breaks ties), or force one
    sync_methods: tuple[str, ...] | None = None  # None: the rig's align.sync_methods
    ecc: bool = True
    write_frames: bool = True
    exposure: bool = True  # estimate the blur exposure window (False: assume centred on the timestamps)

    def __post_init__(self):
        check_sync(self.sync_methods)  # before any take is read (it failed each take alike)

    @property
    def methods(self) -> tuple[str, ...]:
        return self.rig.align.sync_methods if self.sync_methods is None else self.sync_methods

    @property
    def flips(self) -> list[str]:
        if self.flip != "auto":
            return [self.flip]
        first = self.rig.flip_sharp
        return [first] + [f for f in FLIPS if f != first]

    @property
    def hash(self) -> str:
        return settings_hash(
            {
                "rig": self.rig.hash,
                "flip": self.flip,
                "sync": list(self.methods),
                "ecc": self.ecc,
                "frames": self.write_frames,
                "exposure": self.exposure,
                "version": ALGORITHM_VERSION,
            }
        )


def fingerprint(src: VideoSource) -> list[dict]:
    """What identifies a stream's input files for resuming: names, sizes, modification times."""
    out = []
    for p in src.paths:
        st = p.stat()
        out.append({"name": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def take_inputs(take: Take, calibration: Take | None) -> dict:
    d = {"blur": fingerprint(take.blur), "sharp": fingerprint(take.sharp)}
    if calibration is not None:
        d["calibration"] = {"blur": fingerprint(calibration.blur), "sharp": fingerprint(calibration.sharp)}
    return d


def is_finished(folder: Path, inputs: dict, settings_hash_: str) -> bool:
    try:
        extra = read_alignment(folder).extra
    except Rb2vError:
        return False
    return extra.get("inputs") == json.loads(json.dumps(inputs)) and extra.get("settings_hash") == settings_hash_


# ---------------------------------------------------------------- one take
def _homography(
    take: Take,
    s: sync.SyncResult,
    flips: list[str],
    opts: AlignOptions,
    window: exposure.Window | None = None,
    lenses: dict | None = None,
    ecc: bool | None = None,
    leave_out: frozenset = frozenset(),
) -> geometry.Geometry:
    """The homography from synthetic blur of the sharp frames inside each blur frame's exposure:
    ``window`` (estimated) or, before it is known, one blur frame period centred on the timestamp.
    ``ecc=False``: the feature matches alone (ECC refines the homography, not the matches). ``leave_out``:
    blur frames not to match (a knocked rig's, LEFT_OUT)."""
    w = {} if window is None else {"centre_s": window.centre_s, "length_s": window.length_s, "skew_s": window.skew_s}
    pairs = geometry.sample_pairs(s, take.blur, take.sharp, opts.rig.align.homography_frames, flip=flips[0], **w)
    pairs = [p for p in pairs if p.blur_index not in leave_out]
    geometry.load_pairs(pairs, take.blur, take.sharp)
    sharp_size = (take.sharp.width, take.sharp.height)
    recorded = None
    if lenses:  # the dark borders are straight in the recorded frames: found there, then undistorted
        loaded = [p for p in pairs if p.blur is not None and p.synth is not None]
        if loaded:
            blur_size, margin = (take.blur.width, take.blur.height), geometry.CROP_MARGIN_PX
            recorded = (
                lensmod.coverage(lenses["blur"], blur_size, margin, geometry.valid_box([p.blur for p in loaded])),
                lensmod.coverage(lenses["sharp"], sharp_size, margin, geometry.valid_box([p.synth for p in loaded])),
            )
    lensmod.undistort_pairs(pairs, lenses)  # with lenses, all geometry is in undistorted pixels
    return geometry.estimate_geometry(
        pairs, sharp_size, flips, opts.rig.align.min_inliers, ecc=opts.ecc if ecc is None else ecc, recorded=recorded
    )


def _exposure_rounds(
    take: Take,
    s: sync.SyncResult,
    opts: AlignOptions,
    H,
    flip: str,
    g,
    sharp_box,
    refit: bool,
    lenses,
    light: flicker.SharpLight | None,
    memo: dict,
):
    """Estimate the blur exposure window, alternating with the homography (``refit``) until both
    settle; returns (H, geometry, sharp box, window or None, details). The sharp frames are evened out
    where ``light`` flickers: the blurry frame's long exposure sees the light's mean.

    ``memo`` (one take's, within ``estimate``) keeps the decoded timing data of a sync, and each fit under a
    fixed homography: a take on its calibration take's homography fits the same window up to three times
    (its shift measured inside the exposure, its own fit, the parallax offset's rounds), 1.5-2 s to decode
    and add the flow midpoints and 3 s to fit at 640x544."""
    clock = (s.time_offset_s, s.clock_ratio)
    left_out = memo.get(LEFT_OUT, frozenset())
    fixed = None
    if not refit:
        fixed = (clock, left_out, np.asarray(H, np.float64).tobytes(), flip, tuple(g.blur_valid), tuple(sharp_box))
    if fixed in memo:
        return (H, g, sharp_box, *memo[fixed])  # the caller's geometry: another with the same boxes may have fitted
    if clock not in memo:
        memo[clock] = _timing_data(take, s, opts, lenses, light)
    data = exposure.leaving_out(memo[clock], left_out) if left_out else memo[clock]
    result = _fit_rounds(take, s, opts, data, H, flip, g, sharp_box, refit, lenses, left_out)
    if fixed is not None:
        memo[fixed] = result[3:]  # the window and its details
    return result


def _timing_data(take: Take, s: sync.SyncResult, opts: AlignOptions, lenses, light) -> exposure.TimingData:
    """The blur frames and the sharp frames around them that the exposure fit compares, evened where the light
    flickers, undistorted, with flow midpoints."""
    pairs = geometry.sample_pairs(s, take.blur, take.sharp, opts.rig.align.homography_frames)
    data = exposure.load_timing_data(s, take.blur, take.sharp, [p.blur_index for p in pairs])
    if light is not None and light.frames is not None:
        data.sharp = {i: flicker.evened_grey(f, light, i) for i, f in data.sharp.items()}
    lensmod.undistort_timing(data, lenses)
    return exposure.with_midpoints(data)


def _fit_rounds(
    take: Take,
    s: sync.SyncResult,
    opts: AlignOptions,
    data,
    H,
    flip: str,
    g,
    sharp_box,
    refit,
    lenses,
    left_out: frozenset = frozenset(),
):
    """``_exposure_rounds`` on its loaded data (less the blur frames ``left_out``; see LEFT_OUT)."""
    window, rounds, tones = None, [], exposure.TONE_CURVES  # the first round picks the tone curve
    ridged = False
    rounds_left = EXPOSURE_ROUNDS
    while rounds_left:
        rounds_left -= 1
        if not data.blur_indices:
            return H, g, sharp_box, None, {"why_not": "take too short to estimate the exposure timing"}
        model = exposure.TimingModel(data, s, H, flip, g.blur_valid, sharp_box, tones)
        new, details = exposure.fit_window(model, prior=window)
        tones = (details.get("tone", tones[0]),)
        if new is None:
            return H, g, sharp_box, None, details
        rounds.append(
            {**details, "centre_ms": new.centre_s * 1e3, "length_ms": new.length_s * 1e3, "skew_ms": new.skew_s * 1e3}
        )
        settled = new.close_to(window)
        if not settled and window is not None and refit and not ridged:
            # the centre moved again with the refit homography: it may be creeping along a ridge
            ridged = True

            def make(h, tones=tones, g=g, sharp_box=sharp_box):
                return exposure.TimingModel(data, s, h, flip, g.blur_valid, sharp_box, tones, gradients=True)

            new, rounds[-1]["ridge"] = exposure.along_ridge(make, new, H, data.scale)
            if rounds[-1]["ridge"]["kept"]:  # the round's figures are the window before: fit once more after it
                rounds_left = max(rounds_left, 1)
        window = new
        if settled or not refit:
            break
        refit = _homography(take, s, [flip], opts, window, lenses, leave_out=left_out)
        if refit.inliers < opts.rig.align.min_inliers:
            break  # keep the homography the round before had, and its geometry (crop boxes, inliers, residual)
        g = refit
        H, sharp_box = g.homography, g.sharp_valid
    return H, g, sharp_box, window, {"rounds": rounds}


def _sharp_box_under(g: geometry.Geometry, flip: str, take: Take):
    """The sharp camera's valid box that ``g`` found (under its own flip) as seen under ``flip`` (a
    calibration take's)."""
    w, h = take.sharp.width, take.sharp.height
    return geometry.flip_box(geometry.flip_box(g.sharp_valid, g.flip_sharp, w, h), flip, w, h)


def _shift_inside_exposure(
    take: Take,
    s: sync.SyncResult,
    opts: AlignOptions,
    calibration: Alignment,
    g,
    shift: float,
    lenses,
    light: flicker.SharpLight | None,
    memo: dict,
) -> tuple[geometry.Geometry, float]:
    """The calibration shift measured again on matches made inside the blur exposure, estimated under the
    calibration take's homography, instead of around the timestamps; returns the geometry and shift to use.

    Green-screen matches lie on the moving subject alone, and an exposure not centred on its timestamps
    (stamped at its start, or at its end) shows the subject where it was a few ms later or earlier: the
    first matches put a still rig 1.4-3.1 px off its calibration (outside check: 0.04-0.08 px when
    centred), so align used the take's own, worse homography (0.54-0.73 px at the crop's corners against
    0.11) and called the rig moved."""
    flip = calibration.flip_sharp
    sharp_box = _sharp_box_under(g, flip, take)
    *_, window, _ = _exposure_rounds(take, s, opts, calibration.H, flip, g, sharp_box, False, lenses, light, memo)
    if window is None:
        return g, shift
    timed = _homography(take, s, [flip], opts, window, lenses)
    if timed.inliers < opts.rig.align.min_inliers:
        return g, shift
    return timed, round(geometry.shift_from(calibration.H, timed.matched), 3)


def _timed_matches(
    take: Take, s: sync.SyncResult, opts: AlignOptions, flip: str, window: exposure.Window, lenses, memo: dict
) -> geometry.Geometry:
    """The take's feature matches made inside the exposure ``window`` (no ECC), but for the frames left out;
    kept in ``memo``: the knock check and the calibration offset's first round match under the same window."""
    left_out = memo.get(LEFT_OUT, frozenset())
    key = ("matches", window, flip, left_out)
    if key not in memo:
        memo[key] = _homography(take, s, [flip], opts, window, lenses, ecc=False, leave_out=left_out)
    return memo[key]


def _frames_apart(
    take: Take, s: sync.SyncResult, opts: AlignOptions, H, flip: str, g, window: exposure.Window, lenses, memo: dict
) -> tuple[dict[int, float] | None, list[int] | None]:
    """The blur frames whose matches, made inside the exposure, sit apart from the others' under ``H`` (px by
    frame; see PAIR_OFF_PX), where they are fewer than half the frames: the view moved during the take; and the
    frames compared (None, None: too few matches)."""
    timed = _timed_matches(take, s, opts, flip, window, lenses, memo)
    if timed.inliers < opts.rig.align.min_inliers:
        return None, None
    apart = geometry.frames_apart(H, timed.matched, timed.frame, g.blur_valid, PAIR_OFF_PX, PAIR_MIN_Z)
    return apart, sorted(int(k) for k in np.unique(timed.frame))


def apart_note(key: str, apart: dict[int, float], checked: list[int]) -> str:
    """What align says of the compared blurry frames whose matches sat apart from the others' (``frames_apart``):
    a move of the views from some frame on where every later frame compared sits apart too (``knocked_from``: what
    the exposure fit leaves out and build rejects), else those frames' own matches (kept)."""
    frames = ", ".join(str(k) for k in sorted(apart))
    knock = knocked_from(apart, checked)
    verdict = (
        f"the views moved against each other from blurry frame {knock} on (a knocked rig, a loose mount); the "
        f"exposure fit and the homography leave those frames out, and build rejects the samples from frame {knock} "
        "on (knocked)"
        if knock is not None
        # a view that moved stays moved: frames in line after them tell of their own matches (rb2v bench
        # rig-unknowns, rig-drift-2, hand 7402: a hand waving fast had one frame's matches 1.42 px apart)
        else "later frames' matches sit with the others', so the views did not stay moved (a subject moving fast "
        "in those frames, or a mount that sprang back); the exposure fit and the homography keep them, and build "
        "judges their samples by its own checks"
    )
    return (
        f"{key}: the matches of blurry frame(s) {frames} sit {min(apart.values()):.2f}-{max(apart.values()):.2f} px "
        f"from the others' (> {PAIR_OFF_PX:g}): {verdict}"
    )


def _calibration_offset(
    take: Take,
    s: sync.SyncResult,
    opts: AlignOptions,
    H_cal: np.ndarray,
    flip: str,
    g,
    sharp_box,
    window: exposure.Window,
    timing: dict,
    lenses,
    light: flicker.SharpLight | None,
    memo: dict,
):
    """The calibration take's homography moved by the median offset of this take's own matches on moving
    content, made inside the blur exposure, alternating with the exposure window (which a misregistered view
    biases along the motion) until the offset settles; returns (H, window, timing, offset px or None when not
    measured, how far the still content's matches sit from the moving content's, px, or None, how far a turn
    fitted to the matches moves the valid box's corners beyond the offset, px, or None (see TURN_PX), whether
    that turn was applied, and the offset refused with the fits' PSNR under the calibration take's homography and
    under it, or None (see below)).

    A beam-splitter rig is never exactly nodal: where the cameras' centres of projection differ by t, a layer
    at depth Z shifts by f t / Z between the views, so the board's homography is off by f t (1/Z - 1/Z_board)
    on a subject at another distance, the same shift over the subject (a turn or scale would need a centre
    offset along the view, and matches spanning more of the frame to be fitted). rb2v's simulator, a rig
    5 mm off nodal, a face at 0.6 m, the board at 1 m: 1.08 px at the crop's corners before, 0.05 px after.
    The moving content is what a sample's timing rests on (the exposure fit, Algorithm 1, the QC), so its
    matches decide where there are enough of them: an outside check's face before a textured wall at another
    depth had the wall's matches (92 % of them) pull the face 0.73 px off and the window 2.0 ms early.
    Where the subject moves along the offset, each round corrects a part of what the round before left (an
    outside check's waving hand: 0.55, 0.83, 0.99, 1.10 ... px), so after two rounds the offset is
    extrapolated to where the alternation settles (the secant's rate; a fixed point iteration's Aitken step).

    The offset is kept only where the exposure fit under it matches the blurry frames better than without it (its
    pooled PSNR over the moving pixels), and the turn, where the offset was refused, only where it does too: a
    blurred subject's matches can sit off where the views do not. rb2v bench rig-unknowns, hand seed 7414, a still
    rig whose calibration take's homography was 0.04-0.08 px off at the crop's corners: the hand's matches sat
    (+0.44, -0.29) px off in each of 12 frames alike, and the shift took the corners to 0.60 px (92.5 % at the exact
    start); ORB's coarse pyramid levels carry it (found on 3 levels instead of 8: 0.15 px). The fit under that shift
    was 0.90 dB worse than without; under the shifts that were right, better by 3.5 (a hand 5 mm off nodal), 9.6 (a
    face) and 2.2-13.3 dB (rigs bumped after their calibration take)."""
    min_inliers = opts.rig.align.min_inliers
    before = window, timing  # the fit under the calibration take's homography
    applied, measured = [np.zeros(2)], []
    still_gap = None
    used = None  # the last round's matches on moving content (all of them where too few move)
    for _ in range(OFFSET_ROUNDS):
        timed = _timed_matches(take, s, opts, flip, window, lenses, memo)
        if timed.inliers < min_inliers:
            break
        src, dst = timed.matched
        moving = timed.moving  # made with every geometry that has matches
        use = moving if moving.sum() >= min_inliers else np.ones(len(src), bool)
        used = src[use], dst[use]
        new = geometry.offset_from(H_cal, used)
        if moving.sum() >= min_inliers and (~moving).sum() >= max(min_inliers, MIN_STILL_SHARE * len(src)):
            still_gap = float(np.hypot(*(geometry.offset_from(H_cal, (src[~moving], dst[~moving])) - new)))
        if np.hypot(*new) < MIN_OFFSET_PX:
            new = np.zeros(2)
        if np.hypot(*(new - applied[-1])) < OFFSET_SETTLED_PX:
            measured.append(new)
            break
        step = new
        if measured:  # the secant's rate of the last two rounds, where each corrects a steady part of the rest
            moved = applied[-1] - applied[-2]
            rate = float((new - measured[-1]) @ moved / max(float(moved @ moved), 1e-12))
            if 0 < rate < MAX_OFFSET_RATE:
                step = new + (new - applied[-1]) * rate / (1 - rate)
        measured.append(new)
        applied.append(step)
        refit = _exposure_rounds(
            take, s, opts, geometry.translated(H_cal, step), flip, g, sharp_box, False, lenses, light, memo
        )
        if refit[3] is None:
            applied.pop()
            break
        window, timing = refit[3], refit[4]
    offset = applied[-1]
    shifted = H = geometry.translated(H_cal, offset)
    refused = None
    if offset.any() and _fit_psnr(timing) <= _fit_psnr(before[1]):
        refused = offset, _fit_psnr(before[1]), _fit_psnr(timing)
        H, (window, timing), offset = H_cal, before, np.zeros(2)
    turn, turned = None, False
    if used is not None:
        fits = [geometry.turn_onto(H_cal, used, g.blur_valid)]
        if lenses:  # the camera turned in 3-D too: its pan or tilt shifts the view and leaves a keystone
            fits.append(geometry.turn_onto(H_cal, used, g.blur_valid, K=lenses["blur"].K))
        turn = max(geometry.apart_at_corners(shifted, bump @ H_cal, g.blur_valid) for bump, _ in fits)
        error = max(error for _, error in fits)
        bumped = (fits[0][0] if len(fits) == 1 else geometry.halfway(fits[0][0], fits[1][0])) @ H_cal
        if turn > max(TURN_PX, TURN_MIN_Z * error):
            refit = _exposure_rounds(take, s, opts, bumped, flip, g, sharp_box, False, lenses, light, memo)
            # the fit judges the turn only where it refused the matches' shift: a turn that stands out of the
            # matches' scatter moves the corners, which the fit over the subject barely sees (hand 7417, rig-drift-2:
            # 0.14 dB worse under the true turn, the corners 0.81 px off without it, 0.12 with it)
            if refit[3] is not None and (refused is None or _fit_psnr(refit[4]) > _fit_psnr(timing)):
                H, window, timing, turned = bumped, refit[3], refit[4], True
    return H, window, timing, (offset if measured else None), still_gap, turn, turned, refused


def _fit_psnr(timing: dict) -> float:
    """The pooled PSNR (dB) of an exposure fit's last round."""
    return float(timing["rounds"][-1]["psnr"])


def _unsynchronised(take: Take, error: sync.Unsynchronised) -> sync.SyncResult:
    """What to do with a take no sync method could synchronise: a calibration take whose pictures do not
    move needs no sync for its homography (offset 0, confidence 0); any other take fails, told how far
    its pictures move (visual sync needs them to move)."""
    motion = sync.picture_motion_px(take.sharp)
    if take.category == CALIBRATION_DIR and motion <= STILL_PX:
        return sync.SyncResult(0.0, 1.0, "visual", 0.0, details={"still_px": round(motion, 4)})
    moves = f"over the take its pictures move {motion:.2f} px" if np.isfinite(motion) else "no texture to register"
    hint = f" (a calibration take moving under {STILL_PX:g} px needs none)" if take.category == CALIBRATION_DIR else ""
    raise Rb2vError(f"{error}; {moves}{hint}") from None


def _refined(take: Take, s: sync.SyncResult, H, flip: str, blur_box, sharp_box, opts: AlignOptions) -> sync.SyncResult:
    """A visual sync refit per thumbnail pixel where both cameras see validly, in the geometry (H, flip)."""
    blur_shape, sharp_shape = (take.blur.height, take.blur.width), (take.sharp.height, take.sharp.width)
    mask = geometry.common_mask(H, blur_shape, blur_box, sharp_box, sharp_shape, erode=2)
    raw_to_blur = H @ geometry.flip_matrix(flip, take.sharp.width, take.sharp.height)
    return sync.refine_visual(s, raw_to_blur, mask, take.blur, take.sharp, opts.rig.align.estimate_drift_min_seconds)


def _settle_visual_sync(
    take: Take, s: sync.SyncResult, g: geometry.Geometry, flips: list[str], opts: AlignOptions, lenses
) -> tuple[sync.SyncResult, geometry.Geometry]:
    """An ambiguous visual sync settled: its best offset and each rival get their own homography and are refit
    per thumbnail pixel, and the best correlation wins; returns that sync (its confidence from the per-pixel
    correlations) and its geometry.

    Coarse grid cells average a repeating motion (a waving hand) into near-equal peaks; pixels keep where
    the hand is, and a wrong offset's homography is matched on the hand in another place. On rb2v's
    simulator (hand seed 32, no sound) the coarse search was 0.55 s off (0.924 against 0.859 at the true
    offset); per pixel the true offset scored 0.932, the wrong one 0.776."""
    entries = []
    for offset, ratio in [(s.time_offset_s, s.clock_ratio)] + [
        (r["offset_s"], r["clock_ratio"]) for r in s.details["rivals"]
    ]:
        candidate = dataclasses.replace(s, time_offset_s=offset, clock_ratio=ratio)
        gc = _homography(take, candidate, flips, opts, None, lenses) if entries else g
        score = -1.0
        if gc.inliers >= opts.rig.align.min_inliers:
            refit = _refined(take, candidate, gc.homography, gc.flip_sharp, gc.blur_valid, gc.sharp_valid, opts)
            score = refit.details["refined_correlation"]
        entries.append((score, candidate, gc))
    best, second = sorted(entries, key=lambda e: -e[0])[:2]
    if best[0] < 0:  # no offset has a homography: nothing to weigh them by
        return s, g
    settled = {
        "correlation": best[0],
        "second_peak": second[0],
        "coarse_offset_s": s.time_offset_s,
        "per_pixel_correlations": [e[0] for e in entries],  # the coarse best first, then each rival
    }
    confidence = sync.settled_confidence(best[0], second[0])
    return dataclasses.replace(best[1], confidence=confidence, details={**s.details, "settled": settled}), best[2]


def estimate(take: Take, opts: AlignOptions, calibration: Alignment | None = None) -> Alignment:
    """Sync + geometry + crop of one take, as its alignment (no frames written)."""
    try:
        return _estimate(take, opts, calibration)
    finally:
        decode.forget()  # the frames kept for the take's next homography estimate


def _estimate(take: Take, opts: AlignOptions, calibration: Alignment | None) -> Alignment:
    a = opts.rig.align
    if take.blur.frames < MIN_BLUR_FRAMES:
        raise Rb2vError(
            f"{take.folder}: take too short: {take.blur.frames} blurry frame(s); aligning needs at least "
            f"{MIN_BLUR_FRAMES} (visual synchronisation matches that many)"
        )
    try:
        s = sync.synchronise(
            take.blur,
            take.sharp,
            methods=opts.methods,
            max_offset_s=a.max_offset_s,
            drift_min_s=a.estimate_drift_min_seconds,
            flip=None if opts.flip == "auto" else opts.flip,
        )
    except sync.Unsynchronised as e:
        s = _unsynchronised(take, e)
    # the sharp camera's light, measured on its thumbnails (visual sync decoded them already); a calibration
    # take's too, for its exposure fit, whose homography the session's takes inherit (an outside check's
    # board under PWM light at 250 Hz: its window 9.3 ms off, the takes' crop corners 0.269 px against 0.025)
    thumbs = s.thumbs[1] if s.thumbs is not None else sync.thumbnails(take.sharp)
    light = flicker.sharp_light(thumbs, float(take.sharp.fps))
    memo: dict = {}  # the exposure fit's decoded frames and fits under a fixed homography (_exposure_rounds)
    flips = opts.flips
    if s.flip_hint and opts.flip == "auto":
        flips = [s.flip_hint] + [f for f in flips if f != s.flip_hint]
    lenses = lensmod.take_lenses(take, opts.rig, calibration)
    g = _homography(take, s, flips, opts, None, lenses)
    if s.details.get("rivals"):
        s, g = _settle_visual_sync(take, s, g, flips, opts, lenses)
    if g.inliers >= a.min_inliers:  # bands that stand still show only against the blurry frames, seen through g
        light, standing = flicker.still_bands(
            light,
            thumbs,
            s.thumbs[0] if s.thumbs is not None else sync.thumbnails(take.blur),
            g.homography @ geometry.flip_matrix(g.flip_sharp, take.sharp.width, take.sharp.height),
            (take.sharp.width, take.sharp.height),
            (take.blur.width, take.blur.height),
            s.sharp_time,
            float(take.blur.fps),
            float(take.sharp.fps),
            lenses,
            (geometry.flip_box(g.sharp_valid, g.flip_sharp, take.sharp.width, take.sharp.height), g.blur_valid),
        )
    else:
        standing = None
    usable = calibration is not None and calibration.inliers > 0  # 0: a board take's lenses without a homography
    shift = None  # how far the calibration take's homography puts this take's own matches
    notes: list[str] = []  # what the take's note says, in order
    if usable and g.inliers >= a.min_inliers and g.flip_sharp == calibration.flip_sharp:
        shift = round(geometry.shift_from(calibration.H, g.matched), 3)
        if shift > a.max_calibration_shift_px * REMEASURE_FRACTION and opts.exposure:
            g, shift = _shift_inside_exposure(take, s, opts, calibration, g, shift, lenses, light, memo)
    moved = shift is not None and shift > a.max_calibration_shift_px  # the rig moved since the calibration take
    # matches over too little of the frame for this take's own homography to reach the crop's corners
    narrow = moved and g.cover < MOVED_MIN_COVER
    start = np.zeros(2)  # where a moved take's matches put the calibration take's homography to begin with
    if g.inliers < a.min_inliers or (g.cover <= a.min_match_cover and usable and (narrow or not moved)):
        if not usable:
            why = (
                f"names calibration take '{take.calibration}', which is not usable"
                if take.calibration
                else "no calibration take named in take.toml"
            )
            raise Rb2vError(
                f"{take.folder}: too few feature matches for a homography ({g.inliers} inliers, "
                f"need {a.min_inliers}) and {why}"
            )
        H, flip, used_calibration = calibration.H, calibration.flip_sharp, take.calibration
        if g.inliers < a.min_inliers:
            reason = f"{g.inliers} inliers (< {a.min_inliers})"
        elif narrow:
            start = geometry.offset_from(calibration.H, g.matched)
            H = geometry.translated(calibration.H, start)
            reason = (
                f"its homography puts this take's matches {shift:.2f} px off (> {a.max_calibration_shift_px:g}): the "
                f"rig moved since, but they span {g.cover:.0%} of the frame (< {MOVED_MIN_COVER:.0%}), too little "
                "for this take's own homography to reach the crop's corners: the calibration take's is moved onto them"
            )
        elif shift is not None:
            reason = (
                f"its homography puts this take's matches {shift:.2f} px off (<= {a.max_calibration_shift_px:g}: "
                "the rig did not move far)"
            )
        else:
            reason = f"matches span {g.cover:.0%} of the frame (< {a.min_match_cover:.0%})"
        notes.append(f"{take.key}: using calibration take '{take.calibration}': {reason}")
        sharp_box = _sharp_box_under(g, flip, take)
    else:
        H, flip, used_calibration, sharp_box = g.homography, g.flip_sharp, None, g.sharp_valid
        if moved and g.cover <= a.min_match_cover:
            notes.append(
                f"{take.key}: calibration take '{take.calibration}' puts this take's matches {shift:.1f} px off "
                f"(> {a.max_calibration_shift_px:g}): the rig moved since; using this take's own homography (its "
                f"matches span {g.cover:.0%} of the frame)"
            )
            calibration_cover = calibration.extra.get("take_match_cover", 1.0)
            if calibration_cover < MIN_CALIBRATION_COVER:
                notes.append(
                    f"or the calibration take's own homography is off (its matches span {calibration_cover:.0%} "
                    f"of the frame, < {MIN_CALIBRATION_COVER:.0%})"
                )
    if s.thumbs is not None:  # visual sync matched pictures
        # The first visual estimate compares cells of two views that differ by H; refit per pixel
        # in a common geometry, then redo the homography if the synthetic blur it used was off.
        coarse = s
        s = _refined(take, s, H, flip, g.blur_valid, sharp_box, opts)
        moved = abs(s.time_offset_s - coarse.time_offset_s) * float(take.sharp.fps)
        if not used_calibration and moved > REFIT_SHARP_FRAMES:
            g = _homography(take, s, [flip], opts, None, lenses)
            H, sharp_box = g.homography, g.sharp_valid
    window, timing, offset, still_gap, turn, apart, checked = None, {}, None, None, None, None, None
    if take.category == CALIBRATION_DIR and g.cover < MIN_CALIBRATION_COVER:
        sparse = (
            f"{take.key}: this calibration take's matches span {g.cover:.0%} of the frame (< "
            f"{MIN_CALIBRATION_COVER:.0%}): its homography extrapolates to the crop's corners; film a textured "
            "board that fills the frame"
        )
        notes.append(sparse)
    still = s.details.get("still_px")
    if still is not None:
        timing = {"why_not": "the pictures do not move"}
        unsynced = (
            f"{take.key}: no sync method could synchronise this calibration take, but its pictures move "
            f"{still:.3f} px over it (< {STILL_PX:g}): its homography needs no sync; time_offset_s 0 is not measured"
        )
        notes.append(unsynced)
    elif opts.exposure:
        H, g, sharp_box, window, timing = _exposure_rounds(
            take, s, opts, H, flip, g, sharp_box, not used_calibration, lenses, light, memo
        )
        if window is not None:
            apart, checked = _frames_apart(take, s, opts, H, flip, g, window, lenses, memo)
        knock = knocked_from(apart, checked)  # None where none (or not all later ones) sit apart
        if knock is not None:  # the frames from the knock on
            memo[LEFT_OUT] = frozenset(k for k in apart if k >= knock)
            refit = _exposure_rounds(take, s, opts, H, flip, g, sharp_box, not used_calibration, lenses, light, memo)
            if refit[3] is not None:
                H, g, sharp_box, window, timing = refit
        if apart:
            notes.append(apart_note(take.key, apart, checked))
        if used_calibration and window is not None and g.inliers >= a.min_inliers:
            H, window, timing, offset, still_gap, turn, turned, refused = _calibration_offset(
                take, s, opts, H, flip, g, sharp_box, window, timing, lenses, light, memo
            )
            offset = None if offset is None else offset + start
            if refused is not None:
                (dx, dy), psnr_before, psnr_after = refused
                notes.append(
                    f"{take.key}: this take's matches on moving content put the calibration take's homography "
                    f"({dx:+.2f}, {dy:+.2f}) px off, but the blurry frames fit the sharp frames worse so moved "
                    f"({psnr_after:.2f} against {psnr_before:.2f} dB): not moved (a blurred subject's matches sit off "
                    "where the views do not)"
                )
            if turned:
                notes.append(
                    f"{take.key}: the calibration take's homography turned and shifted to this take's own "
                    f"matches on moving content (they span {g.cover:.0%} of the frame), made inside the blur exposure; "
                    f"the turn moves the frame's corners {turn:.2f} px beyond a shift alone (> {TURN_PX:g}): the rig "
                    "turned since the calibration take"
                )
            elif offset is not None and offset.any():
                notes.append(
                    f"{take.key}: the calibration take's homography moved by ({offset[0]:+.2f}, {offset[1]:+.2f}) px "
                    "to this take's own matches on moving content, made inside the blur exposure: a subject nearer "
                    "or farther than the board, with the cameras' centres apart (parallax), or the rig shifted a little"
                )
            if still_gap is not None and still_gap > MIN_OFFSET_PX:
                notes.append(
                    f"{take.key}: its still content's matches sit {still_gap:.2f} px from its moving content's: parts "
                    "at another depth (a background behind the subject), which the homography of the moving ones "
                    "leaves that far off (parallax: the cameras' centres differ; a green screen hides it)"
                )
        if window is not None and exposure.at_search_edge(window, float(take.blur.fps), float(take.sharp.fps)):
            edge = (
                f"{take.key}: the blur exposure was found at the edge of the searched "
                f"±{exposure.CENTRE_RANGE * 1e3 / float(take.blur.fps):.0f} ms from its timestamps: the sync "
                f"({s.method}) may be off by more (e.g. the cameras' sound latencies differ); check with --sync visual"
            )
            notes.append(edge)
    if narrow and offset is None:  # no exposure fit: the matches' own shift
        offset = start
    ridge = next((r["ridge"] for r in timing.get("rounds", []) if r.get("ridge", {}).get("kept")), None)
    if ridge:
        notes.append(
            f"{take.key}: its pictures move as one (a pan): a time offset and a shift of the view trade against "
            f"each other, so the exposure and the homography were fitted together (the fit {ridge['psnr_before']:.2f} "
            f"-> {ridge['psnr_after']:.2f} dB); a still calibration board, or audio or timecode sync, pins them better"
        )
    # visual sync measures content time: the window is relative to it (the timestamps' phase is not seen)
    blur_method = "estimated" if s.method != "visual" else "estimated relative to visual sync"
    weak = exposure.undetermined(timing["rounds"][-1]) if window is not None else []
    if weak:
        blur_method += NOT_DETERMINED + ", ".join(weak)
        drops = ", ".join(
            f"the {name} {timing['rounds'][-1][f'{name}_drop_db']:.3f} dB (< {exposure.MIN_DROP_DB[name]:g})"
            for name in weak
        )
        notes.append(
            f"{take.key}: the pictures do not determine the blur exposure's {' and '.join(weak)} "
            f"(moving {'them' if len(weak) > 1 else 'it'} changes the fit by little: {drops}): "
            "alignment.json gives the fit's best guess"
            + (", and build does not check its samples against the clock" if "centre" in weak else "")
        )
    ambiguous = sync.ambiguity_note(s, take.key)
    if ambiguous:
        notes.append(ambiguous)
    if light.band_ptp > flicker.MIN_BAND_PTP:
        notes.append(
            f"{take.key}: the sharp camera's light draws bands along its rows that move from frame to frame "
            f"({light.band_ptp:.2f} apart in log light; a row's light {light.rows.min():.2f}-{light.rows.max():.2f} "
            "of the same rows' mean over the frames around it: a rolling shutter under mains or PWM LED lighting): "
            "build evens its frames out row by row (sharp_light_rows)"
        )
    elif light.step_rms >= flicker.MIN_STEP_RMS:
        notes.append(
            f"{take.key}: the sharp camera's light flickers from frame to frame ({light.step_rms:.0%} rms, "
            f"{light.frames.min():.2f}-{light.frames.max():.2f} of the mean over the frames around it: mains or PWM "
            "LED lighting): build evens its frames out (sharp_light)"
        )
    if standing is not None and standing >= flicker.MIN_STILL_PTP:
        notes.append(
            f"{take.key}: the sharp camera's light draws bands along its rows that stand still ({standing:.2f} apart "
            "in log light against the blurry frames, whose long exposure sees the light's mean: a rolling shutter "
            "under a light pulsing at a multiple of its frame rate): build evens its frames out row by row "
            "(sharp_light_rows)"
        )
    blur_shape, sharp_shape = (take.blur.height, take.blur.width), (take.sharp.height, take.sharp.width)
    crop = lensmod.choose_crop(
        lenses,
        H,
        flip,
        blur_shape,
        g.blur_valid,
        sharp_box,
        sharp_shape,
        opts.rig.crop.width,
        opts.rig.crop.height,
        g.recorded,
    )
    extra = {
        "take_inliers": g.inliers,
        "take_match_cover": g.cover,
        "calibration_shift_px": shift,
        # the shift (x, y px) applied to the calibration take's homography (None: not measured; a turn applied with
        # a shift of its own replaces it, calibration_turn_px)
        "calibration_offset_px": None if offset is None else [round(float(v), 3) for v in offset],
        # how far its still content's matches sit from its moving content's (px; None: not both measured)
        "calibration_still_gap_px": None if still_gap is None else round(still_gap, 3),
        # how far a turn fitted to its matches moves the valid box's corners beyond the shift (px; None: not
        # measured); applied over TURN_PX where it stands out of the matches' scatter
        "calibration_turn_px": None if turn is None else round(turn, 3),
        # blurry frames whose matches sit apart from the others' (px by frame, PAIR_OFF_PX; None: not measured)
        "frames_apart_px": None if apart is None else {str(k): v for k, v in sorted(apart.items())},
        "frames_checked": checked,  # the blurry frames whose matches were compared so (None: not measured)
        "sync_confidence": s.confidence,
        "sync_prior": s.prior,
        "sync_details": s.details,
        "calibration": used_calibration,
        "ecc_pairs": g.ecc_pairs,
        "tone_curve": g.tone_curve,  # the cameras' tone curve the geometry found (None: not estimated)
        "tone_ecc": g.tone_scores,
        "frame_pairs": g.pairs,
        "rig_flip_sharp": opts.rig.flip_sharp,
        "blur_valid": list(g.blur_valid),
        "blur_frames": take.blur.frames,
        "sharp_frames": take.sharp.frames,
        "blur_size": [take.blur.width, take.blur.height],
        "sharp_size": [take.sharp.width, take.sharp.height],
        "blur_files": [p.name for p in take.blur.paths],
        "sharp_files": [p.name for p in take.sharp.paths],
        "sharp_light_step_rms": round(light.step_rms, 5),
        "sharp_light_band_ptp": round(light.band_ptp, 4),
        "sharp_light_still_ptp": None if standing is None else round(standing, 4),
    }
    if light.frames is not None:  # build divides them out
        extra["sharp_light"] = [round(float(v), 5) for v in light.frames]  # each frame's relative to its neighbours'
    if light.rows is not None:  # per frame, each band of recorded rows, top to bottom
        extra["sharp_light_rows"] = [[round(float(v), 4) for v in row] for row in light.rows]
    if notes:
        extra["note"] = "; ".join(notes)
    if timing:
        extra["exposure_fit"] = timing
    return Alignment(
        blur_fps=float(take.blur.fps),
        sharp_fps=float(take.sharp.fps),
        flip_sharp=flip,
        homography=tuple(tuple(float(v) for v in row) for row in H),
        crop=Crop(**crop),
        time_offset_s=s.time_offset_s,
        clock_ratio=s.clock_ratio,
        sync_method=s.method,
        exposure=None
        if window is None
        else {
            "blur": window.exposure(blur_method),
            "sharp": exposure.sharp_exposure(float(take.sharp.fps)),
        },
        lens=lenses,
        # the quality of the homography used: the calibration take's when it stood in
        residual_px=calibration.residual_px if used_calibration else g.residual_px,
        inliers=calibration.inliers if used_calibration else g.inliers,
        extra=extra,
    )


def _encode_chapter(path: Path, first_index: int, vf: str, folder: Path, compression: int) -> None:
    """Decode one video file, filter every frame with ``vf`` and write ``folder/%06d.png`` from
    ``first_index`` on, all inside ffmpeg (no frame passes through Python)."""
    out = ffmpeg.graph.input(str(path))["v:0"].output(
        str(folder / "%06d.png"),
        vf=vf,
        vcodec="png",
        # Paeth, as ``images.png_params`` (ffmpeg has no run-length deflate): at level 1 it wrote 419 street
        # frames of 448x448 in 7 % fewer bytes than "sub" (132 vs 141 MB), 50 hand frames in 5-6 % fewer,
        # in the same time (2026-12-04)
        pred="paeth" if compression else "none",
        compression_level=compression,
        start_number=first_index,
        f="image2",
        **ffmpeg.passthrough(),
    )
    ffmpeg.run(out, what=f"{path}: writing aligned frames")


def _check_count(src: VideoSource, folder: Path) -> None:
    written = sum(1 for _ in folder.glob("*.png"))
    if written != src.frames:
        raise Rb2vError(f"{src.path}: wrote {written} aligned frames, the stream has {src.frames}")


def _maps_and_box(map_x: np.ndarray, map_y: np.ndarray, frame_w: int, frame_h: int):
    """Fixed-point remap tables from float maps into the input frame, and the even-aligned box of
    the input they read (with the cubic kernel's reach)."""
    x0 = max(0, int(np.floor(map_x.min())) - 2) // 2 * 2
    y0 = max(0, int(np.floor(map_y.min())) - 2) // 2 * 2
    x1 = min(frame_w, int(np.ceil(map_x.max())) + 3)
    y1 = min(frame_h, int(np.ceil(map_y.max())) + 3)
    bw, bh = (x1 - x0) // 2 * 2, (y1 - y0) // 2 * 2
    maps = cv2.convertMaps((map_x - x0).astype(np.float32), (map_y - y0).astype(np.float32), cv2.CV_16SC2)
    return maps, (x0, y0, bw, bh)


def _save_warped(path: Path, frame: np.ndarray, maps, params: list[int]) -> None:
    warped = cv2.remap(frame, maps[0], maps[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(warped, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise Rb2vError(f"{path}: could not encode image")
    buf.tofile(path)  # the take's folder is temporary and renamed when complete


def write_frames(take: Take, meta: Alignment, folder: Path, compression: int = 0, threads: int = 2) -> None:
    """blur/%06d.png: the crop of each blur frame (ffmpeg alone); sharp/%06d.png: each raw sharp
    frame flipped, warped by the homography into the blur view and cropped in one cubic
    resampling, streamed in chunks (only the box the crop reads is decoded to RGB) through a
    thread pool (OpenCV releases the GIL)."""
    crop = meta.crop.to_json()
    x, y, w, h = crop["x"], crop["y"], crop["width"], crop["height"]
    (folder / "blur").mkdir(parents=True, exist_ok=True)

    # undistortion: the blur frames need a remap of their own (else a crop), the sharp map composes it
    blur_maps = (
        _maps_and_box(*lensmod.frame_maps(meta, "blur"), take.blur.width, take.blur.height) if meta.lens else None
    )
    sharp_size = (take.sharp.width, take.sharp.height)
    sharp_maps = _maps_and_box(*lensmod.frame_maps(meta, "sharp", sharp_size), *sharp_size)
    params = png_params(compression)

    def write_blur() -> None:
        if blur_maps is not None:
            with cf.ThreadPoolExecutor(threads) as blur_pool:
                _write_remapped(take.blur, blur_maps, folder / "blur", params, blur_pool)
            _check_count(take.blur, folder / "blur")
            return
        first = 0
        for info in take.blur.chapters:
            _encode_chapter(
                info.path, first, f"format=rgb24,crop={w}:{h}:{x}:{y}:exact=1", folder / "blur", compression
            )
            first += info.frames
        _check_count(take.blur, folder / "blur")

    sharp = folder / "sharp"
    sharp.mkdir(parents=True, exist_ok=True)
    with cf.ThreadPoolExecutor(threads + 1) as pool:
        blur_done = pool.submit(write_blur)  # its own ffmpeg process (or remap pool), beside the sharp stream's
        _write_remapped(take.sharp, sharp_maps, sharp, params, pool)
        blur_done.result()
    _check_count(take.sharp, sharp)


def _write_remapped(src: VideoSource, maps_box, out: Path, params: list[int], pool: cf.Executor) -> None:
    """Every frame of ``src`` through one remap into ``out/%06d.png``: only the box the maps read is
    decoded to RGB, in chunks, and the frames are remapped and encoded in ``pool``."""
    maps, box = maps_box
    pending: list[cf.Future] = []
    index = 0
    for chunk in decode.crop_filtered(src, box):
        for frame in chunk:
            pending.append(pool.submit(_save_warped, out / f"{index:06d}.png", frame, maps, params))
            index += 1
        if len(pending) > 32:  # bounded: decoding must not run ahead of writing
            for f in pending[:16]:
                f.result()
            pending = pending[16:]
    for f in pending:
        f.result()


def align_take(
    take: Take,
    out_folder: Path,
    opts: AlignOptions,
    calibration: Alignment | None = None,
    calibration_take: Take | None = None,
) -> tuple[str, Alignment]:
    """Align one take into ``out_folder``; returns ("aligned" | "skipped", its alignment)."""
    inputs = take_inputs(take, calibration_take)
    if calibration is not None and calibration.lens:  # recalibrated lenses redo the take
        inputs["lens"] = lensmod.lens_json(calibration.lens)
    # a take aligned with its frames serves a run without them (--no-frames wiped a finished take's frames)
    with_frames = opts if opts.write_frames else dataclasses.replace(opts, write_frames=True)
    if is_finished(out_folder, inputs, opts.hash) or is_finished(out_folder, inputs, with_frames.hash):
        return "skipped", read_alignment(out_folder)
    meta = estimate(take, opts, calibration)
    meta = dataclasses.replace(meta, extra={**meta.extra, "settings_hash": opts.hash, "inputs": inputs})
    if meta.extra.get("note"):
        say(meta.extra["note"])
    with atomic_dir(out_folder) as tmp:
        if opts.write_frames:
            write_frames(take, meta, tmp, opts.rig.align.png_compression)
        write_alignment(tmp, meta)
    return "aligned", meta


def align_calibration(take: Take, out_folder: Path, opts: AlignOptions) -> Alignment:
    """A calibration take's alignment (no frames): its homography serves takes with too few features;
    a board take (board.toml) also calibrates both lenses, which its alignment's ``lens`` carries."""
    inputs = take_inputs(take, None)
    board = lensmod.read_board(take.folder)
    if board is not None:
        inputs["board"] = {**board.to_json(), "calibration_version": lensmod.CALIBRATION_VERSION}
    if is_finished(out_folder, inputs, opts.hash):
        return read_alignment(out_folder)
    meta = estimate(take, opts, None) if board is None else lensmod.board_alignment(take, out_folder, opts, estimate)
    meta = dataclasses.replace(meta, extra={**meta.extra, "settings_hash": opts.hash, "inputs": inputs})
    if meta.extra.get("note"):  # said as a take's is: a board over 6 % of the frame was only in alignment.json
        say(meta.extra["note"])
    out_folder.mkdir(parents=True, exist_ok=True)
    write_alignment(out_folder, meta)
    return meta


# ---------------------------------------------------------------- a whole tree
def calibration_unit(take: Take, out: str, opts: AlignOptions) -> Alignment:
    """Unit of work: a calibration take's alignment (its homography serves takes of its session)."""
    return align_calibration(take, Path(out) / CALIBRATION_DIR / take.subject, opts)


def take_unit(
    take: Take, out: str, opts: AlignOptions, calibration: Alignment | None, calibration_take: Take | None
) -> str:
    """Unit of work: one take (its sync and homography need the whole take); returns its status."""
    folder = Path(out) / "aligned" / take.category / take.subject / take.take
    try:
        return align_take(take, folder, opts, calibration, calibration_take)[0]
    except Rb2vError as e:
        msg = str(e)  # name the take's folder when the message does not already
        raise Rb2vError(msg if str(take.folder) in msg else f"{take.folder}: {msg}") from None


def _write_parquet(table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def run_align(
    raw: str | os.PathLike, out: str | os.PathLike, opts: AlignOptions, executor: ExecutorSettings = INLINE
) -> dict:
    """Discover, pair and align every take under ``raw`` into ``out``.

    Writes ``out/takes.parquet`` and ``out/align_errors.parquet`` (one row per failed take);
    raises ``PartialFailure`` after all takes were tried when any failed.
    """
    raw, out = Path(raw), Path(out)
    preflight(raw, out, executor)  # OUT beside RAW, the executor, RAW there
    a = opts.rig.align
    takes, calibrations, errors = discover(raw, a.fps_ratio, a.fps_ratio_tolerance)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "aligned").exists():
        clean_partials(out / "aligned")  # leftovers of a crashed run; finished takes are whole folders
    _write_parquet(takes_table(takes, raw), out / "takes.parquet")
    for e in errors:  # pairing errors; the executor says each failed unit as it happens
        say(f"rb2v: error: {e.error}")

    wanted = sorted({t.calibration for t in takes if t.calibration and t.calibration in calibrations})
    calib_meta: dict[str, Alignment] = {}
    calib_units = [
        Unit(str(calibrations[n].folder), calibration_unit, (calibrations[n], str(out), opts)) for n in wanted
    ]
    for name, outcome in zip(wanted, run_units(calib_units, executor, desc="align calibration", unit_name="take")):
        if outcome.ok:
            calib_meta[name] = outcome.value
        else:
            c = calibrations[name]
            errors.append(TakeError(CALIBRATION_DIR, name, "", c.folder, "align", outcome.error, outcome.traceback))

    # a take whose calibration take failed is not aligned without it (its homography, its lens model), as
    # discover does not pair one whose calibration take cannot be read: the user's fix then aligns both
    usable = []
    for t in takes:
        if t.calibration and t.calibration not in calib_meta:
            why = f"{t.folder}: its calibration take '{t.calibration}' could not be aligned (its error is above)"
            errors.append(TakeError(t.category, t.subject, t.take, t.folder, "align", why))
            say(f"rb2v: error: {why}")
        else:
            usable.append(t)
    takes = usable
    units = [
        Unit(
            str(t.folder),
            take_unit,
            (t, str(out), opts, calib_meta.get(t.calibration or ""), calibrations.get(t.calibration or "")),
        )
        for t in takes
    ]
    counts = {"aligned": 0, "skipped": 0}
    for take, outcome in zip(takes, run_units(units, executor, desc="align", unit_name="take")):
        if outcome.ok:
            counts[outcome.value] += 1
        else:
            errors.append(
                TakeError(
                    take.category, take.subject, take.take, take.folder, "align", outcome.error, outcome.traceback
                )
            )
    _write_parquet(errors_table(errors, raw), out / "align_errors.parquet")
    summary = {**counts, "failed": len(errors), "errors": [e.error for e in errors]}
    say(
        f"align: {summary['aligned']} aligned, {summary['skipped']} already done, {summary['failed']} failed "
        f"-> {out / 'aligned'}"
    )
    if errors:
        raise PartialFailure(f"{len(errors)} take(s) failed; see {out / 'align_errors.parquet'}")
    return summary
