"""``rb2v bench align``: aligning one simulated take vs only decoding its two streams.

Both run side by side in one process on the same files: the decode-only reference is ffmpeg
decoding every frame of both cameras to the null muxer (no Python, no conversion), which is
the floor for anything that must look at every frame. The ratio align / decode is printed
(target: <= 3 on 2 cores), with the alignment's errors against the simulator's truth.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from .. import ffmpeg
from ..align.discover import discover
from ..align.geometry import flip_matrix
from ..align.lens import distort, undistort
from ..align.stage import AlignOptions, run_align
from ..alignment import Alignment, Lens, read_alignment
from ..settings import load_rig


def decode_only(paths: list[Path]) -> float:
    """Seconds for ffmpeg to decode every video frame of ``paths``, one after the other."""
    t0 = time.perf_counter()
    for p in paths:
        ffmpeg.run(ffmpeg.graph.input(str(p))["v:0"].output("-", f="null"), what=f"{p}: decode")
    return time.perf_counter() - t0


def corner_errors(meta: Alignment | dict, truth: dict) -> np.ndarray:
    """Crop-corner error (px) of an alignment against a simulated take's truth, lens-aware.

    For each corner of the crop, the recorded pixel each camera's output samples there is taken
    back into the *true* undistorted blur view (the blur camera's through its true lens; the
    sharp camera's through its true lens, flip and homography): the distance between the two is
    how far apart the scene points are that the output pairs at that corner. Without lenses on
    either side it is the plain homography comparison (in blur pixels).
    """
    if isinstance(meta, dict):
        meta = Alignment.from_json(meta)
    c = meta.crop
    corners = np.float64([[c.x, c.y], [c.x + c.width - 1, c.y], [c.x + c.width - 1, c.y + c.height - 1]])
    corners = np.vstack([corners, [c.x, c.y + c.height - 1]])
    from ..simulate.oracle import sharp_size

    w, h = sharp_size(truth)  # the flip acts on the sharp camera's recorded frame
    tl = truth.get("lens")
    true = {k: Lens.from_json(v, "truth.json") for k, v in tl.items()} if tl else None
    est = meta.lens
    # recorded pixels sampled by the output at the corners
    blur_raw = distort(est["blur"], corners) if est else corners
    F = flip_matrix(meta.flip_sharp, w, h)
    q = F @ np.linalg.inv(meta.H) @ np.vstack([corners.T, np.ones(4)])
    sharp_u = (q[:2] / q[2]).T  # raw sharp pixels, undistorted by the estimate
    sharp_raw = distort(est["sharp"], sharp_u) if est else sharp_u
    # ... into the true undistorted blur view
    b = undistort(true["blur"], blur_raw) if true else blur_raw
    s = undistort(true["sharp"], sharp_raw) if true else sharp_raw
    Ht = np.asarray(truth["homography"], np.float64) @ flip_matrix(truth["flip_sharp"], w, h)
    q = Ht @ np.vstack([s.T, np.ones(4)])
    s = (q[:2] / q[2]).T
    return np.linalg.norm(b - s, axis=1)


@click.command()
@click.option("--seconds", default=10.0, show_default=True, help="Length of the simulated take.")
@click.option("--seed", default=5, show_default=True)
@click.option("--no-audio", is_flag=True, help="Simulate without audio (visual synchronisation).")
@click.option(
    "--work",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the simulated take (kept and reused); default: a temporary folder.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Timed runs of each side (the best is reported).",
)
@click.option(
    "--png-compression",
    type=click.IntRange(0, 9),
    default=None,
    help="zlib level of the aligned PNGs (default: the rig's).",
)
def main(seconds, seed, no_audio, work, repeat, png_compression):
    """Align one simulated take vs only decode its two streams; print the time ratio."""
    from ..simulate import SimConfig, simulate_session

    keep = work is not None
    work = work or Path(tempfile.mkdtemp(prefix="rb2v-bench-align-"))
    raw = work / f"raw-{seconds:g}s-seed{seed}{'-silent' if no_audio else ''}"
    try:
        if not any(raw.glob("*/*/*/truth.json")):
            click.echo(f"simulating a {seconds:g} s take under {raw} ...", err=True)
            simulate_session(raw, SimConfig(category="street", seconds=seconds, seed=seed, audio=not no_audio))
        takes, _, _ = discover(raw)
        take = takes[0]
        files = list(take.blur.paths) + list(take.sharp.paths)
        opts = AlignOptions(rig=load_rig(overrides={"align.png_compression": png_compression}))
        decode_times, align_times = [], []
        for _ in range(repeat):
            decode_times.append(decode_only(files))
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            run_align(raw, out, opts)
            align_times.append(time.perf_counter() - t0)
        meta = read_alignment(out / "aligned" / take.key)
        truth = json.loads((take.folder / "truth.json").read_text())
        err = corner_errors(meta, truth)
        decode, align = min(decode_times), min(align_times)
        click.echo(
            f"take: {take.key}, {take.blur.frames} blur + {take.sharp.frames} sharp frames "
            f"{take.blur.width}x{take.blur.height}, {os.cpu_count()} cores"
        )
        click.echo(f"decode only (ffmpeg, both streams): {decode:8.2f} s")
        click.echo(
            f"rb2v align (sync, homography, warp, PNGs at zlib level {opts.rig.align.png_compression}): {align:8.2f} s"
        )
        click.echo(f"ratio align / decode: {align / decode:.2f}  (target <= 3)")
        offset_ms = 1000 * (meta.time_offset_s - truth["time_offset_s"])
        click.echo(
            f"sync {meta.sync_method}: offset error {offset_ms:+.3f} ms, clock ratio "
            f"{(meta.clock_ratio - 1) * 1e6:+.1f} ppm (true {(truth['clock_ratio'] - 1) * 1e6:+.1f}); "
            f"crop corner error mean {err.mean():.3f} px, max {err.max():.3f} px"
        )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
