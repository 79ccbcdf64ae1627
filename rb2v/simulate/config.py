"""Settings of a simulated capture session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from ..errors import Rb2vError


@dataclass(frozen=True)
class SimConfig:
    category: Literal["street", "face", "hand"] = "street"
    subjects: int = 1
    takes: int = 1
    seconds: float = 3.0
    seed: int = 0
    width: int = 640
    height: int = 544
    blur_fps: float = 25.0
    sharp_fps: float = 100.0
    # The blur camera integrates about four sharp-frame periods: 19 sub-frames at 1/600 s,
    # the span that the synthetic blur of 7 upsampled frames (19 sub-frames) represents.
    blur_exposure_s: float = 19 / 600
    sharp_exposure_s: float = 1 / 800
    internal_fps: float = 480.0  # rendering rate used to integrate exposures (>= 400)
    flip: Literal["horizontal", "vertical", "none"] = "horizontal"
    audio: bool = True
    audio_rate: int = 48000
    timecode: bool = False
    chapter_seconds: float = 0.0  # > 0 splits recordings into GoPro chapters of this length
    motion_scale: float = 1.0  # 0 makes a static scene
    noise: bool = True
    vignetting: bool = False
    source: str | None = None  # a video file or a folder of frames used as the scene's backdrop
    crf: int = 14  # H.264 quality of the simulated recordings (GoPro bitrates are high)
    # Lens distortion per camera, OpenCV coefficients k1 k2 p1 p2 k3 (empty: a pinhole); see lens.py.
    # A session with distortion also films a checkerboard calibration take (RAW/calibration/<name>/board.toml).
    distortion_blur: tuple[float, ...] = ()
    distortion_sharp: tuple[float, ...] = ()
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.subjects < 1 or self.takes < 1:
            raise Rb2vError("simulate-rig: --subjects and --takes must be at least 1")
        if not 0.5 <= self.seconds <= 600:
            raise Rb2vError(f"simulate-rig: --seconds must be between 0.5 and 600, got {self.seconds}")
        if self.width % 2 or self.height % 2 or self.width < 480 or self.height < 480:
            raise Rb2vError(
                f"simulate-rig: --size must be even and at least 480x480 (the crop is 448x448), "
                f"got {self.width}x{self.height}"
            )
        if self.internal_fps < 400:
            raise Rb2vError("simulate-rig: internal frame rate must be at least 400 fps")
        if self.blur_exposure_s <= 0 or self.blur_exposure_s > 1 / self.blur_fps:
            raise Rb2vError("simulate-rig: blur exposure must be within one blur frame period")
        from .lens import check_coeffs

        check_coeffs(self.distortion_blur, "--distortion-blur")
        check_coeffs(self.distortion_sharp, "--distortion-sharp")

    @property
    def green_screen(self) -> bool:
        return self.category in ("face", "hand")

    @property
    def distorted(self) -> bool:
        return any(self.distortion_blur) or any(self.distortion_sharp)

    def as_dict(self) -> dict:
        return asdict(self)
