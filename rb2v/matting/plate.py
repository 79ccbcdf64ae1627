"""Clean background plates for BackgroundMattingV2.

A take's plate is a clean-plate video named in its ``take.toml`` (``clean_plate = "plate.mp4"``,
relative to the take's folder; its frames are median-stacked), or else estimated from
the take itself: per pixel, the temporal median of the frames where that pixel is
screen (the chroma keyer's alpha is ~0 there); pixels the subject never uncovers take
the keyer's fitted screen model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tomllib

from ..errors import Rb2vError
from .chroma import ChromaKeyer
from .frames import as_frames

SCREEN_ALPHA = 0.01


def estimate_plate(frames, keyer: ChromaKeyer | None = None, max_frames: int = 32) -> np.ndarray:
    """(H,W,3) sRGB plate from the frames of one take (up to ``max_frames``, evenly spaced)."""
    frames = as_frames(frames, "take")
    pick = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
    frames = frames[pick]
    keyer = keyer if keyer is not None and keyer.screen is not None else ChromaKeyer().fit(frames)
    screen = np.stack([keyer(f)[0] <= SCREEN_ALPHA for f in frames])
    stack = np.where(screen[..., None], frames, np.nan)
    seen = screen.any(axis=0)
    plate = keyer.screen_image(*frames.shape[1:3])
    if seen.any():
        plate[seen] = np.nanmedian(stack[:, seen], axis=0)
    return plate.astype(np.float32)


def clean_plate_path(take_dir: str | os.PathLike) -> Path | None:
    """The clean-plate video named by ``take.toml``, or None when the take names none."""
    toml = Path(take_dir) / "take.toml"
    if not toml.exists():
        return None
    try:
        conf = tomllib.loads(toml.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Rb2vError(f"{toml}: not valid TOML ({exc})") from None
    name = conf.get("clean_plate")
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise Rb2vError(f"{toml}: clean_plate must be a file name")
    path = (Path(take_dir) / name).resolve()
    if not path.exists():
        raise Rb2vError(f"{toml}: clean_plate {name!r} not found ({path})")
    return path


def read_clean_plate(path: str | os.PathLike, max_frames: int = 32) -> np.ndarray:
    """Median of up to ``max_frames`` evenly spaced frames of a clean-plate video (sRGB float)."""
    from ..io import video

    src = video.open_source(path)
    idx = np.unique(np.linspace(0, src.frames - 1, min(max_frames, src.frames)).round().astype(int))
    frames = np.stack([video.read_frames(src, int(i), 1)[0] for i in idx])
    return (np.median(frames, axis=0) / 255.0).astype(np.float32)


def take_plate(take_dir: str | os.PathLike, frames, keyer: ChromaKeyer | None = None) -> np.ndarray:
    """The plate for a take: its clean-plate video when ``take.toml`` names one, else estimated."""
    path = clean_plate_path(take_dir)
    if path is None:
        return estimate_plate(frames, keyer)
    plate = read_clean_plate(path)
    frames = as_frames(frames[:1] if len(np.shape(frames)) == 4 else frames, "take")
    if plate.shape != frames.shape[1:]:
        raise Rb2vError(
            f"{path}: clean plate is {plate.shape[1]}x{plate.shape[0]}, the take's frames "
            f"{frames.shape[2]}x{frames.shape[1]} (they must be filmed alike)"
        )
    return plate
