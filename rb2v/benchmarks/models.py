"""``rb2v bench models``: CDFI and BackgroundMattingV2 frames/s on the CPU and on CUDA, side by side.

Both models run through their public adapters (``load_interpolator("cdfi")``,
``load_matter("bgmv2")``): numpy frames in, numpy frames out, host-device copies included.
On CUDA every batch size x precision is timed; each line gives frames/s, the ratio to the CPU's
float32 batch-1 figure of the same run, the peak GPU memory, and the largest difference of its
output from CUDA float32 batch 1 (float32 itself is compared with the CPU's output).

Speed does not depend on the weights' values (the refiner samples a fixed number of patches),
so without an official checkpoint each model gets a seeded random one in the official layout.
The inputs are two consecutive real frames resized to ``--size``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ..config import frame_size
from ..device import PRECISIONS, resolve_device
from ..errors import Rb2vError
from ..io.images import image_files, read_image
from . import int_list

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "img_seq"
MIN_SECONDS = 2.0  # each timing repeats calls until it has run this long


def _frames(data: Path, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    paths = image_files(data)
    if len(paths) < 2:
        raise Rb2vError(f"{data}: needs at least two images")
    a, b = (cv2.resize(read_image(p), size, interpolation=cv2.INTER_AREA) for p in paths[:2])
    return a, b


def _seeded_checkpoints(folder: Path, backbone: str) -> tuple[Path, Path]:
    """Random CDFI and BGMv2 weights (seed 0) saved in the official checkpoint layouts."""
    import torch

    from ..vendor.bgmv2 import MattingRefine
    from ..vendor.cdfi import CDFIAdaCoF

    torch.manual_seed(0)
    cdfi, bgmv2 = folder / "CDFI_adacof.pth", folder / f"bgmv2_{backbone}.pth"
    torch.save({"state_dict": CDFIAdaCoF(kernel_size=11, dilation=2).state_dict()}, cdfi)
    torch.save(MattingRefine(backbone).state_dict(), bgmv2)
    return cdfi, bgmv2


def _timed(fn, batch: int, warm_up: bool = True) -> tuple[float, np.ndarray]:
    """(frames/s, output) of ``fn()`` making ``batch`` frames a call; the first call is a warm-up
    (CUDA's kernel choice and allocations) unless ``warm_up`` is False (the CPU, where it is slow)."""
    out = fn() if warm_up else None
    calls, start = 0, time.perf_counter()
    while True:
        made = fn()
        out = made if out is None else out
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS or (calls >= 2 and elapsed * (calls + 1) / calls > 4 * MIN_SECONDS):
            return calls * batch / elapsed, out


def _runner(model: str, a, b, plate, checkpoint: Path, device: str, batch: int, precision: str):
    """A call that makes ``batch`` frames with the model at that setting."""
    from ..interpolation import load_interpolator
    from ..matting import load_matter

    if model == "cdfi":
        interp = load_interpolator("cdfi", checkpoint=checkpoint, device=device, batch_size=batch, precision=precision)
        A, B = np.stack([a] * batch), np.stack([b] * batch)
        return lambda: interp.batch(A, B, 0.5)
    matter = load_matter("bgmv2", checkpoint=checkpoint, device=device, batch_size=batch, precision=precision)
    frames = np.stack([a] * batch)
    return lambda: matter.batch(frames, plate)


def _first_frame(out) -> np.ndarray:
    """The first frame's outputs, flat: the frame (cdfi), or alpha and foreground (bgmv2)."""
    parts = out if isinstance(out, tuple) else (out,)
    return np.concatenate([p[0].ravel() for p in parts])


@click.command("models")
@click.argument("data", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--size", default="1280x720", show_default=True, help="Frame size WxH.")
@click.option("--batches", default="1,4,8,16", show_default=True, help="Batch sizes timed on CUDA.")
@click.option("--precisions", default=",".join(PRECISIONS), show_default=True, help="Precisions timed on CUDA.")
@click.option("--models", "names", default="cdfi,bgmv2", show_default=True)
@click.option("--cdfi-checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--bgmv2-checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--bgmv2-backbone", default="mobilenetv2", show_default=True, help="Without a checkpoint.")
@click.option("--cpu/--no-cpu", "with_cpu", default=True, show_default=True, help="Time the CPU at batch 1 too.")
@click.option("--device", default="auto", show_default=True, help="The GPU (auto: CUDA when there is one).")
def main(data, size, batches, precisions, names, cdfi_checkpoint, bgmv2_checkpoint, bgmv2_backbone, with_cpu, device):
    """Frames/s of CDFI and BackgroundMattingV2 on real frames from DATA (default ../shared/data/img_seq)."""
    import torch

    root = data if data is not None else DEFAULT_DATA.resolve()
    if not root.is_dir():
        raise Rb2vError(f"{root}: image folder not found (pass DATA; the default is a clone's ../shared/data)")
    w, h = frame_size(size)
    models = [m.strip() for m in names.split(",") if m.strip()]
    if not models or set(models) - {"cdfi", "bgmv2"}:
        raise Rb2vError(f"--models {names!r}: use cdfi and/or bgmv2")
    batch_sizes = int_list(batches, "--batches", low=1)
    precision_list = [p.strip() for p in precisions.split(",") if p.strip()]
    if set(precision_list) - set(PRECISIONS):
        raise Rb2vError(f"--precisions {precisions!r}: known are {', '.join(PRECISIONS)}")
    gpu = resolve_device(device)
    a, b = _frames(root, (w, h))
    plate = b  # the matter's background: a real frame, as a clean plate would be
    click.echo(
        f"{w}x{h} frames from {root}; CPU threads {torch.get_num_threads()}; GPU: "
        + (torch.cuda.get_device_name(gpu) if gpu.type == "cuda" else "none")
    )
    with tempfile.TemporaryDirectory(prefix="rb2v-bench-models-") as tmp:
        seeded = _seeded_checkpoints(Path(tmp), bgmv2_backbone)
        checkpoints = {"cdfi": cdfi_checkpoint or seeded[0], "bgmv2": bgmv2_checkpoint or seeded[1]}
        for model in models:
            weights = "seeded random weights" if checkpoints[model] in seeded else f"checkpoint {checkpoints[model]}"
            click.echo(f"\n{model} ({weights})")
            header = f"{'device':<6}{'precision':>10}{'batch':>6}{'frames/s':>10}{'vs CPU':>8}{'GPU MiB':>9}"
            click.echo(f"  {header}  max |diff| (vs)")
            cpu_fps = cpu_out = None
            if with_cpu:
                cpu_fps, cpu_out = _timed(
                    _runner(model, a, b, plate, checkpoints[model], "cpu", 1, "float32"), 1, warm_up=False
                )
                click.echo(f"  {'cpu':<6}{'float32':>10}{1:>6}{cpu_fps:>10.2f}{'1.00x':>8}{'':>9}")
            if gpu.type != "cuda":
                click.echo("  (no CUDA device: CPU only)")
                continue
            reference = None
            for precision in precision_list:
                for batch in batch_sizes:
                    torch.cuda.reset_peak_memory_stats(gpu)
                    run = _runner(model, a, b, plate, checkpoints[model], str(gpu), batch, precision)
                    fps, out = _timed(run, batch)
                    first = _first_frame(out)
                    if precision == "float32" and batch == 1:  # CUDA float32 against the CPU
                        reference = first
                        base = _first_frame(cpu_out) if cpu_out is not None else None
                        against = "cpu float32"
                    else:  # every other setting against CUDA float32
                        base, against = reference, "cuda float32"
                    ratio = f"{fps / cpu_fps:.1f}x" if cpu_fps else ""
                    mib = torch.cuda.max_memory_allocated(gpu) / 2**20
                    shown = f"{np.abs(first - base).max():.2e} ({against})" if base is not None else ""
                    click.echo(f"  {'cuda':<6}{precision:>10}{batch:>6}{fps:>10.2f}{ratio:>8}{mib:>9.0f}  {shown}")
