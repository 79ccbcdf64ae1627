"""The I/O floor of a dataset command: decode its inputs, encode and write its outputs, nothing else.

``rb2v bench build`` and ``rb2v bench synth-reds`` time it beside the command on the same files
and print the ratio (command / floor): how much of the work is more than moving pixels. Wall time
and CPU time both: on a shared machine the load can change between the two, CPU time much less.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io.images import encode_png, read_image


@dataclass
class Floor:
    decode_s: float
    encode_s: float
    inputs: int
    outputs: int
    output_bytes: int
    cpu_s: float = 0.0  # CPU time of the floor (decode + encode + write)

    @property
    def seconds(self) -> float:
        return self.decode_s + self.encode_s

    def line(self, command_s: float, what: str, command_cpu_s: float | None = None) -> str:
        cpu = (
            f"; CPU time {command_cpu_s:.2f} s vs {self.cpu_s:.2f} s = {command_cpu_s / self.cpu_s:.2f}x"
            if command_cpu_s is not None and self.cpu_s
            else ""
        )
        return (
            f"I/O floor: decode {self.inputs} inputs {self.decode_s:.2f} s + encode and write {self.outputs} PNGs "
            f"{self.encode_s:.2f} s = {self.seconds:.2f} s; {what} {command_s:.2f} s = {command_s / self.seconds:.2f}x "
            f"the floor (target <= 2x){cpu}; outputs {self.output_bytes / 1e6:.1f} MB"
        )


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def io_floor(inputs: Iterable[Path], dataset_dir: Path, compression: int) -> Floor:
    """Decode every input once; re-encode every image of the manifest's samples (decoded untimed) and write it."""
    inputs = list(inputs)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for path in inputs:
        read_image(path)
    decode_s = time.perf_counter() - t0
    df = pd.read_parquet(dataset_dir / "manifest.parquet")
    rels = [p for row in df.itertuples(index=False) for p in (row.blur_path, *row.sharp_paths)]
    cpu = time.process_time() - cpu0
    encode_s, nbytes = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="rb2v-floor-") as tmp:
        for i, rel in enumerate(rels):
            img = read_image(dataset_dir / rel)
            cpu0, t0 = time.process_time(), time.perf_counter()
            data = encode_png(img, compression)
            (Path(tmp) / f"{i:07d}.png").write_bytes(data)
            encode_s += time.perf_counter() - t0
            cpu += time.process_time() - cpu0
            nbytes += len(data)
    return Floor(decode_s, encode_s, len(inputs), len(rels), nbytes, cpu)
