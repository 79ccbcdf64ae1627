"""Settings of a simulated capture session.

Every convention of the simulated cameras is a setting (issue 13): which instant of the exposure
a frame's timestamp denotes (the *anchor*), exposure length, rolling-shutter readout, per-frame
exposure and white-balance drift, the codec's bitrate — and ``randomize`` draws them per take
(``rb2v.simulate.timing.take_settings``; lenses per session). The defaults are the historical simulator: centred
exposures, global shutter, no drift, H.264 at ``crf``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from ..errors import Rb2vError

# The codec's bitrate is given as a GoPro would record a 1920x1080 frame, scaled by pixel count.
BITRATE_REFERENCE_PIXELS = 1920 * 1080
# The calibration board's centres sit on a 3x3 grid at 0.5 ± reach of the frame; beyond BOARD_REACH_MAX
# it no longer fits inside the frame at a size its corners can be found at.
BOARD_REACH = 0.2
BOARD_KINDS = ("checkerboard", "charuco")
BOARD_REACH_MAX = 0.35
RIG_DRIFT_MAX_PX = 20.0
FOCAL_FRACTION = 0.5  # the cameras' focal length over the frame's width: a GoPro's wide view (~90° across)
RIG_MOTION_MAX = 12.0  # past this the backdrop's mirror image fills much of the view
SUBJECT_SIZE_RANGE = (0.3, 0.95)  # of the frame's short side


def anchor_offset(anchor: float | str, length_s: float) -> float:
    """Seconds from the (top row's) exposure start to the instant the timestamp ``k/fps`` denotes."""
    if isinstance(anchor, str):
        a = anchor.strip().lower()
        if a == "start":
            return 0.0
        if a in ("centre", "center"):
            return length_s / 2
        if a == "end":
            return length_s
        try:
            return float(a)
        except ValueError:
            raise Rb2vError(
                f"simulate-rig: exposure anchor must be start, centre, end or an offset in seconds, got {anchor!r}"
            ) from None
    return float(anchor)


@dataclass(frozen=True)
class SimConfig:
    category: Literal["street", "face", "hand"] = "street"
    subjects: int = 1
    takes: int = 1
    seconds: float = 3.0
    seed: int = 0
    width: int = 640
    height: int = 544
    # The sharp camera's recorded frame (width, height) when it records fewer pixels than the blur camera
    # (e.g. 2.7K blur + 1080p sharp): rendered at (width, height), then area-resampled. None: the same size.
    sharp_size: tuple[int, int] | None = None
    blur_fps: float = 25.0
    sharp_fps: float = 100.0
    # The blur camera integrates about four sharp-frame periods: 19 sub-frames at 1/600 s,
    # the span that the synthetic blur of 7 upsampled frames (19 sub-frames) represents.
    blur_exposure_s: float = 19 / 600
    sharp_exposure_s: float = 1 / 800
    # Which instant of each camera's exposure its timestamps denote: "start", "centre", "end" or an
    # offset in seconds after the top row's exposure start.
    blur_anchor: float | str = "centre"
    sharp_anchor: float | str = "centre"
    # Rolling shutter: seconds from the first row's exposure start to the last's (0: global shutter); the
    # first row read is the top one, or the bottom one of a camera mounted upside down (below).
    blur_readout_s: float = 0.0
    sharp_readout_s: float = 0.0
    # Per-frame drift (relative amplitude, smooth in time): exposure (all channels) and white balance
    # (per channel), applied as gains on each camera's encoded colours.
    exposure_drift: float = 0.0
    wb_drift: float = 0.0
    # Lights that pulse (mains power at 100 / 120 Hz, a PWM-dimmed LED at hundreds of Hz): the scene's light
    # is 1 + flicker_depth * sin(2 pi flicker_hz t + phase) in world time, the same for both cameras, each
    # exposure integrating it over its window (each row's own under a rolling shutter: bands). 0: steady.
    flicker_hz: float = 0.0
    flicker_depth: float = 0.0
    internal_fps: float = 480.0  # rendering rate used to integrate exposures (>= 400)
    flip: Literal["horizontal", "vertical", "none"] = "horizontal"
    audio: bool = True
    audio_rate: int = 48000
    # How much later the sharp camera's sound is stamped than its pictures, against the blur camera's
    # (microphone and encoder latencies that differ by mode); audio sync cannot see it.
    sharp_audio_delay_s: float = 0.0
    # When each camera's audio track starts against its first video frame, as its file stamps them
    # (blur, sharp; negative: the sound starts first): a container offset that the file declares and
    # rb2v must read, where a latency above is one it cannot see.
    audio_start_s: tuple[float, float] = (0.0, 0.0)
    timecode: bool = False
    chapter_seconds: float = 0.0  # > 0 splits recordings into GoPro chapters of this length
    motion_scale: float = 1.0  # 0 makes a static scene
    # How much the whole rig moves (pan, shake, turn and zoom, seen by both cameras) against the default's
    # gentle sway (1: under 0.7 px a sharp frame at 640x544); 8: an operator walking with it, up to 3.6-5.8 px.
    rig_motion: float = 1.0
    # A face or hand subject's size, as a fraction of the frame's short side (green-screen takes): how much
    # of the frame its feature matches can span (0.62: 13-29 % of the frame; an outside check's: 39-43 %).
    subject_size: float = 0.62
    noise: bool = True
    # Light fall-off per camera (blur, sharp): radial vignetting 1 - v r^2 (r = 1 at the frame's corners), in
    # each sensor's own coordinates. A beam splitter's split ratio also changes across the field: a plate
    # transmits less where it reflects more, so the two views get opposite gradients, 1 +/- g x (x = -1 .. 1
    # across the blur view, + for the blur camera). One 3x4 colour map per frame pair cannot take either up.
    vignetting: tuple[float, float] = (0.0, 0.0)
    splitter_gradient: float = 0.0
    source: str | None = None  # a video file or a folder of frames used as the scene's backdrop
    crf: int = 14  # quality of the simulated recordings (GoPro bitrates are high)
    # Lens distortion per camera, OpenCV coefficients k1 k2 p1 p2 k3 (empty: a pinhole); see lens.py.
    # A session with distortion also films a checkerboard calibration take (RAW/calibration/<name>/board.toml).
    distortion_blur: tuple[float, ...] = ()
    distortion_sharp: tuple[float, ...] = ()
    # How far from the frame's centre the calibration board is held: its centres sit on a 3x3 grid
    # at 0.5 ± reach of the frame (0.2: the board's corners cover about 40 % of the frame; 0.35: 60 %).
    # None: BOARD_REACH, or drawn with randomize.
    board_reach: float | None = None
    board: str = "checkerboard"  # the calibration board: "checkerboard" or "charuco" (BOARD_KINDS)
    # A rig bumped after its calibration take: every other take's sharp camera is turned and shifted so
    # that the frame's corners move by up to this many pixels against the calibration take (0: a rigid rig).
    rig_drift_px: float = 0.0
    # Where the sharp camera's centre of projection sits against the blur camera's (x right, y down, mm): a
    # beam-splitter rig lined up by hand is never exactly nodal, so the scene's layers (scene.SUBJECT_DEPTH_M
    # and the others) shift against each other between the views by f t / Z (parallax; f: FOCAL_FRACTION of
    # the width). truth.json's homography is that of the layer that matters: the subject (face, hand), the
    # board (calibration), the backdrop (street).
    centre_offset_mm: tuple[float, float] = (0.0, 0.0)
    # A rig knocked during a take: halfway through each take (not the calibration take) the sharp camera
    # turns and shifts so that the frame's corners move by up to this many pixels (0: rigid during takes).
    bump_px: float = 0.0
    # The rig's moves above (rig_drift_px, bump_px) turn the sharp camera about its centre of projection in 3-D
    # (pan, tilt and roll: a pan or tilt leaves a keystone) instead of turning and shifting its picture.
    rig_moves_3d: bool = False
    # A fixed bitrate instead of crf: Mb/s a GoPro would use for 1920x1080, scaled to the frame size.
    bitrate_mbps: float | None = None
    codec: Literal["h264", "hevc"] = "h264"  # H.265 as a GoPro records its high-rate modes
    # (blur, sharp): the camera mounted turned 180 degrees, as a beam-splitter rig may mount one camera to
    # line the lenses up. Its sensor reads the upright picture from the bottom row up (the readout and the
    # anchor then belong to the bottom row), and with ``rotation_tag`` its file stores the sensor's frames,
    # upside down, with a display matrix saying to turn them (as phones and most cameras write it);
    # without, the camera turns the pixels itself and only the readout's direction tells.
    upside_down: tuple[bool, bool] = (False, False)
    rotation_tag: bool = True
    randomize: bool = False  # draw anchor, exposure, readout, drift and bitrate per take from the seed
    # with randomize and no distortion given (an explicit 0 is given): draw each camera's k1 and k2,
    # and how far out the calibration board is held, once per session
    randomize_lens: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.randomize and self.randomize_lens and not self.distortion_blur and not self.distortion_sharp:
            from .timing import draw_distortion

            blur, sharp, reach = draw_distortion(self.seed)
            object.__setattr__(self, "distortion_blur", blur)
            object.__setattr__(self, "distortion_sharp", sharp)
            if self.board_reach is None:
                object.__setattr__(self, "board_reach", reach)
        if self.board_reach is None:
            object.__setattr__(self, "board_reach", BOARD_REACH)

    def validate(self) -> None:
        if self.subjects < 1 or self.takes < 1:
            raise Rb2vError("simulate-rig: --subjects and --takes must be at least 1")
        if not 0.5 <= self.seconds <= 600:
            raise Rb2vError(f"simulate-rig: --seconds must be between 0.5 and 600, got {self.seconds}")
        if self.width % 2 or self.height % 2 or self.width < 480 or self.height < 480:
            raise Rb2vError(f"simulate-rig: --size must be even and at least 480x480, got {self.width}x{self.height}")
        if not abs(self.sharp_audio_delay_s) <= 0.5:  # NaN too
            raise Rb2vError(
                f"simulate-rig: --sharp-audio-delay must be within ±0.5 s, got {self.sharp_audio_delay_s:g} s"
            )
        if not all(abs(a) <= 0.5 for a in self.audio_start_s):
            starts = ",".join(f"{a:g}" for a in self.audio_start_s)
            raise Rb2vError(f"simulate-rig: --audio-start must be within ±0.5 s for each camera, got {starts}")
        if self.sharp_size is not None:
            sw, sh = self.sharp_size
            if (
                sw % 2
                or sh % 2
                or not (0.4 * self.width <= sw <= self.width and 0.4 * self.height <= sh <= self.height)
            ):
                raise Rb2vError(
                    f"simulate-rig: --sharp-size must be even and 0.4-1x the blur camera's {self.width}x{self.height} "
                    f"in each direction, got {sw}x{sh}"
                )
        if not 0.0 <= self.rig_motion <= RIG_MOTION_MAX:
            raise Rb2vError(
                f"simulate-rig: --rig-motion must be between 0 and {RIG_MOTION_MAX:g}, got {self.rig_motion}"
            )
        if not SUBJECT_SIZE_RANGE[0] <= self.subject_size <= SUBJECT_SIZE_RANGE[1]:
            raise Rb2vError(
                f"simulate-rig: --subject-size must be between {SUBJECT_SIZE_RANGE[0]:g} and "
                f"{SUBJECT_SIZE_RANGE[1]:g}, got {self.subject_size}"
            )
        if self.internal_fps < 400:
            raise Rb2vError("simulate-rig: internal frame rate must be at least 400 fps")
        if not 0 < self.blur_exposure_s <= 1 / self.blur_fps:
            raise Rb2vError("simulate-rig: blur exposure must be within one blur frame period")
        from .lens import check_coeffs

        check_coeffs(self.distortion_blur, "--distortion-blur")
        check_coeffs(self.distortion_sharp, "--distortion-sharp")
        if self.board not in BOARD_KINDS:
            raise Rb2vError(f"simulate-rig: --board must be one of {', '.join(BOARD_KINDS)}, got {self.board!r}")
        if not 0.0 <= self.board_reach <= BOARD_REACH_MAX:
            raise Rb2vError(
                f"simulate-rig: --board-reach must be between 0 and {BOARD_REACH_MAX}, got {self.board_reach}"
            )
        if not 0.0 <= self.bump_px <= RIG_DRIFT_MAX_PX:
            raise Rb2vError(f"simulate-rig: --bump must be between 0 and {RIG_DRIFT_MAX_PX} px, got {self.bump_px}")
        if not 0.0 <= self.rig_drift_px <= RIG_DRIFT_MAX_PX:
            raise Rb2vError(
                f"simulate-rig: --rig-drift must be between 0 and {RIG_DRIFT_MAX_PX} px, got {self.rig_drift_px}"
            )
        if len(self.centre_offset_mm) != 2 or not all(abs(v) <= 50 for v in self.centre_offset_mm):  # NaN too
            raise Rb2vError(
                f"simulate-rig: --centre-offset must be two values within ±50 mm, got {self.centre_offset_mm}"
            )
        if any(self.centre_offset_mm) and self.distorted:
            raise Rb2vError("simulate-rig: --centre-offset is not simulated with lens distortion")
        if not all(0.0 <= v <= 0.6 for v in self.vignetting):
            raise Rb2vError(f"simulate-rig: --vignetting must be 0 to 0.6 for each camera, got {self.vignetting}")
        if not abs(self.splitter_gradient) <= 0.3:
            raise Rb2vError(f"simulate-rig: --splitter-gradient must be within ±0.3, got {self.splitter_gradient}")
        if not 0 < self.sharp_exposure_s <= 1 / self.sharp_fps:
            raise Rb2vError("simulate-rig: sharp exposure must be within one sharp frame period")
        for cam, fps, readout in (
            ("blur", self.blur_fps, self.blur_readout_s),
            ("sharp", self.sharp_fps, self.sharp_readout_s),
        ):
            if not 0 <= readout <= 1 / fps + 1e-12:
                raise Rb2vError(
                    f"simulate-rig: {cam} readout must be between 0 and the frame period "
                    f"({1000 / fps:g} ms), got {1000 * readout:g} ms"
                )
        for cam, fps, anchor, length in (
            ("blur", self.blur_fps, self.blur_anchor, self.blur_exposure_s),
            ("sharp", self.sharp_fps, self.sharp_anchor, self.sharp_exposure_s),
        ):
            if not abs(anchor_offset(anchor, length)) <= 1 / fps:  # NaN too
                raise Rb2vError(f"simulate-rig: {cam} exposure anchor must be within one frame period")
        if not (0 <= self.flicker_depth < 1 and 0 <= self.flicker_hz < 1e5):
            raise Rb2vError("simulate-rig: flicker depth must be in [0, 1) and its rate in [0, 100000) Hz")
        if not (0 <= self.exposure_drift < 0.5 and 0 <= self.wb_drift < 0.5):
            raise Rb2vError("simulate-rig: drift amplitudes must be in [0, 0.5)")
        if self.bitrate_mbps is not None and not 0 < self.bitrate_mbps <= 10_000:
            raise Rb2vError(f"simulate-rig: --bitrate must be positive Mb/s (at most 10000), got {self.bitrate_mbps}")
        if not self.chapter_seconds >= 0:
            raise Rb2vError(
                f"simulate-rig: --chapter-seconds must be 0 (no chapters) or more, got {self.chapter_seconds}"
            )
        if len(self.upside_down) != 2 or not all(isinstance(u, bool) for u in self.upside_down):
            raise Rb2vError(f"simulate-rig: upside_down must be two booleans (blur, sharp), got {self.upside_down!r}")
        if self.codec not in ("h264", "hevc"):
            raise Rb2vError(f"simulate-rig: --codec must be h264 or hevc, got {self.codec!r}")

    def mounted_upside_down(self, cam: str) -> bool:
        """Whether camera ``cam`` ("blur" or "sharp") is mounted turned 180 degrees (``upside_down``)."""
        return self.upside_down[0 if cam == "blur" else 1]

    @property
    def green_screen(self) -> bool:
        return self.category in ("face", "hand")

    @property
    def distorted(self) -> bool:
        return any(self.distortion_blur) or any(self.distortion_sharp)

    def as_dict(self) -> dict:
        return asdict(self)
