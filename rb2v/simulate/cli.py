"""``rb2v simulate-rig``: write a synthetic capture tree with exact ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..config import frame_size
from ..errors import Rb2vError
from ..io.video import parse_fps
from .config import BOARD_KINDS, SimConfig


def _coeffs(value: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.replace(" ", ",").split(",") if v)
    except ValueError:
        raise Rb2vError(f"simulate-rig: {what} must be numbers k1[,k2,p1,p2,k3], got {value!r}") from None


def _audio_starts(value: str) -> tuple[float, float]:
    try:
        blur, sharp = (float(v) for v in value.split(","))
    except ValueError:
        raise Rb2vError(f"simulate-rig: --audio-start must be BLUR,SHARP seconds, got {value!r}") from None
    return blur, sharp


@click.command("simulate-rig")
@click.argument("raw", type=click.Path(file_okay=False, path_type=Path))
@click.option("--category", type=click.Choice(["street", "face", "hand"]), default="street", show_default=True)
@click.option("--subjects", type=int, default=1, show_default=True, help="Subjects (street: locations).")
@click.option("--takes", type=int, default=1, show_default=True, help="Takes per subject.")
@click.option("--seconds", type=float, default=3.0, show_default=True, help="Length of each take.")
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Same seed, same session, bit for bit."
)
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=None,
    help="A real video (or folder of frames) used as the street scene's backdrop.",
)
@click.option("--size", default="640x544", show_default=True, help="Frame size of both cameras (WxH).")
@click.option(
    "--sharp-size",
    default=None,
    help="The sharp camera's own frame size (WxH) when it records fewer pixels than the blur camera, "
    "0.4-1x --size in each direction (e.g. 2.7K blur + 1080p sharp: --size 2704x1520 --sharp-size 1920x1080).",
)
@click.option(
    "--flip",
    type=click.Choice(["horizontal", "vertical", "none"]),
    default=None,
    help="Mirror flip of the sharp camera (default: the rig file's).",
)
@click.option("--no-audio", is_flag=True, help="Record no audio track (forces visual synchronisation).")
@click.option(
    "--sharp-audio-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds the sharp camera's sound lags its pictures, against the blur camera's (a latency audio "
    "sync cannot see; within ±0.5 s).",
)
@click.option(
    "--audio-start",
    default="0,0",
    show_default=True,
    help="BLUR,SHARP: seconds from each camera's first video frame to its first audio sample, as its files stamp "
    "them (negative: the sound starts first; within ±0.5 s). rb2v reads these from the files.",
)
@click.option("--timecode", is_flag=True, help="Write timecode tracks jammed to one clock.")
@click.option("--chapter-seconds", type=float, default=0.0, help="Split recordings into GoPro chapters.")
@click.option("--static", is_flag=True, help="Nothing moves (for colour and geometry checks).")
@click.option(
    "--rig-motion",
    type=float,
    default=1.0,
    show_default=True,
    help="How much the whole rig moves (pan, shake, turn, zoom) against the default's gentle sway of under 0.7 px "
    "a sharp frame at 640x544; 8: an operator walking with it, up to 3.6-5.8 px a frame (0 to 12).",
)
@click.option(
    "--subject-size",
    type=float,
    default=0.62,
    show_default=True,
    help="A face or hand subject's size as a fraction of the frame's short side (0.3 to 0.95): its feature "
    "matches span 13-29 % of the frame at 0.62.",
)
@click.option("--rig", default="gopro-hero8-beamsplitter", show_default=True, help="Rig definition (rigs/NAME.toml).")
@click.option(
    "--exposure-anchor",
    default="centre",
    show_default=True,
    help="Which instant of the blur camera's exposure its timestamps k/fps denote: start, centre, end, "
    "or an offset in seconds after the exposure start (top row).",
)
@click.option("--sharp-exposure-anchor", default="centre", show_default=True, help="The same for the sharp camera.")
@click.option(
    "--blur-exposure",
    type=float,
    default=19 / 600,
    show_default="19/600 s",
    help="Blur camera exposure (s), at most one frame period (e.g. 0.02 for 1/50 s).",
)
@click.option("--sharp-exposure", type=float, default=1 / 800, show_default="1/800 s", help="Sharp exposure (s).")
@click.option("--readout-blur", type=float, default=0.0, show_default=True, help="Rolling-shutter readout (s), blur.")
@click.option("--readout-sharp", type=float, default=0.0, show_default=True, help="Rolling-shutter readout (s), sharp.")
@click.option(
    "--exposure-drift", type=float, default=0.0, show_default=True, help="Per-frame auto-exposure wander (relative)."
)
@click.option(
    "--wb-drift", type=float, default=0.0, show_default=True, help="Per-frame white-balance wander (per channel)."
)
@click.option(
    "--flicker",
    type=(float, float),
    default=(0.0, 0.0),
    show_default=True,
    help="HZ DEPTH: the light pulses, 1 + DEPTH*sin(2 pi HZ t) (mains 100 or 120 Hz, PWM LEDs hundreds).",
)
@click.option(
    "--bitrate",
    type=float,
    default=None,
    help="A GoPro-like fixed bitrate (either codec): Mb/s at 1920x1080 (e.g. 45-100), scaled to the frame size "
    "(default: constant quality, crf 14).",
)
@click.option(
    "--codec",
    type=click.Choice(["h264", "hevc"]),
    default="h264",
    show_default=True,
    help="Both cameras' codec (hevc: H.265, as a GoPro records its high-rate modes).",
)
@click.option(
    "--upside-down",
    type=click.Choice(["none", "blur", "sharp", "both"]),
    default="none",
    show_default=True,
    help="Camera(s) mounted turned 180 degrees: the rolling shutter reads the upright picture bottom up.",
)
@click.option(
    "--rotation-tag/--no-rotation-tag",
    default=True,
    show_default=True,
    help="An upside-down camera's file stores the sensor's frames turned, with a display matrix that turns them "
    "back (ffmpeg >= 6.1); --no-rotation-tag: the camera turns the pixels itself.",
)
@click.option(
    "--distortion-blur",
    default="",
    help="Blur lens distortion, OpenCV coefficients k1[,k2,p1,p2,k3] (e.g. -0.06); films a board take (--board).",
)
@click.option("--distortion-sharp", default="", help="Sharp lens distortion, as --distortion-blur (e.g. 0.05).")
@click.option(
    "--board-reach",
    type=float,
    default=None,
    help="How far from the centre the calibration board is held: its centres on a 3x3 grid at 0.5 ± this "
    "fraction of the frame, 0 to 0.35 (default 0.2, the board over about 40 % of the frame; drawn with --randomize).",
)
@click.option(
    "--board",
    type=click.Choice(BOARD_KINDS),
    default=BOARD_KINDS[0],
    show_default=True,
    help="The calibration take's board (charuco: OpenCV's ChArUco board of the same squares, 5x5 markers).",
)
@click.option(
    "--rig-drift",
    type=float,
    default=0.0,
    show_default=True,
    help="Bump the rig after its calibration take: each other take's sharp camera turned and shifted so that "
    "the frame's corners move by up to this many pixels.",
)
@click.option(
    "--centre-offset",
    type=(float, float),
    default=(0.0, 0.0),
    show_default=True,
    metavar="X Y",
    help="Where the sharp camera's centre of projection sits against the blur camera's, in mm (x right, y down): "
    "a rig that is not exactly nodal, so a subject at 0.6 m, its screen at 1.5 m, a board at 1 m and a street's "
    "objects (4 m) and backdrop (12 m) shift against each other between the views (parallax).",
)
@click.option(
    "--bump",
    type=float,
    default=0.0,
    show_default=True,
    help="Knock the rig halfway through each take: the sharp camera turned and shifted so that the frame's "
    "corners move by up to this many pixels from then on.",
)
@click.option(
    "--rig-moves-3d",
    is_flag=True,
    help="--rig-drift and --bump turn the sharp camera about its centre in 3-D (pan, tilt and roll, leaving "
    "a keystone) instead of turning and shifting its picture.",
)
@click.option(
    "--vignetting",
    type=(float, float),
    default=(0.0, 0.0),
    show_default=True,
    help="Each camera's vignetting (blur, sharp): the light lost at the frame's corners, 0 to 0.6.",
)
@click.option(
    "--splitter-gradient",
    type=float,
    default=0.0,
    show_default=True,
    help="The beam splitter's split ratio across the frame: the blur view gets 1 ± this from left to right, "
    "the sharp view the opposite, -0.3 to 0.3.",
)
@click.option(
    "--randomize",
    is_flag=True,
    help="Draw anchor, exposures, readouts, drift and bitrate per take, and both lenses' k1 and k2 and the "
    "board's reach per session, from plausible ranges (deterministic per seed).",
)
def simulate_rig(
    raw,
    category,
    subjects,
    takes,
    seconds,
    seed,
    source,
    size,
    sharp_size,
    flip,
    no_audio,
    sharp_audio_delay,
    audio_start,
    timecode,
    chapter_seconds,
    static,
    rig_motion,
    subject_size,
    rig,
    exposure_anchor,
    sharp_exposure_anchor,
    blur_exposure,
    sharp_exposure,
    readout_blur,
    readout_sharp,
    exposure_drift,
    wb_drift,
    flicker,
    bitrate,
    codec,
    upside_down,
    rotation_tag,
    distortion_blur,
    distortion_sharp,
    board_reach,
    board,
    rig_drift,
    centre_offset,
    bump,
    rig_moves_3d,
    vignetting,
    splitter_gradient,
    randomize,
):
    """Simulate a capture session of the beam-splitter rig into RAW/<category>/<subject>/<take>/."""
    from ..settings import load_rig

    rig_settings = load_rig(rig)
    width, height = frame_size(size, "--size", low=1)
    if source is not None and not source.exists():
        raise Rb2vError(f"{source}: --source not found")
    cfg = SimConfig(
        category=category,
        subjects=subjects,
        takes=takes,
        seconds=seconds,
        seed=seed,
        width=width,
        height=height,
        sharp_size=frame_size(sharp_size, "--sharp-size", low=1) if sharp_size else None,
        # a rig file's "29.97" is NTSC's 30000/1001, as the videos are written and read
        blur_fps=float(parse_fps(str(rig_settings.blur.fps))),
        sharp_fps=float(parse_fps(str(rig_settings.sharp.fps))),
        flip=flip or rig_settings.flip_sharp,
        audio=not no_audio,
        sharp_audio_delay_s=sharp_audio_delay,
        audio_start_s=_audio_starts(audio_start),
        timecode=timecode,
        chapter_seconds=chapter_seconds,
        motion_scale=0.0 if static else 1.0,
        rig_motion=rig_motion,
        subject_size=subject_size,
        source=str(source) if source else None,
        blur_exposure_s=blur_exposure,
        sharp_exposure_s=sharp_exposure,
        blur_anchor=exposure_anchor,
        sharp_anchor=sharp_exposure_anchor,
        blur_readout_s=readout_blur,
        sharp_readout_s=readout_sharp,
        exposure_drift=exposure_drift,
        wb_drift=wb_drift,
        flicker_hz=flicker[0],
        flicker_depth=flicker[1],
        bitrate_mbps=bitrate,
        codec=codec,
        upside_down=(upside_down in ("blur", "both"), upside_down in ("sharp", "both")),
        rotation_tag=rotation_tag,
        distortion_blur=_coeffs(distortion_blur, "--distortion-blur"),
        distortion_sharp=_coeffs(distortion_sharp, "--distortion-sharp"),
        board_reach=board_reach,
        board=board,
        rig_drift_px=rig_drift,
        centre_offset_mm=tuple(centre_offset),
        bump_px=bump,
        rig_moves_3d=rig_moves_3d,
        vignetting=tuple(vignetting),
        splitter_gradient=splitter_gradient,
        randomize=randomize,
    )
    cfg.validate()  # before the renderer is imported (seconds): a mistake is told at once
    from .session import simulate_session

    start = time.perf_counter()
    finished = set(raw.rglob("truth.json"))  # a re-run keeps these takes (it said it had simulated them)
    folders = simulate_session(raw, cfg, crop=(rig_settings.crop.width, rig_settings.crop.height))
    calibration = sum(f.parent.name == "calibration" for f in folders)
    also = f" and {calibration} calibration take (RAW/calibration/)" if calibration else ""
    kept = sum(f / "truth.json" in finished for f in folders)
    click.echo(
        f"simulated {len(folders) - calibration} take(s) of '{category}'{also} under {raw} in "
        f"{time.perf_counter() - start:.1f} s (truth in each take's truth.json)"
        + (f"; {kept} of them were already there and are kept" if kept else "")
    )
