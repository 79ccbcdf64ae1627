"""``rb2v bench synth-reds``: ``rb2v synth-reds`` vs its I/O floor, side by side in one run.

Input: real video frames (``../shared/data/img_seq``, else the bundled ``tests/fixtures/img_seq``),
cropped to ``--width`` x ``--height`` and written as PNG sequences (untimed): ``--sequences`` crops of
the same frames (centre, top and bottom of the frame, plain and mirrored), so that the process's start
(about 1 s of imports) weighs on the ratio about as little as on a dataset of many sequences. The
command runs in a child process as a user would run it; the floor (decode every input frame once, encode and
write every output PNG with the same compression) runs in this process on the same files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from . import scratch_folder, street_frames

# (vertical position of the crop as a fraction of the room left, mirrored): --sequences takes the first N
CROPS = [(0.5, False), (0.5, True), (0.0, False), (1.0, True), (0.0, True), (1.0, False)]


@click.command("synth-reds")
@click.option("--width", type=click.IntRange(min=16), default=640, show_default=True)
@click.option("--height", type=click.IntRange(min=16), default=272, show_default=True)
@click.option(
    "--frames",
    type=click.IntRange(min=4),
    default=52,
    show_default=True,
    help="Input frames (at most those available).",
)
@click.option(
    "--sequences",
    type=click.IntRange(1, len(CROPS)),
    default=4,
    show_default=True,
    help="Input sequences: crops of the same frames (1: the centre crop alone).",
)
@click.option("--interpolator", type=click.Choice(["flow", "linear", "cdfi"]), default="flow", show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def main(width, height, frames, sequences, interpolator, workdir):
    """rb2v synth-reds --fps 120 on real frames: wall time, samples/s, ratio to the I/O floor."""
    import cv2
    import numpy as np

    from ..dataset.settings import load_pipeline
    from ..executor import available_cores
    from ..io.images import read_image, write_image
    from .floor import children_cpu_s, io_floor

    root = scratch_folder(workdir, "rb2v-bench-reds-")
    sources = street_frames()[:frames]
    seq_dirs = [root / "input" / f"street{s:03d}" for s in range(sequences)]
    for seq_dir in seq_dirs:
        seq_dir.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        img = read_image(src)
        scale = max(width / img.shape[1], height / img.shape[0])
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        for seq_dir, (where, mirrored) in zip(seq_dirs, CROPS):
            y0, x0 = round((img.shape[0] - height) * where), (img.shape[1] - width) // 2
            crop = img[y0 : y0 + height, x0 : x0 + width]
            write_image(seq_dir / f"{i:05d}.png", np.ascontiguousarray(crop[:, ::-1]) if mirrored else crop)
    out = root / "out"
    cmd = [sys.executable, "-m", "rb2v", "synth-reds", "--fps", "120", "--input", str(root / "input")]
    cmd += ["--out", str(out), "--interpolator", interpolator, "--no-report"]
    t0, cpu0 = time.perf_counter(), children_cpu_s()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RB2V_PROGRESS="0"))
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if proc.returncode != 0:
        raise click.ClickException(f"synth-reds failed: {proc.stderr.strip().splitlines()[-1]}")
    dataset = out / "datasets" / "reds"
    import pandas as pd

    samples = len(pd.read_parquet(dataset / "manifest.parquet"))
    compression = load_pipeline("reds").output.png_compression
    inputs = sorted(p for seq_dir in seq_dirs for p in seq_dir.glob("*.png"))
    floor = io_floor(inputs, dataset, compression, threads=available_cores())
    click.echo(
        f"rb2v synth-reds --fps 120 --interpolator {interpolator}: {sequences} sequence(s) of {len(sources)} frames "
        f"{width}x{height} -> "
        f"{samples} samples in {wall:.2f} s wall ({wall / max(samples, 1):.2f} s per sample, child process)"
    )
    click.echo(floor.line(wall, "synth-reds", cpu))
    click.echo(f"load average {os.getloadavg()[0]:.1f}")
