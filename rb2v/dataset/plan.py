"""What ``rb2v build`` and ``rb2v synth-reds`` need of their stages before importing them.

Nothing here imports a stage (pandas, OpenCV, the interpolators: seconds): the commands read their
defaults and check their arguments with it first, and tell a mistake at once; ``build_dataset`` and
``synth_reds_dataset`` use the same constants and checks.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import Rb2vError

CHUNK_FRAMES = 200  # blurry frames per unit of work: a crash late in a long take loses one chunk
MIN_CHUNK_FRAMES = 25  # a chunk re-upsamples the ~2 blurry frames' worth of sharp frames its first frame needs
CHUNKS_PER_WORKER = 4  # with several workers, chunks small enough that the last ones balance the load

SPAN_FPS = 240  # the 7 frames of a synth-reds sample span 6 steps of 1/240 s
MAX_FPS = 100_000


def rate_plan(fps: float) -> tuple[int, int]:
    """(upsample factor k, decimation d) for a source rate, or a clear refusal."""
    if not math.isfinite(fps) or fps <= 0:
        raise Rb2vError(f"--fps {fps:g}: a frame rate must be a positive number")
    if fps > MAX_FPS:  # 1e300 passed as a multiple of 240, then failed naming a 300-digit decimation
        raise Rb2vError(f"--fps {fps:g}: above {MAX_FPS} fps, no camera's rate")
    for k in (1, 2, 3):
        if abs(fps * k - SPAN_FPS) < 1e-6:
            return k, 1
    d = fps / SPAN_FPS
    if d > 1 and abs(d - round(d)) < 1e-6:
        return 1, int(round(d))
    raise Rb2vError(
        f"--fps {fps:g}: a sample's 7 frames lie 1/240 s apart, made by upsampling the source a whole number "
        "of times, so the rate must divide 240 (80, 120 or 240 fps) or be a multiple of 240 (decimated to 240; "
        "e.g. 120 for REDS)"
    )


def check_input_folder(root: Path) -> None:
    """synth-reds' ``--input``: a folder that is there."""
    if not root.exists():
        raise Rb2vError(f"{root}: input folder not found")
    if not root.is_dir():
        raise Rb2vError(f"{root}: not a folder (--input takes DIR/<sequence>/<frames> or DIR/<sequence>.mp4)")
