"""Typed settings of ``rb2v build`` / ``rb2v synth-reds``, read from ``pipelines/<category>.toml``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import from_mapping, settings_hash
from ..device import check_device_name
from ..errors import Rb2vError
from ..manifest.names import FRAMES_PER_SEQ
from ..progress import say
from ..settings import load_pipeline_data, load_rig


@dataclass(frozen=True)
class SamplingSettings:
    stride: int = 1  # use every stride-th blurry frame of a take
    max_per_take: int = 0  # 0: no limit

    def validate(self) -> None:
        if self.stride < 1 or self.max_per_take < 0:
            raise ValueError("sampling: stride must be >= 1 and max_per_take >= 0")


@dataclass(frozen=True)
class UpsampleSettings:
    interpolator: Literal["flow", "cdfi", "linear"] = "flow"
    cdfi_checkpoint: str = ""
    device: str = "auto"
    precision: Literal["float32", "tf32", "float16"] = "float32"  # cdfi on CUDA (rb2v.device)
    even_light: bool = True  # divide out the sharp camera's flicker that align measured (sharp_light)

    def validate(self) -> None:
        check_device_setting("upsample", self.device)


def check_device_setting(block: str, device: str) -> None:
    try:
        check_device_name(device)
    except Rb2vError as e:
        raise ValueError(f"{block}: {e}") from None


# Algorithm 1 scores the predicted start ± radius: the alignment's clock puts the true start within a step
# or two, so a wider window only costs time (radius 1000 built a 5 s street take in 280 s)
MAX_SEARCH_RADIUS = 64


@dataclass(frozen=True)
class SearchSettings:
    radius: int = 4  # candidates: the predicted start ± radius (upsampled-sequence steps)
    subframes: int = 19
    space: Literal["srgb", "linear"] = "srgb"
    # the best start and its neighbours scored again with the exposure averaged in linear light
    refine_linear: bool = True
    # in that decision, dB off a neighbour's score per squared step from where the alignment's clock puts the
    # start (0: none; README): the clock, pooled over the take, breaks near-ties that one frame's scores get
    # wrong on accelerating motion
    clock_prior_db: float = 8.0
    exclude_clipped: bool = True
    subframe_interpolator: Literal["flow", "linear", "same"] = "linear"  # for t = 1/3, 2/3 inside the window
    # numpy; "cuda" runs the torch float64 path, which on an H200 host was no faster than numpy on one core
    # (README), and "auto" imports torch in every build process (1.4-2.0 s and 190 MB here) to decide
    device: str = "cpu"

    def validate(self) -> None:
        if not 1 <= self.radius <= MAX_SEARCH_RADIUS:
            raise ValueError(f"search: radius must be 1 to {MAX_SEARCH_RADIUS} (upsampled steps), got {self.radius}")
        if not (math.isfinite(self.clock_prior_db) and self.clock_prior_db >= 0):
            raise ValueError(
                f"search: clock_prior_db must be a number >= 0 (dB per squared step), got {self.clock_prior_db}"
            )
        check_device_setting("search", self.device)


@dataclass(frozen=True)
class MattingSettings:
    method: Literal["chroma", "bgmv2", "none"] = "none"
    bgmv2_checkpoint: str = ""
    backgrounds: str = ""  # folder of photos; empty: the bundled set
    device: str = "auto"
    precision: Literal["float32", "tf32", "float16"] = "float32"  # bgmv2 on CUDA (rb2v.device)

    def validate(self) -> None:
        check_device_setting("matting", self.device)


@dataclass(frozen=True)
class QCSettings:
    min_psnr: float = 28.0
    min_margin: float = 0.05  # dB between the best start and the best one >= 2 steps away
    min_motion: float = 0.004  # mean |x[p+6] - x[p]| below this: a static sample
    reject_at_edge: bool = True
    # px the blurry frame may sit off its synthetic blur beyond what a step of time explains (registration.py):
    # a view that moved during the take (a knocked rig) leaves the take's homography behind
    max_shift_px: float = 0.35
    # a sample measured over max_shift_px but not over this many times it is rejected only with its take's move
    # (``moved``, below): alone, it is the measurement's own error on fast content (an outside check's waving
    # hands: 8 of 234 samples at their true starts measured 0.35-0.79 px, 5 of them under 0.38); beyond, rejected
    # misregistered alone (1: every sample over max_shift_px, as before 2026-12-06)
    lone_shift_factor: float = 2.0
    # measured on shift_grid x shift_grid tiles, a sample judged by its second worst: a turn of the view is seen
    # too, where the tiles have texture (1: the whole frame, shifts only; green screens need it)
    shift_grid: int = 1
    # steps Algorithm 1's start may lie from where the alignment's clock puts the exposure (its predicted start):
    # the two neighbours of a true start lie within a step of it; a start beyond says the content sits where the
    # clock says it cannot (a view knocked along the motion, a pattern matched at the wrong time)
    max_clock_steps: float = 1.25
    # a take whose blurry frames, from some frame on, were mostly rejected misregistered / off_clock (at least this
    # many): its views moved there, so the frames after it that passed are rejected too, "moved" (0: no check)
    move_min_frames: int = 5

    def validate(self) -> None:
        if not (math.isfinite(self.min_psnr) and math.isfinite(self.min_margin) and math.isfinite(self.min_motion)):
            raise ValueError("qc: min_psnr, min_margin and min_motion must be numbers (nan rejects every sample)")
        if not self.max_shift_px > 0:
            raise ValueError(f"qc: max_shift_px must be positive (inf: no check), got {self.max_shift_px}")
        if not self.lone_shift_factor >= 1:
            raise ValueError(
                f"qc: lone_shift_factor must be at least 1 (1: no sample kept alone), got {self.lone_shift_factor}"
            )
        if not self.max_clock_steps >= 1:
            raise ValueError(
                f"qc: max_clock_steps must be at least 1 (a true start's neighbours; inf: no check), "
                f"got {self.max_clock_steps}"
            )
        if self.move_min_frames < 0:
            raise ValueError(f"qc: move_min_frames must be 0 (no check) or more, got {self.move_min_frames}")
        if not 1 <= self.shift_grid <= 4:
            raise ValueError(f"qc: shift_grid must be 1 to 4 (tiles per side), got {self.shift_grid}")


@dataclass(frozen=True)
class SplitSettings:
    test_fraction: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError("split: test_fraction must be in [0, 1)")


@dataclass(frozen=True)
class OutputSettings:
    png_compression: int = 1

    def validate(self) -> None:
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"output: png_compression must be a zlib level 0-9, got {self.png_compression}")


@dataclass(frozen=True)
class PipelineSettings:
    category: str
    rig: str = "gopro-hero8-beamsplitter"
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    upsample: UpsampleSettings = field(default_factory=UpsampleSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    matting: MattingSettings = field(default_factory=MattingSettings)
    qc: QCSettings = field(default_factory=QCSettings)
    split: SplitSettings = field(default_factory=SplitSettings)
    output: OutputSettings = field(default_factory=OutputSettings)

    @property
    def hash(self) -> str:
        return settings_hash(self)


def load_pipeline(category_or_path: str | Path, overrides: dict | None = None) -> PipelineSettings:
    data, path = load_pipeline_data(category_or_path, overrides)
    settings = from_mapping(PipelineSettings, data, str(path))
    check_rig_fit(settings, path)
    return settings


def check_rig_fit(settings: PipelineSettings, path: Path) -> None:
    """The rig's ``[sequence]`` block against the manifest's 7 frames and the pipeline's sub-frames."""
    sequence = load_rig(settings.rig).sequence
    if sequence.frames != FRAMES_PER_SEQ:
        raise Rb2vError(
            f"{path}: rig {settings.rig}: sequence.frames = {sequence.frames}, but the manifest format "
            f"(rb2v.manifest/1, HyperCUT metadata.json) holds {FRAMES_PER_SEQ} sharp frames per sample"
        )
    if settings.search.subframes != sequence.synth_subframes:
        raise Rb2vError(
            f"{path}: search.subframes = {settings.search.subframes}, but rig {settings.rig} synthesises blur "
            f"from {sequence.synth_subframes} sub-frames ([sequence])"
        )


def note_unused_options(settings: PipelineSettings, given: dict[str, object]) -> None:
    """Say which of the command line's model options (``given``: option -> value, None if not given)
    these settings do not use, rather than take them in silence."""
    unused = {
        "--cdfi-checkpoint": (
            settings.upsample.interpolator != "cdfi",
            f"the interpolator is {settings.upsample.interpolator}",
        ),
        "--bgmv2-checkpoint": (settings.matting.method != "bgmv2", f"matting is {settings.matting.method}"),
        "--backgrounds": (settings.matting.method == "none", "this build has no matting"),
    }
    for option, value in given.items():
        if value is not None and unused[option][0]:
            say(f"note: {option} is not used: {unused[option][1]}")
