"""Aligned takes made from the simulator's truth (the "oracle" aligner).

Writes exactly what ``rb2v align`` writes (alignment contract), but from truth.json's
homography, flip and clock instead of estimates. It lets the stages after alignment be
tested and benchmarked on their own, with alignment errors ruled out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from ..alignment import Alignment, Crop, Exposure, Lens, write_alignment
from ..fsutil import atomic_dir
from ..io.images import apply_flip, write_image
from ..io.video import iter_frames, open_source
from ..settings import load_rig
from .session import SHARP_BORDER_BAND

SHARP_BORDER = SHARP_BORDER_BAND + 4  # px at the sharp camera's top/bottom treated as invalid (housing + ramp)


def valid_crop(truth: dict, crop_w: int, crop_h: int) -> dict:
    """The crop nearest the frame centre inside the blur view's valid region and the warped sharp view."""
    w, h = truth["width"], truth["height"]
    sw, sh = sharp_size(truth)
    H = np.asarray(truth["homography"], np.float64)
    lenses = _lenses(truth)
    sharp_valid = np.zeros((sh, sw), np.uint8)
    # rows of the recorded frame (wholly inside the rendered rows that are valid); a vertical flip keeps them
    sharp_valid[math.ceil(SHARP_BORDER * sh / h) : math.floor((h - SHARP_BORDER) * sh / h)] = 1
    if lenses:  # valid regions are in recorded pixels; the crop is in undistorted ones
        sharp_valid = _undistorted_mask(sharp_valid, lenses["sharp"])
    sharp_valid = apply_flip(sharp_valid, truth["flip_sharp"]).copy()
    valid = cv2.warpPerspective(sharp_valid, H, (w, h), flags=cv2.INTER_NEAREST)
    vr = truth["valid_region"]
    box = np.zeros_like(valid)
    box[vr["y"] : vr["y"] + vr["height"], vr["x"] : vr["x"] + vr["width"]] = 1
    if lenses:
        box = _undistorted_mask(box, lenses["blur"])
    valid &= box
    # every top-left corner on even columns whose crop lies inside; the nearest to the centre (first on ties)
    sat = cv2.integral(valid)  # summed-area table
    area = sat[crop_h:, crop_w:] - sat[:-crop_h, crop_w:] - sat[crop_h:, :-crop_w] + sat[:-crop_h, :-crop_w]
    ys, xs = np.nonzero(area[:, ::2] == crop_w * crop_h)
    if len(ys) == 0:
        raise ValueError("no crop of the requested size fits inside both views")
    xs = 2 * xs
    cy, cx = (h - crop_h) / 2, (w - crop_w) / 2
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return {"x": int(xs[i]), "y": int(ys[i]), "width": crop_w, "height": crop_h}


def sharp_size(truth: dict) -> tuple[int, int]:
    """The sharp camera's recorded (width, height): the blur camera's unless truth says otherwise."""
    return truth.get("sharp_width", truth["width"]), truth.get("sharp_height", truth["height"])


def _lenses(truth: dict) -> dict[str, Lens] | None:
    lens = truth.get("lens")
    return None if not lens else {c: Lens.from_json(v, "truth.json") for c, v in lens.items()}


def _undistorted_mask(mask: np.ndarray, lens: Lens) -> np.ndarray:
    """A 0/1 mask of recorded pixels as the undistorted view sees it (0 where the lens showed nothing)."""
    from ..align.lens import undistort_image

    return (undistort_image(mask.astype(np.float32), lens) > 0.999).astype(np.uint8)


def truth_alignment(truth: dict, crop: dict) -> Alignment:
    """The simulator's truth as an alignment (what a perfect ``rb2v align`` would write)."""
    exposure = truth.get("exposure")
    lens = truth.get("lens")
    return Alignment(
        blur_fps=truth["blur_fps"],
        sharp_fps=truth["sharp_fps"],
        flip_sharp=truth["flip_sharp"],
        homography=tuple(tuple(r) for r in truth["homography"]),
        crop=Crop(**crop),
        time_offset_s=truth["time_offset_s"],
        clock_ratio=truth["clock_ratio"],
        sync_method="oracle",
        exposure=None if exposure is None else {c: Exposure.from_json(e, "truth.json") for c, e in exposure.items()},
        lens=None if lens is None else {c: Lens.from_json(v, "truth.json") for c, v in lens.items()},
        residual_px=0.0,
        inliers=0,
        extra={"blur_frames": truth["blur_frames"], "sharp_frames": truth["sharp_frames"]},
    )


def write_oracle_alignment(take_dir: str | Path, out_dir: str | Path, crop_size: tuple[int, int] = (448, 448)) -> Path:
    """Align a simulated take with its true geometry and clock; same outputs as ``rb2v align``
    (with the true lenses, both streams undistorted through one remap each)."""
    take_dir, out_dir = Path(take_dir), Path(out_dir)
    truth = json.loads((take_dir / "truth.json").read_text())
    crop = valid_crop(truth, *crop_size)
    level = load_rig().align.png_compression  # as `rb2v align` writes aligned frames by default: stored
    if truth.get("lens"):
        return _write_undistorted(take_dir, out_dir, truth, crop, level)
    H = np.asarray(truth["homography"], np.float64)
    shift = np.array([[1, 0, -crop["x"]], [0, 1, -crop["y"]], [0, 0, 1]], np.float64)
    with atomic_dir(out_dir) as tmp:
        x0, y0, cw, ch = crop["x"], crop["y"], crop["width"], crop["height"]
        for k0, chunk in _frames(take_dir, truth["blur_files"]):
            for j, f in enumerate(chunk):
                write_image(tmp / "blur" / f"{k0 + j:06d}.png", f[y0 : y0 + ch, x0 : x0 + cw], compression=level)
        for i0, chunk in _frames(take_dir, truth["sharp_files"]):
            for j, f in enumerate(chunk):
                un = np.ascontiguousarray(apply_flip(f, truth["flip_sharp"]))
                warped = cv2.warpPerspective(un, shift @ H, (cw, ch), flags=cv2.INTER_LINEAR)
                write_image(tmp / "sharp" / f"{i0 + j:06d}.png", warped, compression=level)
        write_alignment(tmp, truth_alignment(truth, crop))
    return out_dir


def _write_undistorted(take_dir: Path, out_dir: Path, truth: dict, crop: dict, level: int) -> Path:
    from ..align.lens import frame_maps

    meta = truth_alignment(truth, crop)
    with atomic_dir(out_dir) as tmp:
        for cam in ("blur", "sharp"):
            mx, my = (m.astype(np.float32) for m in frame_maps(meta, cam))
            for i0, chunk in _frames(take_dir, truth[f"{cam}_files"]):
                for j, f in enumerate(chunk):
                    out = cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                    write_image(tmp / cam / f"{i0 + j:06d}.png", out, compression=level)
        write_alignment(tmp, meta)
    return out_dir


def _frames(take_dir: Path, files: list[str]):
    start = 0
    for chunk in iter_frames(open_source([take_dir / f for f in files]), chunk=32):
        yield start, chunk
        start += len(chunk)
