"""``rb2v bench build``: throughput vs the I/O floor, per-stage time and peak memory of ``rb2v build``.

Simulates one take (default 10 s), aligns it with its true geometry (so only the build is
measured), builds it in a child process and reports samples/s, the share of time per stage,
the child's peak resident memory, and, in the same run, the I/O floor of the same work
(decode the take's frames, encode and write the samples' PNGs with the same settings) with the
ratio build / floor. Accuracy against the simulator's truth: the fraction of accepted samples
at the exact start and the median colour error.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click


@click.command("build")
@click.option("--category", type=click.Choice(["street", "hand", "face"]), default="street", show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Length of the simulated take.")
@click.option("--interpolator", type=click.Choice(["flow", "linear", "cdfi"]), default="flow", show_default=True)
@click.option("--stride", type=int, default=1, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def main(category, seconds, interpolator, stride, workdir):
    """Per-stage throughput and peak memory of rb2v build on one simulated take."""
    from ..simulate import SimConfig, simulate_session
    from ..simulate.oracle import write_oracle_alignment

    root = Path(workdir or tempfile.mkdtemp(prefix="rb2v-bench-build-"))
    raw, out = root / "raw", root / "out"
    t0 = time.perf_counter()
    takes = [
        t
        for t in simulate_session(raw, SimConfig(category=category, seconds=seconds, seed=1, audio=False))
        if t.parent.name != "calibration"
    ]
    write_oracle_alignment(takes[0], out / "aligned" / takes[0].relative_to(raw))
    click.echo(f"simulated and aligned a {seconds:g} s {category} take in {time.perf_counter() - t0:.1f} s")
    from .floor import children_cpu_s

    t0, cpu0 = time.perf_counter(), children_cpu_s()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rb2v",
            "build",
            "--category",
            category,
            "--out",
            str(out),
            "--interpolator",
            interpolator,
            "--stride",
            str(stride),
            "--no-report",
        ],
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - t0, children_cpu_s() - cpu0
    if proc.returncode != 0:
        raise click.ClickException(f"build failed: {proc.stderr.strip().splitlines()[-1]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = json.loads((out / "datasets" / category / "build.json").read_text())
    take = info["takes"][0]
    n = take["accepted"] + take["rejected"]
    total = sum(take["stage_seconds"].values())
    click.echo(
        f"\nrb2v build --category {category} --interpolator {interpolator}: {n} blurry frames "
        f"({take['accepted']} accepted) in {wall:.1f} s wall, {take['seconds']:.1f} s in the take stage"
    )
    click.echo(f"{'stage':<18}{'seconds':>9}{'share':>8}{'frames/s':>10}")
    for stage, sec in sorted(take["stage_seconds"].items(), key=lambda kv: -kv[1]):
        if sec < 1e-3:  # a stage this category does not run (matting on street)
            continue
        click.echo(f"{stage:<18}{sec:>9.2f}{sec / total:>8.1%}{n / sec if sec else float('inf'):>10.2f}")
    click.echo(f"{'all stages':<18}{total:>9.2f}{1:>8.1%}{n / total:>10.2f}")
    click.echo(
        f"throughput: {take['accepted'] / wall:.2f} samples/s end to end; peak memory of the build: {peak_mb:.0f} MB"
    )
    import os

    from ..dataset.settings import load_pipeline
    from .floor import io_floor
    from .rig_unknowns import measure_take

    aligned = out / "aligned" / takes[0].relative_to(raw)
    inputs = sorted((aligned / "blur").glob("*.png"))[::stride] + sorted((aligned / "sharp").glob("*.png"))
    compression = load_pipeline(category).output.png_compression
    floor = io_floor(inputs, out / "datasets" / category, compression)
    click.echo(floor.line(wall, "build (wall, child process)", cpu))
    acc = measure_take(raw, out, category)
    click.echo(
        f"accuracy: {100 * acc['at_exact']:.1f} % of {acc['accepted']} accepted samples at the exact start, "
        f"median colour error {acc['colour_median']:.4f}; load average {os.getloadavg()[0]:.1f}"
    )
