"""Random background photos for composited samples, chosen deterministically per sample.

``pick_background(sample_id)`` draws, from a generator seeded by the sample id's SHA-256,
a photo, a crop (square-ish, 55-100 % of the photo's short side), a horizontal flip,
and resizes to the output size; the blurry frame and the 7 sharp frames of a sample
share the id, hence the background. The returned id names the photo and the draw, so a
manifest row says exactly which background a sample got.

Photos come from ``--backgrounds DIR`` (JPEG/PNG, any size) or, by default, a bundled
set generated at run time from scikit-image's photographs (works offline).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import Rb2vError
from ..io.images import bundled_photo, is_image_file, read_image

BUNDLED = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "grass",
    "gravel",
    "brick",
    "moon",
)
BUNDLED_PREFIX = "skimage:"
MIN_CROP_SCALE = 0.55  # a drawn crop spans 55-100 % of the largest crop of the output's aspect


def list_backgrounds(backgrounds_dir: str | os.PathLike | None = None) -> list[str]:
    """Ids of the available photos: sorted relative paths in a folder, or the bundled set."""
    if backgrounds_dir is None:
        return [BUNDLED_PREFIX + name for name in BUNDLED]
    root = Path(backgrounds_dir)
    if not root.is_dir():
        raise Rb2vError(f"{root}: backgrounds " + ("is a file, not a folder" if root.exists() else "folder not found"))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if is_image_file(p))
    if not files:
        raise Rb2vError(f"{root}: no background photos (PNG, JPEG, BMP, TIFF, WebP) in this folder")
    # a photo's signature, read before any work: an undecodable one failed each sample that drew it
    unreadable = [f for f in files if not cv2.haveImageReader(str(root / f))]
    if unreadable:
        more = f" (and {len(unreadable) - 1} other photo(s) in this folder)" if len(unreadable) > 1 else ""
        raise Rb2vError(f"{root / unreadable[0]}: not a readable image{more}")
    return files


@functools.lru_cache(maxsize=32)
def load_background(background_id: str, backgrounds_dir: str | None = None) -> np.ndarray:
    """The full photo as float32 RGB in [0,1] (cached: a build reuses a few photos many times)."""
    if background_id.startswith(BUNDLED_PREFIX):
        name = background_id[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED:
            raise Rb2vError(f"{background_id}: not a bundled background ({', '.join(BUNDLED)})")
        return bundled_photo(name)

    if backgrounds_dir is None:
        raise Rb2vError(f"{background_id}: not a bundled background and no backgrounds folder given")
    return read_image(Path(backgrounds_dir) / background_id)


def pick_background(
    sample_id: str, size: tuple[int, int] = (448, 448), backgrounds_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, str]:
    """(H,W,3) float32 background and its id, a pure function of ``sample_id`` and the photo set.

    ``size`` is (height, width).
    """
    h, w = size
    if h <= 0 or w <= 0:
        raise Rb2vError(f"background size {size}: must be positive")
    names = list_backgrounds(backgrounds_dir)
    seed = int.from_bytes(hashlib.sha256(str(sample_id).encode("utf-8")).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    name = names[int(rng.integers(len(names)))]
    photo = load_background(name, None if backgrounds_dir is None else str(backgrounds_dir))
    ph, pw = photo.shape[:2]
    # Crop with the output's aspect ratio, 55-100 % of the largest such crop, anywhere in the photo.
    fit = min(ph / h, pw / w)
    scale = float(rng.uniform(MIN_CROP_SCALE, 1.0))
    ch, cw = max(1, int(round(h * fit * scale))), max(1, int(round(w * fit * scale)))
    y = int(rng.integers(ph - ch + 1))
    x = int(rng.integers(pw - cw + 1))
    flip = bool(rng.integers(2))
    crop = photo[y : y + ch, x : x + cw]
    if flip:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if ch >= h else cv2.INTER_CUBIC
    out = np.clip(cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp), 0.0, 1.0)
    background_id = f"{name}#x={x},y={y},w={cw},h={ch},flip={int(flip)}"
    return out.astype(np.float32), background_id


def enlargement(background_id: str, width: int, height: int) -> float:
    """How many times a background (its id from ``pick_background``) was enlarged to fill a ``width`` x
    ``height`` frame (under 1: reduced)."""
    draw = dict(part.split("=", 1) for part in background_id.rsplit("#", 1)[1].split(","))
    return max(width / int(draw["w"]), height / int(draw["h"]))


def enlarged_note(backgrounds: list[str], sizes: list[tuple[int, int]]) -> str | None:
    """A note on samples whose background photo had fewer pixels than their frames (so it is softer than
    the subject): how many, by how much at most, and what photos avoid it; None when none was."""
    factors = [enlargement(b, w, h) for b, (w, h) in zip(backgrounds, sizes)]
    n = sum(f > 1.0 for f in factors)
    if not n:
        return None
    need = "x".join(str(math.ceil(max(size[i] for size in sizes) / MIN_CROP_SCALE)) for i in (0, 1))
    bundled = "; the bundled photos are 300-1411 px" if any(b.startswith(BUNDLED_PREFIX) for b in backgrounds) else ""
    return (
        f"note: {n} of {len(factors)} samples got a background photo enlarged to their frame size (up to "
        f"{max(factors):.1f}x{bundled}), softer than the subject; photos of at least {need} px (--backgrounds "
        "DIR) are never enlarged"
    )
