"""``rb2v synth-reds``: the synthetic REDS-style blur2vid set (HyperCUT paper, Sec. 5.1).

Input: ``DIR/<sequence>/<frame>.<png|jpg|…>`` folders of consecutive sharp frames, or one
video file per sequence. The 7 frames of a sample always span 6/240 s, like the 7 frames
of the rig's upsampled 200 fps stream span about 4 sharp frames:

* the source is read as the stream x upsampled ``k = 240/fps`` times (k = 1, 2, 3: 240, 120,
  80 fps) — frame j of a sample is source frame ``s + j/k``, real when k divides j, otherwise
  interpolated at t = (j mod k)/k; 120 fps: 4 consecutive frames + 3 interpolated, as in the paper;
* rates that are multiples of 240 are decimated to 240 fps first (k = 1);
* other rates are refused: their 7 frames would not land on the source frames.
The blurry frame is the synthetic blur of the 7 frames (19 sub-frames, each interpolated from the
two real frames around its instant, as the rig build does). Consecutive samples
do not share source frames. ``sharp_start`` indexes x; ``upsample_factor`` is k.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import PartialFailure, Rb2vError
from ..executor import (
    INLINE,
    ExecutorSettings,
    Outcome,
    Unit,
    chunks,
    cpu_threads,
    failures_table,
    run_units,
    say_failure,
)
from ..fsutil import exclusive
from ..io.images import image_files, read_image, to_float, to_uint8
from ..manifest import SAMPLES_DIR, sample_paths, sample_row
from ..metrics import psnr
from ..progress import say
from .plan import check_input_folder, rate_plan
from .records import TakeSummary
from .settings import PipelineSettings
from .stage import (
    N_FRAMES,
    SampleWriter,
    StageClock,
    StageTools,
    commit_results,
    done_summary,
    unit_key,
    written_rows,
)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


def check_frame_names(folder: Path, files: list[Path]) -> None:
    """A frame that is there twice (``000001.png`` and ``000001.jpg``: every frame used twice, the motion
    at half speed) is refused; a gap in the numbering (samples across it blur over the frames missing)
    is said in a note."""
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:
            raise Rb2vError(f"{f}: frame {f.stem} is there twice (also {seen[f.stem].name}): keep one format")
        seen[f.stem] = f
    numbers = [int(m.group(1)) for f in files if (m := re.search(r"(\d+)$", f.stem))]
    if len(numbers) == len(files) and len(numbers) > 1:
        steps = np.diff(numbers)
        gaps = np.flatnonzero(steps > 1)
        if len(gaps) and (steps == 1).sum() > len(steps) // 2:  # numbered one by one, with a few gaps
            i = int(gaps[0])
            say(
                f"note: {folder}: frame {files[i + 1].name} follows {files[i].name} ({len(gaps)} gap(s) in the "
                "numbering): samples across a gap blur over the frames missing there"
            )


class Sequence:
    """One input sequence: an image folder or a video file, read in order."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        if path.is_dir():
            self.files = image_files(path)
            if not self.files:
                raise Rb2vError(f"{path}: no images in sequence folder")
            check_frame_names(path, self.files)
            self.count = len(self.files)
        else:
            from ..io.video import open_source

            self.files = None
            self.source = open_source(path)
            self.count = self.source.frames

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start .. stop-1`` in order (a chunk decodes only what it needs)."""
        stop = self.count if stop is None else min(stop, self.count)
        if self.files is not None:
            # every chunk is held to the sequence's first frame, so a change of size at a chunk's
            # boundary is caught like one inside it
            size = read_image(self.files[0]).shape if start > 0 else None
            for f in self.files[start:stop]:
                image = read_image(f)
                if size is not None and image.shape != size:
                    h, w = image.shape[:2]
                    raise Rb2vError(
                        f"{f}: {w}x{h}, not the {size[1]}x{size[0]} of the sequence's first frame {self.files[0].name}"
                    )
                size = image.shape
                yield image
        else:
            from ..io.video import iter_frames

            for chunk in iter_frames(self.source, start, stop - start):
                for f in chunk:
                    yield to_float(f)


def sample_starts(seq: Sequence, fps: float, settings: PipelineSettings) -> list[int]:
    """First frames (after decimation) of a sequence's samples: disjoint windows, every stride-th."""
    k, decimate = rate_plan(fps)
    span = (N_FRAMES - 1) // k  # source frames between a sample's first and last frame
    usable = (seq.count + decimate - 1) // decimate
    starts = list(range(0, usable - span, (span + 1) * settings.sampling.stride))
    return starts[: settings.sampling.max_per_take] if settings.sampling.max_per_take else starts


def check_rate(seq: Sequence, fps: float) -> Sequence:
    """A video's own frame rate must be ``--fps`` (an image folder's cannot be checked)."""
    recorded = float(seq.source.fps) if seq.files is None else None
    if recorded is not None and abs(recorded - fps) > 0.01 * fps:
        raise Rb2vError(
            f"{seq.path}: recorded at {recorded:g} fps, not the --fps {fps:g} given: a sample's 7 frames would span "
            f"{fps / recorded:g}x the time they should (slow motion stored at its playback rate: re-time the file "
            "to its capture rate)"
        )
    return seq


def check_length(seq: Sequence, fps: float) -> Sequence:
    """A sequence must hold at least one sample's frames (it would otherwise be left out unsaid)."""
    k, decimate = rate_plan(fps)
    needed = ((N_FRAMES - 1) // k) * decimate + 1
    if seq.count < needed:
        raise Rb2vError(f"{seq.path}: {seq.count} frame(s), fewer than the {needed} one sample spans at --fps {fps:g}")
    return seq


def find_sequences(root: Path, fps: float) -> tuple[list[Sequence], list[Outcome]]:
    """The readable sequences under ``root``, and a failed outcome for each one that cannot be opened
    (an empty folder, a corrupt or truncated video) or is a video recorded at another rate than ``fps``:
    one bad file does not stop the others."""
    check_input_folder(root)
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    entries = [p for p in entries if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES]
    # a sequence's name is its sample ids' and folders' part: two inputs of one name would overwrite
    # each other's samples, and neither can be chosen for the user
    by_name: dict[str, list[Path]] = {}
    for path in entries:
        by_name.setdefault(path.stem if path.is_file() else path.name, []).append(path)
    seqs, refused = [], []
    for path in entries:
        name = path.stem if path.is_file() else path.name
        try:
            if len(by_name[name]) > 1:
                others = ", ".join(p.name for p in by_name[name] if p != path)
                raise Rb2vError(f"{path}: sequence name {name!r} is also that of {others} (rename one)")
            seqs.append(check_length(check_rate(Sequence(path), fps), fps))
        except Rb2vError as e:
            refused.append(Outcome(str(path), "failed", error=str(e)))
    if not seqs and not refused:
        raise Rb2vError(f"{root}: no sequences (expected DIR/<sequence>/<frames> or video files)")
    return seqs, refused


def chunk_key(seq: Sequence, starts: list[int]) -> str:
    return f"{seq.name}__{starts[0]:06d}"


def build_sequence(
    seq: Sequence, fps: float, settings: PipelineSettings, dataset_dir: Path, tools: StageTools, starts: list[int]
) -> TakeSummary:
    """The samples starting at ``starts`` (decimated frame indices) of one sequence: a unit of work."""
    k, decimate = rate_plan(fps)
    unit = chunk_key(seq, starts)
    key = unit_key([seq.name, seq.count, str(seq.path.stat().st_mtime_ns), fps, starts], settings)
    done = done_summary(dataset_dir, unit, key)
    if done is not None:
        return done
    start = time.perf_counter()
    span = (N_FRAMES - 1) // k
    wanted = set(starts)
    rows, rejects = [], []
    buffer: deque = deque(maxlen=span + 1)
    first_raw, stop_raw = starts[0] * decimate, (starts[-1] + span) * decimate + 1
    # the PNGs are written on a thread while the next sample is interpolated (as in rb2v build)
    with SampleWriter(dataset_dir, settings.output.png_compression, StageClock(), cpu_threads() > 1) as writer:
        for raw_index, frame in enumerate(seq.frames(first_raw, stop_raw), start=first_raw):
            if raw_index % decimate:
                continue
            buffer.append(frame)
            s = raw_index // decimate - span
            if s not in wanted or len(buffer) <= span:
                continue
            sample_id = f"reds-{seq.name}-{s:06d}"
            base = {"sample_id": sample_id, "take": f"reds/{seq.name}/clip", "subject": seq.name, "blur_index": s}
            if float(np.mean(np.abs(buffer[-1] - buffer[0]))) < settings.qc.min_motion:  # first vs last of the 7
                rejects.append(
                    {**base, "reason": "static", "sharp_start": k * s, "psnr": np.nan, "psnr_margin": np.nan}
                )
                continue
            window, blur = synthesize_sample(list(buffer), k, settings, tools, cpu_threads())
            blur_path, sharp_paths = sample_paths(f"{SAMPLES_DIR}/{seq.name}/{s:06d}")
            written = writer.submit([blur_path, *sharp_paths], [blur, *window])
            stored = to_float(to_uint8(blur))  # what users get: the 8-bit PNG, as read back
            row = sample_row(
                **base,
                category="reds",
                blur_path=blur_path,
                sharp_paths=sharp_paths,
                sharp_start=k * s,
                upsample_factor=k,
                psnr=psnr(stored, blur),
                interpolator=tools.upsampler.name if k > 1 else None,
                width=blur.shape[1],
                height=blur.shape[0],
            )
            rows.append((row, written))
    rows = written_rows(rows, rejects)
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


def synthesize_sample(
    real: list[np.ndarray], k: int, settings: PipelineSettings, tools: StageTools, threads: int = 1
) -> tuple[list[np.ndarray], np.ndarray]:
    """A sample's 7 frames (a list: a stack would copy them) and its synthetic blur, from the
    ``(N_FRAMES - 1) // k + 1`` real frames it spans.

    Every frame, and every one of the ``settings.search.subframes`` sub-frames of the blur, is
    interpolated from the two real frames around its instant (never from an interpolated frame),
    so each real pair needs one flow estimate, and an instant shared by a frame and a sub-frame is
    interpolated once. A sub-frame between real frames i and i+1 at t uses ``tools.subframes``;
    the 7 frames use ``tools.upsampler`` (the same object by default). ``threads``: how many
    threads an interpolator may spread the instants over (the result does not depend on it).
    """
    from ..colormatch.blur import linear_to_srgb, srgb_to_linear, steps_per_pair

    steps = steps_per_pair(N_FRAMES, settings.search.subframes)
    unit = k * steps  # instants are counted in 1/unit of a real frame from the first
    window_at = [j * steps for j in range(N_FRAMES)]
    blur_at = list(range((N_FRAMES - 1) * steps + 1))

    def frames(interp, instants: list[int]) -> dict[int, np.ndarray]:
        between = sorted({p for p in instants if p % unit})
        made = interp.many([(real[p // unit], real[p // unit + 1], (p % unit) / unit) for p in between], threads)
        return {**{p: real[p // unit] for p in instants if p % unit == 0}, **dict(zip(between, made))}

    if tools.upsampler is tools.subframes:
        window_frames = blur_frames = frames(tools.upsampler, window_at + blur_at)
    else:
        window_frames, blur_frames = frames(tools.upsampler, window_at), frames(tools.subframes, blur_at)
    window = [window_frames[p] for p in window_at]
    linear = settings.search.space == "linear"
    total = np.zeros(real[0].shape, np.float64)  # the mean of the sub-frames, accumulated (no stack of them)
    for p in blur_at:
        total += srgb_to_linear(blur_frames[p].astype(np.float64)) if linear else blur_frames[p]
    total /= len(blur_at)
    return window, (linear_to_srgb(total) if linear else total).astype(np.float32)


CHUNK_SAMPLES = 100  # samples per unit of work


def reds_chunk(
    seq: Sequence, fps: float, settings: PipelineSettings, dataset_dir: str, starts: list[int]
) -> TakeSummary:
    """One unit of work of ``rb2v synth-reds``: a chunk of a sequence's samples."""
    from .build import _tools

    return build_sequence(seq, fps, settings, Path(dataset_dir), _tools(settings), starts)


def synth_reds_dataset(
    input_dir: Path,
    out: Path,
    fps: float,
    settings: PipelineSettings,
    report: bool = True,
    executor: ExecutorSettings = INLINE,
    chunk_samples: int = CHUNK_SAMPLES,
) -> Path:
    from .build import conclude, gather, owner, prepare

    k, decimate = rate_plan(fps)  # refuse a rate it cannot honour before any work
    started = time.perf_counter()
    seqs, refused = find_sequences(Path(input_dir), fps)
    for outcome in refused:
        say_failure(outcome)
    if not seqs:
        raise Rb2vError(f"{input_dir}: none of its {len(refused)} sequence(s) can be used (named above)")
    dataset_dir = Path(out) / "datasets" / "reds"
    with exclusive(dataset_dir, "another build of this dataset"):  # two runs removed each other's samples
        labels = prepare(dataset_dir, settings, executor)
        units = [
            Unit(f"{seq.path}@{part[0]}", reds_chunk, (seq, fps, settings, str(dataset_dir), part), weight=len(part))
            for seq in seqs
            for part in chunks(sample_starts(seq, fps, settings), chunk_samples)
        ]
        outcomes = run_units(units, executor, desc="synth-reds", unit_name="sample")
        summaries, keys, failed = gather(units, outcomes, key=lambda u: chunk_key(u.args[0], u.args[4]))
        failed = [*refused, *failed]
        # the rate is not among the pipeline's settings: without it, blur_index and sharp_start (which count
        # the decimated frames above 240 fps) could not be traced back to the source's frames
        source = {"fps": fps, "upsample_factor": k, "decimation": decimate}
        conclude(dataset_dir, keys, summaries, settings, failures_table(failed), labels, started, report, source)
        bad = len({owner(o.unit) for o in failed})
        if bad:
            raise PartialFailure(f"{bad} sequence(s) failed (named above); the others were built")
        return dataset_dir
