"""``rb2v bench <name>``: side-by-side benchmarks (ours vs a reference or a peer), printed as ratios."""

from __future__ import annotations

import click

from .cli import LazyGroup

BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "colormatch": ("rb2v.benchmarks.colormatch", "main", "Fast Algorithm 1 search vs the literal reference."),
    "interpolation": ("rb2v.benchmarks.interpolation", "main", "linear / flow / ffmpeg minterpolate on Middlebury."),
    "matting": ("rb2v.benchmarks.matting", "main", "Our keyer vs ffmpeg chromakey+despill vs HSV threshold."),
    "align": ("rb2v.benchmarks.align", "main", "Aligning a take vs only decoding its two streams."),
    "build": ("rb2v.benchmarks.build", "main", "rb2v build vs its I/O floor; per-stage time, peak memory."),
    "synth-reds": ("rb2v.benchmarks.synth_reds", "main", "rb2v synth-reds on real frames vs its I/O floor."),
    "publish": ("rb2v.benchmarks.publish", "main", "Publish vs cp -r + sha256sum (folder) and aws s3 sync (S3)."),
    "hypercut": ("rb2v.benchmarks.hypercut", "main", "HyperCUT CPU accuracy recipe vs phase correlation."),
    "rig-unknowns": ("rb2v.benchmarks.rig_unknowns", "main", "Align + build errors per camera convention (issue 13)."),
    "models": ("rb2v.benchmarks.models", "main", "CDFI and BackgroundMattingV2 frames/s on the CPU and on CUDA."),
    "blur2vid": ("rb2v.benchmarks.blur2vid", "main", "Table 2: per-frame pPSNR of naive, order-invariant, hypercut."),
}


@click.group(cls=LazyGroup, lazy=BENCHMARKS)
def bench():
    """Benchmarks that compare rb2v side by side with a reference or a peer."""
