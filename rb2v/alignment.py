"""The alignment contract (``alignment.json``, schema ``rb2v.alignment/2``) as one typed definition.

``rb2v align`` writes it, the dataset build reads it, and the simulator states its truth in the
same terms (``Exposure``, ``Lens``). Nothing else parses ``alignment.json``.

Time: frame k of a stream has timestamp ``k / fps`` on that stream's clock, and
``t_sharp = clock_ratio * t_blur + time_offset_s``. Which instant of the exposure the timestamp
denotes is *not* assumed: ``Exposure`` says frame k integrates light from ``k/fps + start_s`` to
``k/fps + start_s + length_s`` (top row; row r of H starts ``r/(H-1) * readout_s`` later).
A ``/1`` file has no exposure block: it reads as "unknown", i.e. centred exposures, no readout
skew, no undistortion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import Rb2vError
from .fsutil import write_json_atomic

SCHEMA = "rb2v.alignment/2"
READABLE = ("rb2v.alignment/1", SCHEMA)
FILE_NAME = "alignment.json"
FLIPS = ("horizontal", "vertical", "none")
KNOCK_GAP = 2  # frames: align compares every second blurry frame of a run (rb2v.align.geometry.sample_pairs)
CAMERAS = ("blur", "sharp")


def knocked_from(apart, checked) -> int | None:
    """The first blurry frame from which on align saw the views moved for the rest of what it compared: the first
    of its compared frames (``checked``) whose matches sat apart from the others' (``apart``: frame -> px, keys
    as numbers or text) with every later one apart too, or the frame after the one compared before it where that is
    at most KNOCK_GAP frames earlier (the knock fell between the two); None. A view that moved stays moved (a
    knocked rig). rb2v bench rig-unknowns, bump (knocked at frame 20): hand 7413 and street 53072 had frame 22
    apart and 20 in line, and kept frame 21 a step early."""
    apart = {int(k) for k in apart or {}}
    first = before = None
    for k in sorted(checked or [], reverse=True):
        if k not in apart:
            before = k
            break
        first = k
    if first is not None and before is not None and first - before <= KNOCK_GAP:
        return before + 1
    return first


def _finite(value) -> bool:
    """A finite JSON number (not a string, a bool or NaN)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value))


def _number(d: dict, key: str, where: str, default: float | None = None) -> float:
    """A finite JSON number (a string, a bool or NaN was taken as one, and failed far from the file)."""
    value = d.get(key, default) if default is not None else d[key]
    if not _finite(value):
        raise Rb2vError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


# what a method ends with when the images left some of the values open (``Exposure.undetermined``):
# "estimated; not determined: centre, length" -- the values written are the fit's best guess
NOT_DETERMINED = "; not determined: "


@dataclass(frozen=True)
class Exposure:
    """One camera's exposure window relative to its frame timestamps (seconds, its own clock)."""

    start_s: float
    length_s: float
    readout_s: float = 0.0
    method: str = "assumed"  # how the values were obtained: "estimated", "assumed", "truth", …

    @property
    def undetermined(self) -> frozenset[str]:
        """Which of "centre" and "length" the method says the images did not determine (``NOT_DETERMINED``)."""
        _, found, names = self.method.partition(NOT_DETERMINED)
        return frozenset(names.split(", ")) if found else frozenset()

    @classmethod
    def centred(cls, length_s: float, method: str = "assumed") -> Exposure:
        """The convention of a /1 file: the timestamp is the exposure's centre, no readout skew."""
        return cls(-length_s / 2, length_s, 0.0, method)

    def centre_s(self, row_fraction: float = 0.5) -> float:
        """Offset from the timestamp to the exposure centre of the row at ``row_fraction`` (0 top, 1 bottom)."""
        return self.start_s + self.length_s / 2 + row_fraction * self.readout_s

    def to_json(self) -> dict:
        return {"start_s": self.start_s, "length_s": self.length_s, "readout_s": self.readout_s, "method": self.method}

    @classmethod
    def from_json(cls, d: Any, where: str) -> Exposure:
        if not isinstance(d, dict):
            raise Rb2vError(f"{where}: exposure entry is not an object")
        try:
            exposure = cls(
                _number(d, "start_s", where),
                _number(d, "length_s", where),
                _number(d, "readout_s", where, 0.0),
                str(d.get("method", "unknown")),
            )
        except KeyError as e:
            raise Rb2vError(f"{where}: bad exposure entry (missing {e})") from None
        if exposure.length_s <= 0:  # a negative length failed every sample of the take as "exposure span"
            raise Rb2vError(f"{where}: length_s must be positive, got {exposure.length_s}")
        return exposure


@dataclass(frozen=True)
class Lens:
    """One camera's OpenCV intrinsics: 3x3 camera matrix and distortion coefficients (k1 k2 p1 p2 [k3 …])."""

    camera_matrix: tuple[tuple[float, ...], ...]
    dist_coeffs: tuple[float, ...]
    size: tuple[int, int]  # (width, height) the intrinsics are for
    method: str = "calibrated"
    rms_px: float | None = None  # reprojection error of the calibration

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.camera_matrix, np.float64)

    @property
    def dist(self) -> np.ndarray:
        return np.asarray(self.dist_coeffs, np.float64)

    def to_json(self) -> dict:
        d = {
            "camera_matrix": [list(r) for r in self.camera_matrix],
            "dist_coeffs": list(self.dist_coeffs),
            "size": list(self.size),
            "method": self.method,
        }
        if self.rms_px is not None:
            d["rms_px"] = self.rms_px
        return d

    @classmethod
    def from_json(cls, d: Any, where: str) -> Lens:
        try:
            K = np.asarray(d["camera_matrix"], np.float64)
            if K.shape != (3, 3):
                raise ValueError("camera_matrix is not 3x3")
            dist = tuple(float(v) for v in d["dist_coeffs"])
            size = tuple(int(v) for v in d["size"])
            if len(size) != 2:
                raise ValueError("size is not [width, height]")
            rms = d.get("rms_px")
            return cls(
                tuple(tuple(float(v) for v in r) for r in K),
                dist,
                size,
                str(d.get("method", "calibrated")),
                None if rms is None else float(rms),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise Rb2vError(f"{where}: bad lens entry ({e})") from None


@dataclass(frozen=True)
class Crop:
    x: int
    y: int
    width: int
    height: int

    def to_json(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Alignment:
    """One aligned take. ``extra`` keeps every other key of the file (diagnostics) in order."""

    blur_fps: float
    sharp_fps: float
    flip_sharp: str
    homography: tuple[tuple[float, ...], ...]
    crop: Crop
    time_offset_s: float
    clock_ratio: float
    sync_method: str
    exposure: dict[str, Exposure] | None = None  # None: unknown (a /1 file)
    lens: dict[str, Lens] | None = None  # None: no undistortion applied
    residual_px: float | None = None
    inliers: int | None = None
    extra: dict = field(default_factory=dict)
    schema: str = SCHEMA

    # ------------------------------------------------------------ derived values
    @property
    def H(self) -> np.ndarray:
        return np.asarray(self.homography, np.float64)

    @property
    def fps_ratio(self) -> float:
        return self.sharp_fps / self.blur_fps

    @property
    def blur_exposure_known(self) -> bool:
        """Whether align placed the blur camera's exposure in time (not: a /1 file, a take too short, pictures
        that move too little to place it); where not, build does not check samples against the clock."""
        return bool(self.exposure) and "blur" in self.exposure and "centre" not in self.exposure["blur"].undetermined

    @property
    def knocked_from(self) -> int | None:
        """The first blurry frame from which on align saw the views moved (``knocked_from``), or None."""
        return knocked_from(self.extra.get("frames_apart_px"), self.extra.get("frames_checked"))

    def exposure_of(self, camera: str, default_length_s: float | None = None) -> Exposure:
        """The camera's exposure; unknown means centred with ``default_length_s`` (one frame period)."""
        if self.exposure and camera in self.exposure:
            return self.exposure[camera]
        fps = self.blur_fps if camera == "blur" else self.sharp_fps
        return Exposure.centred(default_length_s if default_length_s is not None else 1.0 / fps, "unknown")

    def predicted_start(self, k: int, factor: int, window: int) -> float:
        """Where blurry frame k falls in the upsampled sharp sequence ``x`` (x[factor·i] = sharp frame i):
        the p whose window ``x[p..p+window-1]`` is centred on the blurry exposure's middle row."""
        blur, sharp = self.exposure_of("blur"), self.exposure_of("sharp")
        t_blur = k / self.blur_fps + blur.centre_s()
        t_sharp = self.clock_ratio * t_blur + self.time_offset_s
        i = (t_sharp - sharp.centre_s()) * self.sharp_fps  # sharp frame index (fractional) at that instant
        return factor * i - (window - 1) / 2

    def blur_span(self, factor: int) -> float | None:
        """The blur camera's exposure length in steps of the upsampled sequence (x[factor·i] = sharp
        frame i), over the sharp frames' own short exposure; None when not known (a /1 file). A length the
        images did not determine is used all the same: it is still the fit's best guess."""
        if not self.exposure or "blur" not in self.exposure:
            return None
        return self.exposure["blur"].length_s * self.clock_ratio * self.sharp_fps * factor

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        d: dict = {
            "schema": self.schema,
            "blur_fps": self.blur_fps,
            "sharp_fps": self.sharp_fps,
            "flip_sharp": self.flip_sharp,
            "homography": [[float(v) for v in r] for r in self.homography],
            "crop": self.crop.to_json(),
            "time_offset_s": self.time_offset_s,
            "clock_ratio": self.clock_ratio,
            "sync_method": self.sync_method,
        }
        if self.schema == SCHEMA:
            d["exposure"] = None if self.exposure is None else {c: e.to_json() for c, e in self.exposure.items()}
            d["lens"] = None if self.lens is None else {c: v.to_json() for c, v in self.lens.items()}
        if self.residual_px is not None:
            d["residual_px"] = self.residual_px
        if self.inliers is not None:
            d["inliers"] = self.inliers
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    @classmethod
    def from_json(cls, d: Any, where: str = FILE_NAME) -> Alignment:
        if not isinstance(d, dict):
            raise Rb2vError(f"{where}: not an alignment (expected a JSON object)")
        required = ("schema", "blur_fps", "sharp_fps", "flip_sharp", "homography", "crop", "time_offset_s")
        missing = [k for k in (*required, "clock_ratio", "sync_method") if k not in d]
        if missing:
            raise Rb2vError(f"{where}: missing field(s) {', '.join(missing)}")
        if d["schema"] not in READABLE:
            raise Rb2vError(f"{where}: unknown schema {d['schema']!r} (this rb2v reads {', '.join(READABLE)})")
        if d["flip_sharp"] not in FLIPS:
            raise Rb2vError(f"{where}: flip_sharp {d['flip_sharp']!r} is not one of {', '.join(FLIPS)}")
        try:
            H = np.asarray(d["homography"], np.float64)
            if H.shape != (3, 3) or not np.all(np.isfinite(H)):
                raise ValueError("homography is not a finite 3x3 matrix")
            c = d["crop"]
            crop = Crop(int(c["x"]), int(c["y"]), int(c["width"]), int(c["height"]))
            if crop.width <= 0 or crop.height <= 0:
                raise ValueError(f"crop is {crop.width}x{crop.height}")
        except (KeyError, TypeError, ValueError) as e:
            raise Rb2vError(f"{where}: {e}") from None
        blur_fps, sharp_fps = _number(d, "blur_fps", where), _number(d, "sharp_fps", where)
        time_offset_s, clock_ratio = _number(d, "time_offset_s", where), _number(d, "clock_ratio", where)
        for key, value in (("blur_fps", blur_fps), ("sharp_fps", sharp_fps), ("clock_ratio", clock_ratio)):
            if value <= 0:
                raise Rb2vError(f"{where}: {key} must be positive, got {value}")
        exposure = d.get("exposure")
        if exposure is not None:
            if not isinstance(exposure, dict):
                raise Rb2vError(f"{where}: exposure is not an object")
            exposure = {c: Exposure.from_json(v, f"{where}: exposure.{c}") for c, v in exposure.items() if c in CAMERAS}
        lens = d.get("lens")
        if lens is not None:
            if not isinstance(lens, dict):
                raise Rb2vError(f"{where}: lens is not an object")
            lens = {c: Lens.from_json(v, f"{where}: lens.{c}") for c, v in lens.items() if c in CAMERAS}
        apart, checked = d.get("frames_apart_px"), d.get("frames_checked")  # build rejects samples by these
        if apart is not None and not (
            isinstance(apart, dict) and all(str(k).isdigit() and _finite(v) for k, v in apart.items())
        ):
            raise Rb2vError(f"{where}: frames_apart_px must map blurry frame numbers to px, got {apart!r}")
        if checked is not None and not (
            isinstance(checked, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in checked)
        ):
            raise Rb2vError(f"{where}: frames_checked must be a list of blurry frame numbers, got {checked!r}")
        known = {*required, "clock_ratio", "sync_method", "exposure", "lens", "residual_px", "inliers"}
        return cls(
            blur_fps=blur_fps,
            sharp_fps=sharp_fps,
            flip_sharp=d["flip_sharp"],
            homography=tuple(tuple(float(v) for v in r) for r in H),
            crop=crop,
            time_offset_s=time_offset_s,
            clock_ratio=clock_ratio,
            sync_method=str(d["sync_method"]),
            exposure=exposure,
            lens=lens,
            residual_px=None if d.get("residual_px") is None else float(d["residual_px"]),
            inliers=None if d.get("inliers") is None else int(d["inliers"]),
            extra={k: v for k, v in d.items() if k not in known},
            schema=d["schema"],
        )


def read_alignment(folder_or_file: str | Path) -> Alignment:
    """Read and validate ``alignment.json`` (a take folder or the file); one-line errors name the file."""
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        d = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Rb2vError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Rb2vError(f"{path}: not valid JSON ({e})") from None
    return Alignment.from_json(d, str(path))


def write_alignment(folder_or_file: str | Path, alignment: Alignment) -> Path:
    path = Path(folder_or_file)
    if path.is_dir() or path.suffix != ".json":
        path = path / FILE_NAME
    write_json_atomic(path, alignment.to_json())
    return path
