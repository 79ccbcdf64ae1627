"""Rig definitions (``rigs/*.toml``) and per-category pipeline settings (``pipelines/*.toml``).

A rig file describes hardware: the two cameras, which one is mirrored, the crop and
the sequence structure. A pipeline file describes what ``rb2v build`` does for one
category. Both load into frozen dataclasses; unknown keys and wrong types are errors
that name the key and the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config import apply_overrides, from_mapping, read_toml, settings_hash
from .errors import Rb2vError

PACKAGE_DIR = Path(__file__).resolve().parent
# Where the bundled rigs/ and pipelines/ are: inside the installed package (a wheel ships the
# repository's top-level folders as rb2v/rigs, rb2v/pipelines), or at the top of a checkout.
BUNDLED_ROOTS = (PACKAGE_DIR, PACKAGE_DIR.parent)
DEFAULT_RIG = "gopro-hero8-beamsplitter"
CATEGORIES = ("street", "face", "hand")
FlipName = Literal["horizontal", "vertical", "none"]


@dataclass(frozen=True)
class CameraSettings:
    fps: float
    width: int
    height: int
    model: str = "GoPro HERO8 Black"

    def validate(self) -> None:
        if not 0 < self.fps < math.inf or self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"camera fps, width and height must be positive, got {self.fps:g} fps, {self.width}x{self.height}"
            )


@dataclass(frozen=True)
class CropSettings:
    width: int = 448
    height: int = 448

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("crop width and height must be positive")


@dataclass(frozen=True)
class SequenceSettings:
    frames: int = 7  # sharp frames per sample (4 real + 3 interpolated)
    upsample_factor: int = 2  # temporal upsampling of the sharp stream
    synth_subframes: int = 19  # sub-frames averaged into a synthetic blur

    def validate(self) -> None:
        if self.frames < 2 or self.upsample_factor < 1 or self.synth_subframes < self.frames:
            raise ValueError("sequence: need frames >= 2, upsample_factor >= 1, synth_subframes >= frames")
        if (self.synth_subframes - 1) % (self.frames - 1):
            raise ValueError("sequence: synth_subframes - 1 must be a multiple of frames - 1")


MAX_DIST = 14  # OpenCV's longest distortion model (k1 k2 p1 p2 k3 k4 k5 k6 s1-s4 tx ty)


@dataclass(frozen=True)
class LensSettings:
    """Optional intrinsics (OpenCV model) for undistortion before alignment (``undistort = true``).

    A board calibration take named by a take (take.toml) is used instead when there is one;
    see ``rb2v.align.lens``. ``cx``/``cy`` of 0 mean the frame centre."""

    undistort: bool = False
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    dist: tuple[float, ...] = ()
    # per camera, when the two lenses differ (empty: ``dist``); fx..cy are for the rig's camera sizes
    dist_blur: tuple[float, ...] = ()
    dist_sharp: tuple[float, ...] = ()
    # per camera [fx, fy, cx, cy] (empty: fx..cy): two cameras' principal points sit apart, and one
    # pinhole for both leaves the sharp camera's lens decentred (simulated with true coefficients and
    # its principal point 12-14 px off the blur camera's: 0.38-0.45 px at the crop's corners)
    intrinsics_blur: tuple[float, ...] = ()
    intrinsics_sharp: tuple[float, ...] = ()

    def validate(self) -> None:
        for name in ("dist", "dist_blur", "dist_sharp"):
            count = len(getattr(self, name))
            if count > MAX_DIST:  # fewer are zero-padded to the next model (rb2v.align.lens)
                raise ValueError(f"lens.{name} holds {count} coefficients, more than OpenCV's {MAX_DIST}")
        for cam, v in (("blur", self.intrinsics_blur), ("sharp", self.intrinsics_sharp)):
            if v and (len(v) != 4 or not (v[0] > 0 and v[1] > 0)):
                raise ValueError(f"lens.intrinsics_{cam} must be [fx, fy, cx, cy] with fx, fy > 0, got {list(v)}")


SYNC_METHODS = ("timecode", "audio", "visual")


def check_sync_methods(methods: tuple[str, ...], what: str) -> None:
    unknown = [m for m in methods if m not in SYNC_METHODS]
    if unknown or not methods:
        raise ValueError(
            f"{what}: {'unknown method(s) ' + ', '.join(map(repr, unknown)) if unknown else 'no method'} "
            f"(use one or more of {', '.join(SYNC_METHODS)})"
        )


@dataclass(frozen=True)
class AlignSettings:
    """Defaults for ``rb2v align`` (rig-specific: how the cameras are synchronised and matched)."""

    sync_methods: tuple[str, ...] = ("timecode", "audio", "visual")
    fps_ratio: float = 4.0
    fps_ratio_tolerance: float = 0.02
    min_inliers: int = 40
    # A take whose inlier matches span less than this fraction of the blur frame (their convex hull) uses
    # its calibration take's homography when it names one (1: whenever it names one; 0: only below
    # min_inliers). Fitted to the part of the frame its matches cover (a hand before a green screen), a take's
    # homography extrapolates to the crop's corners: simulated hand takes 1.3 and 2.0 px off with matches
    # over 13-19 % of the frame (the calibration take's 0.24 and 0.33 px); an outside check's waving hands
    # over 39-43 % 0.14-1.98 px (0.032-0.034 px), a street take over 58 % 0.137 px (0.088 px). Until then 0.3.
    min_match_cover: float = 1.0
    # ... unless the calibration take's homography puts the take's own matches farther off than this (the
    # median offset, px): the rig moved since the calibration take. Simulated hand and face takes: 0.08-0.82 px
    # on rigs that did not move (15 takes), 2.7-3.8 px on rigs bumped by up to 4-6 px, 0.9 and 1.3 px by 2 px.
    max_calibration_shift_px: float = 1.5
    homography_frames: int = 12  # frame pairs sampled across a take for feature matching
    estimate_drift_min_seconds: float = 4.0
    max_offset_s: float = 10.0  # largest |time_offset_s| that sync searches for
    png_compression: int = 0  # zlib level of the aligned PNGs (0: stored, fastest; 1: ~3x smaller, ~4x slower)

    def validate(self) -> None:
        check_sync_methods(self.sync_methods, "align.sync_methods")
        if not 0 < self.max_offset_s < math.inf:
            raise ValueError(f"align.max_offset_s must be positive (s), got {self.max_offset_s}")
        if self.homography_frames < 1:
            raise ValueError(f"align.homography_frames must be at least 1, got {self.homography_frames}")
        if not 0.0 <= self.fps_ratio_tolerance < 1.0:
            raise ValueError(f"align.fps_ratio_tolerance must be in [0, 1), got {self.fps_ratio_tolerance}")
        if self.min_inliers < 4:  # a homography needs 4 point pairs
            raise ValueError(f"align.min_inliers must be at least 4, got {self.min_inliers}")
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"align.png_compression must be a zlib level 0-9, got {self.png_compression}")
        if not 0.0 <= self.min_match_cover <= 1.0:
            raise ValueError(f"align.min_match_cover must be between 0 and 1, got {self.min_match_cover}")
        if not self.max_calibration_shift_px > 0:
            raise ValueError(
                f"align.max_calibration_shift_px must be positive (px), got {self.max_calibration_shift_px}"
            )


@dataclass(frozen=True)
class RigSettings:
    name: str
    blur: CameraSettings
    sharp: CameraSettings
    mirrored_camera: Literal["blur", "sharp", "none"] = "sharp"
    flip: FlipName = "horizontal"
    crop: CropSettings = field(default_factory=CropSettings)
    sequence: SequenceSettings = field(default_factory=SequenceSettings)
    lens: LensSettings = field(default_factory=LensSettings)
    align: AlignSettings = field(default_factory=AlignSettings)

    @property
    def flip_sharp(self) -> str:
        """The flip that brings the sharp view into the blur view's handedness.

        Mirroring either camera is the same relative flip, so it is always applied
        to the sharp frames (the alignment contract's ``flip_sharp``).
        """
        return "none" if self.mirrored_camera == "none" else self.flip

    def validate(self) -> None:
        ratio = self.sharp.fps / self.blur.fps
        if abs(ratio - self.align.fps_ratio) > self.align.fps_ratio * self.align.fps_ratio_tolerance:
            raise ValueError(f"sharp/blur fps ratio is {ratio:.3f}, expected about {self.align.fps_ratio}")

    @property
    def hash(self) -> str:
        return settings_hash(self)


def _find(kind: str, name_or_path: str | Path) -> Path:
    """A rig or pipeline by path, or by name: ./<kind>/NAME.toml first, then the bundled ones. A name is
    not a path because a folder of that name is in the way (``hand/`` beside ``--category hand``)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file():
        return p
    bases = [Path.cwd() / kind, *(root / kind for root in BUNDLED_ROOTS if (root / kind).is_dir())]
    for base in bases:
        cand = base / f"{name_or_path}.toml"
        if cand.exists():
            return cand
    looked = ", ".join(str(b) for b in bases)
    raise Rb2vError(f"{kind}/{name_or_path}.toml: no such {kind[:-1]} definition (looked in {looked})")


def bundled(kind: str) -> list[str]:
    """Names of the bundled rigs or pipelines."""
    return sorted({p.stem for root in BUNDLED_ROOTS for p in (root / kind).glob("*.toml")})


def load_rig(name_or_path: str | Path = DEFAULT_RIG, overrides: dict | None = None) -> RigSettings:
    path = _find("rigs", name_or_path)
    data = apply_overrides(read_toml(path), overrides or {})
    return from_mapping(RigSettings, data, str(path))


def pipeline_path(category_or_path: str | Path) -> Path:
    return _find("pipelines", category_or_path)


def load_pipeline_data(category_or_path: str | Path, overrides: dict | None = None) -> tuple[dict, Path]:
    """Raw pipeline TOML with overrides applied; the build stage types it."""
    path = pipeline_path(category_or_path)
    return apply_overrides(read_toml(path), overrides or {}), path
