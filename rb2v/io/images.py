"""Still images: RGB in, RGB out (OpenCV works in BGR; the conversion lives here only)."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import Rb2vError
from ..fsutil import atomic_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the last chunk, its type and CRC
JPEG_START, JPEG_END, JPEG_SCAN = b"\xff\xd8", b"\xff\xd9", 0xDA

# Still-image files that folder listings pick up (all read by OpenCV's imread).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """An image by its suffix; hidden files (e.g. macOS's ``._name.png`` resource forks) are not."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images directly inside ``folder`` in frame order: by name, numbers by value (frame2 before
    frame10: sorted as text, unpadded frame numbers put frames out of time order)."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=natural_key)


def natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def apply_flip(img: np.ndarray, flip: str) -> np.ndarray:
    """The alignment contract's flips (views, no copy): horizontal maps x to W-1-x, vertical y to H-1-y."""
    if flip == "horizontal":
        return img[:, ::-1]
    if flip == "vertical":
        return img[::-1]
    if flip != "none":
        raise Rb2vError(f"unknown flip {flip!r} (horizontal, vertical or none)")
    return img


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0,1]; float input is passed through as float32."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32, copy=False)


@functools.cache
def bundled_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs by name, as read-only float32 sRGB RGB in [0,1]
    (grey ones replicated to 3 channels, alpha dropped, binary ones as 0/1, stereo pairs: the left view)."""
    import skimage.data

    try:
        img = getattr(skimage.data, name)()
    except AttributeError:
        raise Rb2vError(f"{name!r}: not a photograph bundled with scikit-image") from None
    img = np.asarray(img[0] if isinstance(img, tuple) else img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    out = img.astype(np.float32) if img.dtype == bool else to_float(img)
    out = np.ascontiguousarray(np.clip(out, 0, 1), dtype=np.float32)
    out.setflags(write=False)
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float in [0,1] -> uint8, rounded and clipped; uint8 passes through."""
    if img.dtype == np.uint8:
        return img
    return np.clip(np.rint(np.asarray(img, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike, *, dtype: str = "float32", unchanged: bool = False) -> np.ndarray:
    """Read an image as RGB (H,W,3): float32 in [0,1] (default) or its stored dtype.

    ``unchanged=True`` keeps single-channel and 16-bit images as stored (alpha mattes).
    """
    path = Path(path)
    flags = cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR
    data = np.fromfile(path, dtype=np.uint8) if path.exists() else None
    if data is None:
        raise Rb2vError(f"{path}: image not found")
    if data[:8].tobytes() == PNG_SIGNATURE and PNG_END not in data[-4096:].tobytes():
        # a PNG cut short (a copy interrupted): said here, before libpng prints its own line
        raise Rb2vError(f"{path}: truncated PNG (no end chunk)")
    if data[:2].tobytes() == JPEG_START and not jpeg_is_whole(data.tobytes()):
        # libjpeg decodes a JPEG cut short with a grey bottom and only a warning
        raise Rb2vError(f"{path}: truncated JPEG (no end of image after its scan)")
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise Rb2vError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if dtype == "float32":
        return to_float(img)
    return img


def jpeg_is_whole(data: bytes) -> bool:
    """Whether a JPEG's end-of-image marker follows its first scan. The headers before the scan are
    stepped over by their lengths: an EXIF thumbnail there carries an end marker of its own. Bytes
    after the end (a motion photo's video) are allowed; the scan data cannot hold the end marker."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a marker where one must be: a damaged header
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == JPEG_SCAN:
            return data.find(JPEG_END, pos) >= 0
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def png_params(compression: int) -> list[int]:
    """OpenCV's PNG settings for a zlib level: every PNG rb2v writes through OpenCV uses these.

    Level 0 stores the pixels (fastest). Otherwise the Paeth filter with run-length deflate, against
    OpenCV's adaptive filters at level 1 (measured 2026-12-04): 1.2-1.7x faster on 448x448 dataset frames
    and 640x480 Middlebury images; 5-7 % smaller on street and Middlebury, the same size on face, 6 %
    larger on hand (SUB is as fast and 10-20 % larger). Run-length deflate makes levels above 1 no smaller.
    """
    if compression == 0:
        return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return [
        cv2.IMWRITE_PNG_COMPRESSION,
        compression,
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_PAETH,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]


def write_image(path: str | os.PathLike, img: np.ndarray, *, bits: int = 8, compression: int = 1) -> None:
    """Write an RGB (H,W,3) or grey (H,W) image atomically; float input is in [0,1] (PNG as ``png_params``)."""
    path = Path(path)
    if path.is_dir():
        raise Rb2vError(f"{path}: is a folder, not an image file's name")
    if path.suffix and path.suffix.lower() not in IMAGE_SUFFIXES:
        raise Rb2vError(f"{path}: cannot write images of type {path.suffix!r} (use {', '.join(IMAGE_SUFFIXES)})")
    if bits == 16:
        arr = (
            img
            if img.dtype == np.uint16
            else np.clip(np.rint(np.asarray(img, np.float64) * 65535), 0, 65535).astype(np.uint16)
        )
    else:
        arr = to_uint8(img)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = png_params(compression) if path.suffix.lower() == ".png" else []
    ok, buf = cv2.imencode(path.suffix or ".png", arr, params)
    if not ok:
        raise Rb2vError(f"{path}: could not encode image")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


def encode_png(img: np.ndarray, compression: int = 3) -> bytes:
    """An RGB float [0,1] or uint8 image as 8-bit PNG bytes (for writing and hashing in one go)."""
    arr = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, png_params(compression))
    if not ok:
        raise Rb2vError("could not encode PNG")
    return buf.tobytes()
