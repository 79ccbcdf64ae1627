"""Real image material for simulated scenes: scikit-image's bundled photos or a real video.

Everything is returned in linear light (float32), since the simulated sensor integrates
radiance, not gamma-encoded values.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from ..colorspace import srgb_to_linear
from ..errors import Rb2vError
from ..io.images import bundled_photo, image_files

# Photos bundled with scikit-image that load offline.
COLOUR_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
)
GREY_TEXTURES = ("camera", "grass", "gravel", "brick", "moon", "coins", "clock", "text", "cell")


@functools.cache
def photo(name: str) -> np.ndarray:
    """A bundled photo as linear RGB float32 (grey ones replicated to 3 channels)."""
    # 8-bit levels first: the simulator's scenes are the photos as their 8-bit files hold them
    img = np.round(bundled_photo(name) * 255).astype(np.uint8)
    lin = srgb_to_linear(img.astype(np.float32) / 255.0)
    lin.setflags(write=False)
    return lin


def resize_cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``img`` so it covers width x height, then centre-crop."""
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    nw, nh = max(width, int(np.ceil(w * s))), max(height, int(np.ceil(h * s)))
    out = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y0, x0 = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(out[y0 : y0 + height, x0 : x0 + width])


class SourceFrames:
    """A real video (file) or image sequence (folder) used as a time-varying backdrop."""

    def __init__(self, source: str | Path, max_frames: int = 240, max_side: int = 1024):
        path = Path(source)
        if not path.exists():
            raise Rb2vError(f"{path}: --source not found")
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise Rb2vError(f"{path}: --source folder holds no images")
            frames = []
            for f in files[:max_frames]:
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise Rb2vError(f"{f}: not a readable image")
                frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        else:
            from ..io.video import iter_frames, open_source

            src = open_source(path)
            frames = []
            for chunk in iter_frames(src, 0, min(src.frames, max_frames)):
                frames.extend(chunk)
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise Rb2vError(f"{path}: --source frames differ in size")
        h, w = frames[0].shape[:2]
        s = min(1.0, max_side / max(h, w))
        self.frames = [
            srgb_to_linear(
                cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
            )
            if s < 1
            else srgb_to_linear(f.astype(np.float32) / 255.0)
            for f in frames
        ]
        self.name = path.name

    def __len__(self) -> int:
        return len(self.frames)

    def at(self, position: float) -> np.ndarray:
        """The frame at a fractional position, ping-ponging through the sequence (no jump at the end)."""
        n = len(self.frames)
        if n == 1:
            return self.frames[0]
        period = 2 * (n - 1)
        p = position % period
        if p > n - 1:
            p = period - p
        i = int(np.floor(p))
        f = p - i
        if i >= n - 1:
            return self.frames[n - 1]
        return (1 - f) * self.frames[i] + f * self.frames[i + 1]
