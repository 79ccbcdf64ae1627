"""``rb2v bench <name>``: side-by-side benchmarks (ours vs a reference or a peer), printed as ratios."""

from __future__ import annotations

import click

from .cli import LazyGroup

BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "colormatch": ("rb2v.benchmarks.colormatch", "main", "Fast Algorithm 1 search vs the literal reference."),
    "interpolation": ("rb2v.benchmarks.interpolation", "main", "linear / flow / ffmpeg minterpolate on Middlebury."),
    "matting": ("rb2v.benchmarks.matting", "main", "Our keyer vs ffmpeg chromakey+despill vs HSV threshold."),
    "align": ("rb2v.benchmarks.align", "main", "Aligning a take vs only decoding its two streams."),
    "build": ("rb2v.benchmarks.build", "main", "Per-stage throughput and peak memory of rb2v build."),
    "publish": ("rb2v.benchmarks.publish", "main", "Publish throughput vs a plain copy, folder and S3."),
    "hypercut": ("rb2v.benchmarks.hypercut", "main", "HyperCUT CPU accuracy recipe vs phase correlation."),
    "rig-unknowns": ("rb2v.benchmarks.rig_unknowns", "main", "Align + build errors per camera convention (issue 13)."),
    "blur2vid": ("rb2v.benchmarks.blur2vid", "main", "Table 2: per-frame pPSNR of naive, order-invariant, hypercut."),
}


@click.group(cls=LazyGroup, lazy=BENCHMARKS)
def bench():
    """Benchmarks that compare rb2v side by side with a reference or a peer."""
