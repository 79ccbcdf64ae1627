"""The I/O floor of a dataset command: decode its inputs, encode and write its outputs, nothing else.

``rb2v bench build`` and ``rb2v bench synth-reds`` time it beside the command on the same files
and print the ratio (command / floor): how much of the work is more than moving pixels. Wall time
and CPU time both: on a shared machine the load can change between the two, CPU time much less.
The floor runs on as many threads as the command had cores (OpenCV's codecs release the GIL): a
one-thread floor beside a command on every core would flatter the command's wall-time ratio.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
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
    threads: int = 1

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
            f"I/O floor on {self.threads} thread(s): decode {self.inputs} inputs {self.decode_s:.2f} s + "
            f"encode and write {self.outputs} PNGs {self.encode_s:.2f} s = {self.seconds:.2f} s; "
            f"{what} {command_s:.2f} s = {command_s / self.seconds:.2f}x the floor (target <= 2x){cpu}; "
            f"outputs {self.output_bytes / 1e6:.1f} MB"
        )


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# output images decoded (untimed) and then encoded (timed) per chunk: memory stays bounded
_CHUNK = 64


def io_floor(inputs: Iterable[Path], dataset_dir: Path, compression: int, threads: int = 1) -> Floor:
    """Decode every input once; re-encode every image of the manifest's samples (decoded untimed) and
    write it; both on ``threads`` threads."""
    inputs = list(inputs)
    df = pd.read_parquet(dataset_dir / "manifest.parquet")
    rels = [p for row in df.itertuples(index=False) for p in (row.blur_path, *row.sharp_paths)]
    with ThreadPoolExecutor(threads) as pool, tempfile.TemporaryDirectory(prefix="rb2v-floor-") as tmp:

        def encode(item: tuple[int, object]) -> int:
            i, img = item
            data = encode_png(img, compression)
            (Path(tmp) / f"{i:07d}.png").write_bytes(data)
            return len(data)

        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in pool.map(read_image, inputs):
            pass
        decode_s, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        encode_s, nbytes = 0.0, 0
        for start in range(0, len(rels), _CHUNK):
            chunk = list(pool.map(read_image, [dataset_dir / r for r in rels[start : start + _CHUNK]]))
            cpu0, t0 = time.process_time(), time.perf_counter()
            nbytes += sum(pool.map(encode, enumerate(chunk, start)))
            encode_s += time.perf_counter() - t0
            cpu += time.process_time() - cpu0
    return Floor(decode_s, encode_s, len(inputs), len(rels), nbytes, cpu, threads)
