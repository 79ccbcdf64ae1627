"""``rb2v bench interpolation``: linear / flow / ffmpeg minterpolate (and cdfi) on Middlebury.

Quality: per-scene and mean PSNR and SSIM of the middle frame (frame10 + frame11 ->
frame10i11), outputs quantised to 8 bits as they would be written. Speed: frames/s on
a 448x448 crop with 2 threads, side by side in the same run.

minterpolate runs as ``minterpolate=fps=2:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1``
in yuv444p (no chroma subsampling) on the frames a, b, b and its second output frame is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from .. import ffmpeg, metrics
from ..errors import Rb2vError
from ..interpolation import load_interpolator
from ..io.images import read_image, to_uint8

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "middlebury"
MINTERPOLATE = "minterpolate=fps=2:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
SPEED_SIZE = 448
SPEED_THREADS = 2


def minterpolate(a: np.ndarray, b: np.ndarray, threads: int = SPEED_THREADS) -> np.ndarray:
    """ffmpeg's motion-compensated midpoint of ``a`` and ``b`` (float32 RGB in [0,1])."""
    h, w = a.shape[:2]
    # a, b, b: the filter needs a frame after b to emit the one between a and b
    raw = b"".join(to_uint8(x).tobytes() for x in (a, b, b))
    proc = ffmpeg.run(
        [
            "-threads",
            str(threads),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-r",
            "1",
            "-i",
            "pipe:0",
            "-filter_threads",
            str(threads),
            "-vf",
            f"format=yuv444p,{MINTERPOLATE}",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ],
        input=raw,
        what="ffmpeg minterpolate",
    )
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)
    if len(frames) < 2:
        raise Rb2vError(f"ffmpeg minterpolate returned {len(frames)} frames, expected at least 2")
    return frames[1].astype(np.float32) / 255.0


def load_scenes(root: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, frame10, frame11, frame10i11) of every complete scene under ``root``/{input,gt}."""
    scenes = []
    for gt in sorted((root / "gt").glob("*/frame10i11.png")):
        name = gt.parent.name
        inp = root / "input" / name
        if (inp / "frame10.png").is_file() and (inp / "frame11.png").is_file():
            scenes.append((name, read_image(inp / "frame10.png"), read_image(inp / "frame11.png"), read_image(gt)))
    if not scenes:
        raise Rb2vError(
            f"{root}: no Middlebury scenes (expected gt/<scene>/frame10i11.png and "
            "input/<scene>/frame10.png, frame11.png)"
        )
    return scenes


def psnr(out: np.ndarray, gt: np.ndarray) -> float:
    """PSNR (dB) over the RGB image of the 8-bit-quantised output, peak 1."""
    return metrics.psnr(to_uint8(out).astype(np.float64) / 255.0, gt)


def ssim(out: np.ndarray, gt: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(to_uint8(out).astype(np.float32) / 255.0, gt, channel_axis=2, data_range=1.0))


def _methods(names: list[str], checkpoint: Path | None, device: str) -> dict:
    fns = {}
    for name in names:
        if name == "minterpolate":
            fns[name] = minterpolate
        elif name == "cdfi":
            fns[name] = load_interpolator("cdfi", checkpoint=checkpoint, device=device)
        elif name == "flow-fast":
            fns[name] = load_interpolator("flow", fuse=False)
        else:
            fns[name] = load_interpolator(name)
    return fns


def _mid(fn, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return fn(a, b) if fn is minterpolate else fn(a, b, 0.5)


@click.command("interpolation")
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option(
    "--methods",
    default="linear,flow,flow-fast,minterpolate",
    show_default=True,
    help="Comma list of linear, flow, flow-fast (no candidate fusion), minterpolate, cdfi.",
)
@click.option(
    "--cdfi-checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Official CDFI_adacof.pth: adds 'cdfi' to the methods.",
)
@click.option("--device", default="auto", show_default=True, help="Device for cdfi.")
@click.option(
    "--speed-repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed runs per method at 448x448.",
)
def main(data: Path | None, methods: str, cdfi_checkpoint: Path | None, device: str, speed_repeats: int):
    """Compare interpolators on Middlebury DATA (default ../shared/data/middlebury next to the repo)."""
    import cv2
    import torch

    root = data if data is not None else DEFAULT_DATA.resolve()
    if not root.is_dir():
        raise Rb2vError(f"{root}: Middlebury folder not found (pass DATA; the default is a clone's ../shared/data)")
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if cdfi_checkpoint is not None and "cdfi" not in names:
        names.append("cdfi")
    known = {"linear", "flow", "flow-fast", "minterpolate", "cdfi"}
    if not names or set(names) - known:
        raise Rb2vError(f"--methods: unknown {sorted(set(names) - known)} (known: {', '.join(sorted(known))})")
    cv2.setNumThreads(SPEED_THREADS)
    torch.set_num_threads(SPEED_THREADS)
    fns = _methods(names, cdfi_checkpoint, device)
    scenes = load_scenes(root)

    click.echo(f"Middlebury: {len(scenes)} scenes from {root}; PSNR dB / SSIM of the middle frame, 8-bit output")
    click.echo(f"{'scene':<12}" + "".join(f"{n:>20}" for n in names))
    scores = {n: [] for n in names}
    for name, a, b, gt in scenes:
        row = f"{name:<12}"
        for n in names:
            out = _mid(fns[n], a, b)
            scores[n].append((psnr(out, gt), ssim(out, gt)))
            row += f"{scores[n][-1][0]:>12.2f} / {scores[n][-1][1]:.3f}"
        click.echo(row)
    means = {n: np.mean(scores[n], axis=0) for n in names}
    click.echo(f"{'MEAN':<12}" + "".join(f"{means[n][0]:>12.2f} / {means[n][1]:.3f}" for n in names))
    if "minterpolate" in names:
        ref = [s[0] for s in scores["minterpolate"]]
        click.echo(
            f"{'< minterp.':<12}"
            + "".join(f"{sum(p < r for (p, _), r in zip(scores[n], ref)):>17d}/{len(ref)}" for n in names)
        )

    # speed on a central 448x448 crop of the largest scene (smaller if the scenes are), 2 threads
    _, a, b, _ = max(scenes, key=lambda s: s[1].shape[0] * s[1].shape[1])
    size = min(SPEED_SIZE, *a.shape[:2])
    y0, x0 = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    ca = np.ascontiguousarray(a[y0 : y0 + size, x0 : x0 + size])
    cb = np.ascontiguousarray(b[y0 : y0 + size, x0 : x0 + size])
    fps = {}
    for n in names:
        _mid(fns[n], ca, cb)  # warm-up
        t0 = time.perf_counter()
        for _ in range(speed_repeats):
            _mid(fns[n], ca, cb)
        fps[n] = speed_repeats / (time.perf_counter() - t0)
    click.echo(f"\nSpeed at {size}x{size}, {SPEED_THREADS} threads (minterpolate includes the ffmpeg process):")
    base = fps.get("minterpolate")
    for n in names:
        ratio = f"  ({fps[n] / base:.2f}x minterpolate)" if base else ""
        click.echo(f"  {n:<14}{fps[n]:9.2f} frames/s{ratio}")
