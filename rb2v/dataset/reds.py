"""``rb2v synth-reds``: the synthetic REDS-style blur2vid set (HyperCUT paper, Sec. 5.1).

Input: ``DIR/<sequence>/<frame>.<png|jpg|…>`` folders of consecutive sharp frames, or one
video file per sequence. The 7 frames of a sample always span 6/240 s, like the 7 frames
of the rig's upsampled 200 fps stream span about 4 sharp frames:

* the source is read as the stream x upsampled ``k = 240/fps`` times (k = 1, 2, 3: 240, 120,
  80 fps) — frame j of a sample is source frame ``s + j/k``, real when k divides j, otherwise
  interpolated at t = (j mod k)/k; 120 fps: 4 consecutive frames + 3 interpolated, as in the paper;
* rates that are multiples of 240 are decimated to 240 fps first (k = 1);
* other rates are refused: their 7 frames would not land on the source frames.
The blurry frame is the synthetic blur of the 7 frames (19 sub-frames). Consecutive samples
do not share source frames. ``sharp_start`` indexes x; ``upsample_factor`` is k.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from ..errors import PartialFailure, Rb2vError
from ..fsutil import clean_partials
from ..io.images import read_image, to_float
from ..metrics import psnr
from ..progress import progress, say
from .settings import PipelineSettings, load_pipeline
from .stage import (
    N_FRAMES,
    StageTools,
    TakeSummary,
    commit_results,
    done_summary,
    sample_paths,
    unit_key,
    write_sample_images,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
SPAN_FPS = 240  # the 7 frames span 6 steps of 1/240 s


def rate_plan(fps: float) -> tuple[int, int]:
    """(upsample factor k, decimation d) for a source rate, or a clear refusal."""
    for k in (1, 2, 3):
        if abs(fps * k - SPAN_FPS) < 1e-6:
            return k, 1
    d = fps / SPAN_FPS
    if d > 1 and abs(d - round(d)) < 1e-6:
        return 1, int(round(d))
    raise Rb2vError(
        f"--fps {fps:g}: the 7 frames of a sample span 6/240 s, which lands on source frames only at "
        "80, 120 or 240 fps or a multiple of 240 (use one of those, e.g. 120 for REDS)"
    )


class Sequence:
    """One input sequence: an image folder or a video file, read in order."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.files:
                raise Rb2vError(f"{path}: no images in sequence folder")
            self.count = len(self.files)
        else:
            from ..io.video import open_source

            self.files = None
            self.source = open_source(path)
            self.count = self.source.frames

    def frames(self) -> Iterator[np.ndarray]:
        if self.files is not None:
            for f in self.files:
                yield read_image(f)
        else:
            from ..io.video import iter_frames

            for chunk in iter_frames(self.source):
                for f in chunk:
                    yield to_float(f)


def find_sequences(root: Path) -> list[Sequence]:
    if not root.is_dir():
        raise Rb2vError(f"{root}: input folder not found")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    seqs = [Sequence(p) for p in entries if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES]
    if not seqs:
        raise Rb2vError(f"{root}: no sequences (expected DIR/<sequence>/<frames> or video files)")
    return seqs


def build_sequence(
    seq: Sequence, fps: float, settings: PipelineSettings, dataset_dir: Path, tools: StageTools, on_sample=None
) -> TakeSummary:
    from ..colormatch import synthesize_blur

    k, decimate = rate_plan(fps)
    unit = f"{seq.name}__clip"
    key = unit_key([seq.name, seq.count, str(seq.path.stat().st_mtime_ns), fps], settings)
    done = done_summary(dataset_dir, unit, key)
    if done is not None:
        return done
    start = time.perf_counter()
    span = (N_FRAMES - 1) // k  # source frames between a sample's first and last frame
    step = (span + 1) * settings.sampling.stride
    rows, rejects = [], []
    buffer: deque = deque()
    source_index = -1  # index (after decimation) of the newest frame in the buffer
    next_start = 0
    for raw_index, frame in enumerate(seq.frames()):
        if raw_index % decimate:
            continue
        source_index += 1
        buffer.append(frame)
        while len(buffer) > span + 1:
            buffer.popleft()
        if source_index != next_start + span:
            continue
        s = next_start
        next_start += step
        if settings.sampling.max_per_take and len(rows) >= settings.sampling.max_per_take:
            break
        window = [
            buffer[j // k] if j % k == 0 else tools.upsampler(buffer[j // k], buffer[j // k + 1], (j % k) / k)
            for j in range(N_FRAMES)
        ]
        window = np.stack(window)
        motion = float(np.mean(np.abs(window[-1] - window[0])))
        sample_id = f"reds-{seq.name}-{s:06d}"
        base = {"sample_id": sample_id, "take": f"reds/{seq.name}/clip", "subject": seq.name, "blur_index": s}
        if motion < settings.qc.min_motion:
            rejects.append({**base, "reason": "static", "sharp_start": k * s, "psnr": np.nan, "psnr_margin": np.nan})
            continue
        blur = synthesize_blur(
            window, sub=settings.search.subframes, interpolator=tools.subframes, space=settings.search.space
        )
        blur_path, sharp_paths = sample_paths(f"samples/{seq.name}/{s:06d}")
        digests = write_sample_images(
            dataset_dir, [blur_path, *sharp_paths], [blur, *window], settings.output.png_compression
        )
        stored = read_image(dataset_dir / blur_path)  # what users get: 8-bit
        rows.append(
            {
                **base,
                "category": "reds",
                "blur_path": blur_path,
                "sharp_paths": sharp_paths,
                "sharp_start": k * s,
                "upsample_factor": k,
                "color_matrix": np.eye(3, 4).reshape(12).tolist(),
                "psnr": psnr(stored, blur),
                "psnr_margin": np.nan,
                "interpolator": tools.upsampler.name if k > 1 else None,
                "matting": None,
                "background": None,
                "order": "ignore",
                "width": blur.shape[1],
                "height": blur.shape[0],
                "sha256": digests,
            }
        )
        if on_sample:
            on_sample()
    summary = TakeSummary(
        f"reds/{seq.name}/clip",
        accepted=len(rows),
        rejected=len(rejects),
        seconds=time.perf_counter() - start,
        sync_method="synthetic",
    )
    for r in rejects:
        summary.reasons[r["reason"]] = summary.reasons.get(r["reason"], 0) + 1
    commit_results(dataset_dir, unit, key, rows, rejects, summary)
    return summary


def synth_reds_dataset(input_dir: Path, out: Path, fps: float, settings: PipelineSettings, report: bool = True) -> Path:
    from .build import assemble, print_summary

    k, d = rate_plan(fps)  # refuse a rate it cannot honour before any work
    started = time.perf_counter()
    seqs = find_sequences(Path(input_dir))
    dataset_dir = Path(out) / "datasets" / "reds"
    dataset_dir.mkdir(parents=True, exist_ok=True)
    clean_partials(dataset_dir)
    tools = StageTools.create(settings)
    summaries, failures = [], []
    total = sum(max(0, (s.count // d - 1) // ((N_FRAMES - 1) // k + 1)) for s in seqs)
    with progress(total=total, desc="synth-reds", unit="sample") as bar:
        for seq in seqs:
            try:
                summaries.append(
                    build_sequence(seq, fps, settings, dataset_dir, tools, on_sample=lambda: bar.update(1))
                )
            except Rb2vError as e:
                failures.append((seq.name, str(e)))
    for name, err in failures:
        say(f"rb2v: error: {name}: {err}")
    done = [f"{s.take.split('/')[1]}__clip" for s in summaries]
    rows, rej = assemble(dataset_dir, done, summaries, settings)
    if report:
        from .report import write_report

        write_report(dataset_dir)
    print_summary(dataset_dir, rows, rej, summaries, time.perf_counter() - started)
    if failures:
        raise PartialFailure(f"{len(failures)} sequence(s) failed (named above); the others were built")
    return dataset_dir


@click.command("synth-reds")
@click.option("--fps", type=float, required=True, help="Frame rate of the input sequences (REDS: 120).")
@click.option(
    "--input",
    "input_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="DIR/<sequence>/<frames> or DIR/<sequence>.mp4",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--interpolator", type=click.Choice(["flow", "cdfi", "linear"]), default=None)
@click.option("--cdfi-checkpoint", type=click.Path(dir_okay=False), default=None)
@click.option("--stride", type=int, default=None, help="Use every N-th sample position.")
@click.option("--max-per-sequence", type=int, default=None)
@click.option("--no-report", is_flag=True)
def synth_reds(fps, input_dir, out, interpolator, cdfi_checkpoint, stride, max_per_sequence, no_report):
    """Make the synthetic REDS blur2vid set in the manifest format (OUT/datasets/reds)."""
    from .cli import default_out

    settings = load_pipeline(
        "reds",
        {
            "upsample.interpolator": interpolator,
            "upsample.cdfi_checkpoint": cdfi_checkpoint,
            "sampling.stride": stride,
            "sampling.max_per_take": max_per_sequence,
        },
    )
    synth_reds_dataset(input_dir, out or default_out(), fps, settings, report=not no_report)
