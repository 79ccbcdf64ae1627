"""``rb2v bench build``: throughput vs the I/O floor, scaling with workers, and peak memory of ``rb2v build``.

Simulates one take (default 10 s), aligns it with its true geometry (so only the build is
measured), builds it in a child process as a user runs it (one worker, every core) and, for a
scaling curve (``--workers 1,2``), once per worker count N on N cores (CPU affinity; a fresh
dataset each time), and reports samples/s, the share of time per stage, the throughput relative
to one worker on one core (target: N workers on N cores >= 0.8 N), the peak resident memory of
the largest process of the build, and, in the same run, the I/O floor of the same work (decode the take's frames, encode
and write the samples' PNGs with the same settings) with the ratio build / floor. Accuracy
against the simulator's truth: the fraction of accepted samples at the exact start and the
median colour error. Peak memory should not grow with the take: run it with ``--seconds 10``
and ``--seconds 60``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from . import int_list, scratch_folder

# Runs the build as a grandchild and reports the largest resident set among the build's
# processes (its workers included: RUSAGE_CHILDREN covers every waited-for descendant).
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t0 = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode; wall = time.perf_counter() - t0\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(rc, wall, u.ru_utime + u.ru_stime, u.ru_maxrss)"
)


def timed_build(args: list[str], cores: int | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB of the largest process) of ``rb2v build ARGS`` in a child, on its first
    ``cores`` cores (CPU affinity; None: all of them)."""
    pin = None if cores is None else (lambda: os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores]))
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "rb2v", "build", *args],
        capture_output=True,
        text=True,
        preexec_fn=pin,
    )
    rc, wall, cpu, rss_kb = proc.stdout.strip().splitlines()[-1].split()
    if int(rc) != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise click.ClickException(f"build failed: {lines[-1] if lines else 'exit ' + rc}")
    return float(wall), float(cpu), int(rss_kb) / 1024


@click.command("build")
@click.option("--category", type=click.Choice(["street", "hand", "face"]), default="street", show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Length of the simulated take.")
@click.option("--interpolator", type=click.Choice(["flow", "linear", "cdfi"]), default="flow", show_default=True)
@click.option("--stride", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--workers",
    "workers_list",
    default="1",
    show_default=True,
    help="Comma-separated worker counts, one build each (e.g. 1,2 for the scaling curve).",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def main(category, seconds, interpolator, stride, workers_list, workdir):
    """Per-stage throughput, scaling with workers and peak memory of rb2v build on one simulated take."""
    from ..simulate import SimConfig, simulate_session
    from ..simulate.oracle import write_oracle_alignment

    counts = int_list(workers_list, "--workers", low=1)
    root = scratch_folder(workdir, "rb2v-bench-build-")
    raw, out = root / "raw", root / "out"
    t0 = time.perf_counter()
    takes = [
        t
        for t in simulate_session(raw, SimConfig(category=category, seconds=seconds, seed=1, audio=False))
        if t.parent.name != "calibration"
    ]
    aligned = out / "aligned" / takes[0].relative_to(raw)
    if not (aligned / "alignment.json").exists():
        write_oracle_alignment(takes[0], aligned)
    click.echo(f"simulated and aligned a {seconds:g} s {category} take in {time.perf_counter() - t0:.1f} s")
    from ..executor import available_cores

    cores = available_cores()

    def build(workers: int, pinned: int | None) -> tuple:
        run_out = root / f"out-w{workers}-c{pinned or cores}"
        shutil.rmtree(run_out, ignore_errors=True)
        run_out.mkdir(parents=True)
        (run_out / "aligned").symlink_to((out / "aligned").resolve(), target_is_directory=True)
        args = ["--category", category, "--out", str(run_out), "--interpolator", interpolator]
        args += ["--stride", str(stride), "--workers", str(workers), "--no-report"]
        wall, cpu, peak_mb = timed_build(args, pinned)
        info = json.loads((run_out / "datasets" / category / "build.json").read_text())
        click.echo(
            f"  {workers} worker(s) on {pinned or cores} core(s): {wall:.1f} s wall, peak {peak_mb:.0f} MB", err=True
        )
        return workers, pinned or cores, wall, cpu, peak_mb, info["takes"][0], run_out

    # As a user runs it (one worker, the whole machine) for the stage table and the floor; the scaling
    # curve runs N workers on N cores (CPU affinity), so one worker gets one core there.
    default = build(1, None)
    _, _, wall1, cpu1, _, take, first_out = default
    n = take["accepted"] + take["rejected"]
    total = sum(take["stage_seconds"].values())
    click.echo(
        f"\nrb2v build --category {category} --interpolator {interpolator}: {n} blurry frames "
        f"({take['accepted']} accepted) in {wall1:.1f} s wall with 1 worker on {cores} cores, "
        f"{take['seconds']:.1f} s in the take stage"
    )
    click.echo(f"{'stage':<18}{'seconds':>9}{'share':>8}{'frames/s':>10}")
    for stage, sec in sorted(take["stage_seconds"].items(), key=lambda kv: -kv[1]):
        if sec < 1e-3:  # a stage this category does not run (matting on street)
            continue
        click.echo(f"{stage:<18}{sec:>9.2f}{sec / total:>8.1%}{n / sec if sec else float('inf'):>10.2f}")
    click.echo(
        f"{'all stages':<18}{total:>9.2f}{1:>8.1%}{n / total:>10.2f}  (search, matting and write run on threads "
        "beside the upsampling: the stages overlap)"
    )
    runs = [default]
    if len(counts) > 1:
        runs += [build(w, w) for w in counts if w <= cores and (w, w) != (1, cores)]
    base = next((r for r in runs if r[:2] == (1, 1)), default)
    click.echo(
        f"\n{'workers':>7}{'cores':>6}{'wall s':>9}{'CPU s':>9}{'samples/s':>11}{'speedup':>9}{'per core':>9}"
        f"{'peak MB':>9}"
    )
    for w, c, wall, cpu, peak_mb, t, _ in runs:
        speedup = base[2] / wall
        click.echo(
            f"{w:>7}{c:>6}{wall:>9.1f}{cpu:>9.1f}{t['accepted'] / wall:>11.2f}{speedup:>9.2f}"
            f"{speedup * base[1] / c:>9.2f}{peak_mb:>9.0f}"
        )
    click.echo(
        f"(speedup relative to {base[0]} worker on {base[1]} core(s); target: N workers on N cores >= 0.8 N; "
        f"{cores} cores here, load average {os.getloadavg()[0]:.1f}; peak MB: the largest process)"
    )
    from ..dataset.settings import load_pipeline
    from .floor import io_floor
    from .rig_unknowns import measure_take

    inputs = sorted((aligned / "blur").glob("*.png"))[::stride] + sorted((aligned / "sharp").glob("*.png"))
    compression = load_pipeline(category).output.png_compression
    floor = io_floor(inputs, first_out / "datasets" / category, compression, threads=cores)
    click.echo(floor.line(wall1, f"build (wall, 1 worker on {cores} cores, child process)", cpu1))
    acc = measure_take(raw, first_out, category)
    click.echo(
        f"accuracy: {100 * acc['at_exact']:.1f} % of {acc['accepted']} accepted samples at the exact start, "
        f"median colour error {acc['colour_median']:.4f}; load average {os.getloadavg()[0]:.1f}"
    )
