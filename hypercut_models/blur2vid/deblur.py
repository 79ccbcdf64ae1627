"""``rb2v deblur``: any blurry photo -> its 7 sharp frames, in overlapping tiles for large images.

Each input (PNG/JPEG, any size, or a folder of them) gives ``OUT/<name>/frame001.png ...
frame007.png`` in time order, and with ``video`` an MP4 or GIF of the 7 frames (through the ffmpeg
chokepoint ``rb2v.ffmpeg``). Images larger than ``tile`` pixels on a side are cut into tiles of
``tile`` with ``overlap`` pixels shared between neighbours and blended with linear ramps, so memory
depends on the tile, not the image. (Each tile picks its time direction, and takes the network's
global context, from its own content; the hypercut-trained model picks the direction consistently
for one motion.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rb2v import ffmpeg
from rb2v.device import resolve_device
from rb2v.errors import PartialFailure, Rb2vError
from rb2v.io.images import read_image, write_image
from rb2v.progress import progress, say

from .checkpoint import load_network
from .evaluate import predict
from .inputs import DEFAULT_OVERLAP, DEFAULT_TILE, check_tiling, prepare
from .network import FRAMES, Blur2VidNet
from .train import place

VIDEO_FPS = 7


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of side ``tile`` covering [0, length) with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def _ramp(length: int, start: int, tile: int, overlap: int, total: int) -> np.ndarray:
    w = np.ones(tile, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        if start > 0:
            w[:overlap] = r
        if start + tile < total:
            w[-overlap:] = r[::-1]
    return w


def deblur_array(
    net: Blur2VidNet, image: np.ndarray, device: torch.device, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP
) -> np.ndarray:
    """(H, W, 3) in [0, 1] -> (7, H, W, 3) in [0, 1]."""
    check_tiling(tile, overlap)
    h, w = image.shape[:2]
    out = np.zeros((FRAMES, h, w, 3), np.float32)
    weight = np.zeros((h, w), np.float32)
    th, tw = min(tile, h), min(tile, w)
    for y in tile_starts(h, th, overlap):
        for x in tile_starts(w, tw, overlap):
            crop = image[y : y + th, x : x + tw]
            blur = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]
            frames = predict(net, blur, device)[0].numpy().transpose(0, 2, 3, 1)
            wy, wx = _ramp(h, y, th, overlap, h), _ramp(w, x, tw, overlap, w)
            wt = wy[:, None] * wx[None, :]
            out[:, y : y + th, x : x + tw] += frames * wt[None, :, :, None]
            weight[y : y + th, x : x + tw] += wt
    return out / weight[None, :, :, None]


def write_video(folder: Path, kind: str) -> Path:
    """The 7 frames as ``folder/<name>.mp4`` (H.264) or ``.gif`` through the ffmpeg chokepoint."""
    out = folder / f"{folder.name}.{kind}"
    src = ["-framerate", str(VIDEO_FPS), "-i", str(folder / "frame%03d.png")]
    if kind == "gif":
        vf = "split[a][b];[a]palettegen[p];[b][p]paletteuse"
        args = ["-v", "error", "-y", *src, "-filter_complex", vf, "-loop", "0", str(out)]
    else:  # yuv420p needs even sides
        vf = "pad=ceil(iw/2)*2:ceil(ih/2)*2"
        args = ["-v", "error", "-y", *src, "-vf", vf, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)]
    ffmpeg.run(args, what=f"{out}: video")
    return out


def deblur(
    inputs: list[str | Path],
    checkpoint: str | Path,
    out: str | Path,
    *,
    video: str | None = None,
    device: str = "auto",
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Path]:
    """Deblur every input; return the output folders. Unreadable images are reported one line each."""
    files = prepare(inputs, out, video=video, tile=tile, overlap=overlap)
    return deblur_files(files, checkpoint, out, video=video, device=device, tile=tile, overlap=overlap)


def deblur_files(
    files: list[Path],
    checkpoint: str | Path,
    out: str | Path,
    *,
    video: str | None = None,
    device: str = "auto",
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Path]:
    """``deblur`` of the images ``prepare`` listed and checked."""
    out = Path(out)
    dev = resolve_device(device)
    net, _ = load_network(checkpoint)
    net = place(net, dev).eval()
    done, failed = [], []
    for path in progress(files, desc="deblur", unit="image"):
        try:
            image = read_image(path)
            frames = deblur_array(net, image, dev, tile=tile, overlap=overlap)
        except Rb2vError as e:
            if len(files) == 1:
                raise
            say(f"rb2v: error: {e}")
            failed.append(path)
            continue
        folder = out / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(frames, start=1):
            write_image(folder / f"frame{k:03d}.png", frame)
        if video:
            write_video(folder, video)
        done.append(folder)
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(files)} image(s) could not be deblurred (named above)")
    return done
