"""One aligned take -> samples on disk: upsampling, Algorithm 1, colour correction, matting, QC.

``build_take`` is the unit of work of ``rb2v build``: explicit inputs on disk (the aligned
take, the settings) to outputs on disk (the sample PNGs and the take's rows), committed by
a marker written last and keyed by the take's fingerprint and the settings. Executors
(local processes, Ray) only decide where it runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..align.flicker import row_gains
from ..align.lens import frame_maps
from ..colormatch.blur import frame_weights
from ..colorspace import linear_to_srgb, srgb_to_linear
from ..config import settings_hash
from ..errors import Rb2vError
from ..executor import cpu_threads
from ..fsutil import atomic_path, write_bytes_atomic, write_json_atomic
from ..interpolation import Interpolator, LinearInterpolator, load_interpolator
from ..io.images import encode_png, read_image
from ..manifest import FRAMES_PER_SEQ, SAMPLES_DIR, sample_paths, sample_row
from ..progress import say
from ..settings import SequenceSettings, load_rig
from . import rowtime
from .records import STAGE_FAILED, TakeSummary
from .registration import misregistration
from .sequence import AnchoredInterpolator, CachedInterpolator, UpsampledSequence
from .settings import PipelineSettings
from .takes import AlignedTake

N_FRAMES = FRAMES_PER_SEQ  # sharp frames per sample in the manifest contract (the rig's sequence.frames)
WORK_DIR = ".work"


@dataclass
class StageTools:
    """What a worker loads once and reuses for every take (models, interpolators)."""

    settings: PipelineSettings
    upsampler: Interpolator
    subframes: Interpolator
    matter: object | None
    sequence: SequenceSettings  # the rig's window length and temporal upsampling factor

    @classmethod
    def create(cls, settings: PipelineSettings) -> StageTools:
        up = settings.upsample
        kwargs = {"device": up.device}
        if up.interpolator == "cdfi":
            if not up.cdfi_checkpoint:
                raise Rb2vError(
                    "interpolator 'cdfi' needs a checkpoint: --cdfi-checkpoint PATH "
                    "(or upsample.cdfi_checkpoint in the pipeline file)"
                )
            kwargs.update(checkpoint=up.cdfi_checkpoint, precision=up.precision)
        upsampler = load_interpolator(up.interpolator, **kwargs)
        choice = settings.search.subframe_interpolator
        if choice == "same" and up.interpolator != "cdfi":
            subframes = upsampler
        else:
            # CDFI interpolates only at t = k/2^m; the 1/3, 2/3 sub-frames come from flow.
            subframes = load_interpolator("linear" if choice == "linear" else "flow")
        matter = None
        if settings.matting.method != "none":
            from ..matting import load_matter

            m = settings.matting
            if m.method == "bgmv2":
                if not m.bgmv2_checkpoint:
                    raise Rb2vError("matting 'bgmv2' needs a checkpoint: --bgmv2-checkpoint PATH")
                matter = load_matter("bgmv2", checkpoint=m.bgmv2_checkpoint, device=m.device, precision=m.precision)
            else:
                matter = load_matter(m.method)
        sequence = load_rig(settings.rig).sequence  # it fits the manifest's frames (load_pipeline)
        return cls(settings, upsampler, subframes, matter, sequence)


def unit_key(inputs, settings: PipelineSettings) -> str:
    """What a unit of work's results depend on: its inputs and the settings that reach them (not the
    split; not a model's checkpoint, device or photos where that model is not used: ``--backgrounds`` on
    a build without matting rebuilt every unit)."""
    # an unused setting takes its default, so the key of a build that never set it is the same as before
    up, mat = settings.upsample, settings.matting
    if up.interpolator != "cdfi":
        up = replace(type(up)(), interpolator=up.interpolator)
    if mat.method != "bgmv2":
        mat = replace(type(mat)(), method=mat.method, backgrounds=mat.backgrounds)
    if mat.method == "none":
        mat = replace(mat, backgrounds=type(mat)().backgrounds)
    relevant = asdict(replace(settings, upsample=up, matting=mat))
    del relevant["split"]
    return settings_hash({"inputs": inputs, "settings": relevant})


class StageClock:
    """Accumulates wall time per named phase of the work."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class SampleWriter:
    """Encodes and writes the samples' PNGs on one thread beside the rest of the build.

    PNG encoding is a quarter of a build's work and OpenCV's encoder and the file writes release the
    GIL, so the next sample's search runs meanwhile (``beside``; else each write is done on the spot).
    At most ``depth`` samples wait (their images are held in memory); ``submit`` blocks until one is
    written. A write's error comes back through its future: the build records that sample as
    failed, the others go on.
    """

    def __init__(self, dataset_dir: Path, compression: int, clock: StageClock, beside: bool, depth: int = 1):
        self.dataset_dir, self.compression, self.clock, self.depth = Path(dataset_dir), compression, clock, depth
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rb2v-write") if beside else None
        self.queued: deque[Future] = deque()

    def submit(self, rels: list[str], images: list[np.ndarray]) -> Future:
        if self.pool is None:
            return _now(self._write, rels, images)
        while len(self.queued) > self.depth - 1:
            wait([self.queued.popleft()])
        future = self.pool.submit(self._write, rels, images)
        self.queued.append(future)
        return future

    def _write(self, rels: list[str], images: list[np.ndarray]) -> list[str]:
        with self.clock("write"):
            return write_sample_images(self.dataset_dir, rels, images, self.compression)

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _failure(e: BaseException) -> str:
    """The reason recorded for a sample whose stage raised (the traceback printed under --debug for a bug)."""
    detail = str(e) if isinstance(e, Rb2vError) else f"{type(e).__name__}: {e}"
    if not isinstance(e, Rb2vError) and os.environ.get("RB2V_DEBUG"):
        traceback.print_exception(e)
    return f"{STAGE_FAILED}: {detail}"


def paths_for(take: AlignedTake, k: int) -> tuple[str, list[str]]:
    return sample_paths(f"{SAMPLES_DIR}/{take.subject}/{take.take}/{k:06d}")


class _Matting:
    """Per-take matting: the matter is fitted once on frames spread over the take (the chroma
    keyer's screen model, BackgroundMattingV2's clean plate)."""

    def __init__(self, matter, take: AlignedTake, load_blur: Callable[[int], np.ndarray], threads: int = 1):
        self.matter = matter
        picks = np.linspace(0, take.blur_count - 1, num=min(8, take.blur_count)).round().astype(int)
        matter.fit(np.stack([load_blur(int(k)) for k in picks]))
        # The chroma keyer's frames are keyed on `threads` threads at once (numpy and OpenCV release the
        # GIL): matting is most of a green-screen build, and on one thread it holds up the whole sample.
        keyer = hasattr(matter, "key_linear")
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rb2v-key") if keyer and threads > 1 else None

    def __call__(self, frames: list[np.ndarray], background: np.ndarray) -> list[np.ndarray]:
        """The sample's frames matted onto its background."""
        from ..colorspace import srgb_to_linear
        from ..matting import composite, composite_linear

        if hasattr(self.matter, "key_linear"):  # the chroma keyer: mixed in linear light, no sRGB round trip
            bg_lin = srgb_to_linear(background)

            def matted(frame: np.ndarray) -> np.ndarray:
                alpha, fg = self.matter.key_linear(frame)
                return composite_linear(fg, alpha, bg_lin)

            return list(self.pool.map(matted, frames) if self.pool else map(matted, frames))
        return [composite(fg, alpha, background, space=self.matter.space) for alpha, fg in map(self.matter, frames)]

    def __enter__(self) -> _Matting:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def sample_background(sample_id: str, frame: np.ndarray, settings: PipelineSettings) -> tuple[np.ndarray, str]:
    """The background photo a sample is matted onto, at the frame's size, and its id."""
    from ..matting import pick_background

    return pick_background(sample_id, size=frame.shape[:2], backgrounds_dir=settings.matting.backgrounds or None)


def reason_names_of(reason: str) -> list[str]:
    """The names in a reject's reason (``"low_psnr;stage_failed: …"`` -> [low_psnr, stage_failed])."""
    return [part.split(":")[0] for part in reason.split(";")]


def _qc(
    settings: PipelineSettings,
    res,
    p: int,
    lo: int,
    hi: int,
    motion: float,
    shift_px: float,
    clock_steps: float | None,
    last_start: int,
) -> list[str]:
    qc = settings.qc
    reasons = []
    if not res.psnr >= qc.min_psnr:
        reasons.append("low_psnr")
    if not res.margin >= qc.min_margin:
        reasons.append("ambiguous")
    # The true start may lie beyond an edge of the searched starts; not beyond the sharp recording's own
    # first or last start, where the estimated clock puts it within half a step (an independent simulator's
    # take lost its first sample, at its true start 0, so)
    recording_end = p in (0, last_start) and clock_steps is not None and abs(clock_steps) <= CLOCK_AGREES_STEPS
    if qc.reject_at_edge and p in (lo, hi) and not recording_end:
        reasons.append("edge_of_range")
    if motion < qc.min_motion:
        reasons.append("static")
    if shift_px > qc.max_shift_px * qc.lone_shift_factor:  # over max_shift_px only: judged with its take (build)
        reasons.append("misregistered")
    if clock_steps is not None and abs(clock_steps) > qc.max_clock_steps:
        reasons.append("off_clock")
    return reasons


CLOCK_AGREES_STEPS = 0.5  # a start the clock puts within this many steps is where the clock says it is
# steps: the clock weighs in (``search.clock_prior_db``) only where Algorithm 1's best start lies this near it,
# one of the two starts either side of it (a clock further off, say 3 steps, moves no sample)
CLOCK_PRIOR_REACH = 1.0
MOVE_EVIDENCE = ("misregistered", "off_clock")  # the rejections a moved view leaves


def moved_from(judged: list[bool | None], min_frames: int) -> int | None:
    """Where a take's views moved: the first of its blurry frames (in frame order) from which on most were
    rejected for their geometry, or None.

    ``judged``: per blurry frame, True where it was rejected ``MOVE_EVIDENCE``, False where it was kept, None
    where it was rejected for anything else (it says nothing either way). A view that moves stays moved, so
    the take splits in two. Of the splits with at least ``min_frames`` geometry rejections after them and
    at least twice as many as kept frames there (scattered rejections, half of any stretch, are no move),
    the one that leaves the fewest frames on the wrong side (geometry rejections before it, kept frames
    after it); the earliest of equals.
    """
    if min_frames <= 0:
        return None
    bad_before, bad_after, kept_after = 0, judged.count(True), judged.count(False)
    best, at = None, None
    for i, bad in enumerate(judged):
        if bad is None:
            continue
        wrong = bad_before + kept_after
        if bad_after >= max(min_frames, 2 * kept_after) and (best is None or wrong < best):
            best, at = wrong, i
        bad_before, bad_after, kept_after = bad_before + bad, bad_after - bad, kept_after - (not bad)
    return at


def take_frames(take: AlignedTake, settings: PipelineSettings) -> list[int]:
    """The blurry frames of a take that become samples (stride, cap)."""
    ks = list(range(0, take.blur_count, settings.sampling.stride))
    return ks[: settings.sampling.max_per_take] if settings.sampling.max_per_take else ks


def chunk_name(take: AlignedTake, ks: list[int]) -> str:
    """The file-safe key of a chunk of a take (its first blurry frame)."""
    return f"{take.key}__{ks[0]:06d}" if ks else take.key


def sharp_loader(take: AlignedTake, even_light: bool) -> Callable[[int], np.ndarray]:
    """Reads the take's sharp frame i; where align measured its light flickering and ``even_light``, divided by
    its light relative to its neighbours', in linear light: the blurry frame's long exposure sees the light's
    mean, so a sample's frames match it and one another. Per pixel where align measured bands along the sharp
    camera's rows (``sharp_light_rows``): by the light of the recorded row the pixel came from."""
    extra = take.alignment.extra
    rows, light = (extra.get("sharp_light_rows"), extra.get("sharp_light")) if even_light else (None, None)
    if not rows and not light:
        return lambda i: read_image(take.sharp_path(i))
    where = take.folder / "alignment.json"
    if rows:
        values = _light_values(rows, 2, take.sharp_count, where, "sharp_light_rows", "a list of positive numbers")
        sharp_size = extra.get("sharp_size")
        if not (isinstance(sharp_size, list) and len(sharp_size) == 2):
            raise Rb2vError(f"{where}: sharp_light_rows needs sharp_size (the raw sharp frame's); align the take again")
        _, source_y = frame_maps(take.alignment, "sharp", tuple(sharp_size))  # the recorded row of each pixel
        fractions = (source_y + 0.5) / float(sharp_size[1])

        def gain(i: int) -> np.ndarray:
            return row_gains(values[i], fractions).astype(np.float32)[..., None]
    else:
        values = _light_values(light, 1, take.sharp_count, where, "sharp_light", "one positive number")

        def gain(i: int) -> np.ndarray:
            return np.float32(values[i])

    def load(i: int) -> np.ndarray:
        frame = srgb_to_linear(read_image(take.sharp_path(i)))
        frame /= gain(i)
        return linear_to_srgb(frame)

    return load


def _light_values(values, ndim: int, frames: int, where: Path, key: str, each: str) -> np.ndarray:
    """alignment.json's measured light as an array, checked: one entry per sharp frame, all positive."""
    try:
        out = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        out = np.array([np.nan])
    if out.ndim != ndim or len(out) != frames or not (np.isfinite(out) & (out > 0)).all():
        raise Rb2vError(f"{where}: {key} must hold {each} per sharp frame ({frames}); align the take again")
    return out


def build_take(
    take: AlignedTake,
    settings: PipelineSettings,
    dataset_dir: Path,
    tools: StageTools | None = None,
    on_frame: Callable[[], None] | None = None,
    ks: list[int] | None = None,
) -> TakeSummary:
    """Build (or resume) the samples of blurry frames ``ks`` of a take (default: all of them);
    returns the chunk's summary. Idempotent: committed by a marker keyed by inputs and settings."""
    start = time.perf_counter()
    dataset_dir = Path(dataset_dir)
    ks = take_frames(take, settings) if ks is None else list(ks)
    unit = chunk_name(take, ks)
    key = unit_key([take.fingerprint, ks], settings)
    done = done_summary(dataset_dir, unit, key)
    if done is not None:
        return done
    tools = tools or StageTools.create(settings)
    for k in ks:  # leftovers of a crashed or differently-set run of this chunk
        shutil.rmtree(dataset_dir / paths_for(take, k)[0].rsplit("/", 1)[0], ignore_errors=True)

    factor = tools.sequence.upsample_factor
    clock = StageClock()
    # A process with a core to itself (a pool worker on a machine shared by as many workers as cores)
    # does its work in order; one with more cores searches and writes on threads (below).
    threaded = cpu_threads() > 1
    x = UpsampledSequence(sharp_loader(take, settings.upsample.even_light), take.sharp_count, tools.upsampler, factor)
    if not isinstance(tools.subframes, LinearInterpolator):  # the linear blend needs no anchoring (exact already)
        tools = replace(tools, subframes=CachedInterpolator(AnchoredInterpolator(x, tools.subframes)))
    with clock("matting"):
        matting = (
            _Matting(tools.matter, take, lambda k: read_image(take.blur_path(k)), cpu_threads() if threaded else 1)
            if tools.matter is not None
            else None
        )
    radius = settings.search.radius
    last_start = len(x) - N_FRAMES
    knocked = take.alignment.knocked_from  # align saw the views moved from this blurry frame on
    rows, rejects = [], []
    summary = TakeSummary(
        take.take_id,
        time_offset_s=take.alignment.time_offset_s,
        sync_method=take.alignment.sync_method,
    )
    # With linear sub-frames (the default) Algorithm 1 needs nothing but its inputs: it runs on a
    # thread while the next frame is upsampled here (OpenCV and numpy release the GIL). Any other
    # sub-frame interpolator reads x, which only this thread may touch.
    beside = threaded and isinstance(tools.subframes, LinearInterpolator)
    pending: deque[tuple[dict, Future]] = deque()

    def collect(base: dict, outcome: Future) -> None:
        try:
            row, reasons, written = outcome.result()
        except Exception as e:  # one bad frame (its inputs or its stage) is recorded, the take goes on
            rejects.append({**base, "reason": _failure(e), "sharp_start": -1, "psnr": np.nan, "psnr_margin": np.nan})
        else:
            summary.clock_moved += bool(row.get("clock_moved"))
            if not reasons:
                rows.append((row, written))
            else:
                keep = ("sharp_start", "psnr", "psnr_margin", "clock_steps")
                rejects.append({**base, "reason": ";".join(reasons), **{c: row.get(c, np.nan) for c in keep}})
        if on_frame:
            on_frame()

    with (
        SampleWriter(dataset_dir, settings.output.png_compression, clock, beside=threaded) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="rb2v-search") as searcher,
        matting or contextlib.nullcontext(),
    ):
        for k in ks:
            sample_id = f"{take.category}-{take.subject}-{take.take}-{k:06d}"
            centre = int(round(take.alignment.predicted_start(k, factor, N_FRAMES)))
            lo, hi = max(centre - radius, 0), min(centre + radius, last_start)
            base = {"sample_id": sample_id, "take": take.take_id, "subject": take.subject, "blur_index": k}
            unsearched = "out_of_range" if hi - lo < 2 else "knocked" if knocked is not None and k >= knocked else None
            if unsearched:
                outcome = _now(
                    lambda r=unsearched: ({"sharp_start": -1, "psnr": np.nan, "psnr_margin": np.nan}, [r], None)
                )
            else:
                outcome = _now(_inputs, take, tools, x, k, lo, hi, clock)
                if outcome.exception() is None:
                    args = (
                        take,
                        settings,
                        tools,
                        matting,
                        k,
                        sample_id,
                        lo,
                        hi,
                        last_start,
                        outcome.result(),
                        writer,
                        clock,
                    )
                    outcome = searcher.submit(_sample, *args) if beside else _now(_sample, *args)
            pending.append((base, outcome))
            while len(pending) > 1:  # one frame searched while the next is upsampled
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
    rows = written_rows(rows, rejects)
    summary.accepted, summary.rejected = len(rows), len(rejects)
    for r in rejects:
        for name in reason_names_of(r["reason"]):
            summary.reasons[name] = summary.reasons.get(name, 0) + 1
    summary.seconds = time.perf_counter() - start
    summary.stage_seconds = clock.seconds
    commit_results(dataset_dir, unit, key, rows, rejects, summary)
    return summary


def _now(fn, *args) -> Future:
    """``fn(*args)`` run here, as a finished future (its value or its exception)."""
    outcome: Future = Future()
    try:
        outcome.set_result(fn(*args))
    except Exception as e:
        outcome.set_exception(e)
    return outcome


def written_rows(rows: list[tuple[dict, Future]], rejects: list[dict]) -> list[dict]:
    """The rows whose PNGs were written, with their digests; a failed write makes its sample a reject."""
    done = []
    for row, written in rows:
        try:
            done.append({**row, "sha256": written.result()})
        except Exception as e:
            rejects.append({**{c: row.get(c, np.nan) for c in REJECT_COLUMNS if c != "reason"}, "reason": _failure(e)})
    return done


def _inputs(take, tools, x, k, lo, hi, clock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blurry frame's inputs: the frame, x's candidate stretch, and that stretch as scored."""
    with clock("decode+upsample"):
        blur = read_image(take.blur_path(k))
        seq = x.window(lo, hi + N_FRAMES)
        # rolling shutter: each row scored against its own time (the sample keeps x's own frames)
        shifts = rowtime.row_shifts(take.alignment, blur.shape[0], tools.sequence.upsample_factor)
        scored = seq
        if shifts is not None:
            before, after = rowtime.reach(shifts)
            a, b = max(lo - before, 0), min(hi + N_FRAMES + after, len(x))
            scored = rowtime.deskew(x.window(a, b), shifts, lo - a, len(seq))
    return blur, seq, scored


def _sample(take, settings, tools, matting, k, sample_id, lo, hi, last_start, inputs, writer: SampleWriter, clock):
    """Algorithm 1, QC, colour, matting, then the PNGs handed to the writer: (row or fit, QC reasons, write)."""
    from ..colormatch import apply_color_matrix, search
    from ..colormatch.search import refine_in_linear_light

    s = settings.search
    blur, seq, scored = inputs
    # the estimated blur exposure in upsampled steps: a short shutter is scored over its own length
    # (a span covering the 7-frame window, or an unknown one, is the paper's plain average)
    span = take.alignment.blur_span(tools.sequence.upsample_factor)
    with clock("search"):
        res = search(
            blur,
            scored,
            n=N_FRAMES,
            candidates=range(0, hi - lo + 1),
            interpolator=tools.subframes,
            sub=s.subframes,
            space=s.space,
            exclude_clipped=s.exclude_clipped,
            device=s.device,
            span=span,
        )
        # where the take's clock puts the exposure (a start, fractional); only where align estimated the
        # exposure (an unknown one is taken as centred: a 10 ms shutter stamped at its start put all 13 samples
        # of a simulated take over 1.25 steps off that clock)
        predicted = None
        if take.alignment.blur_exposure_known:
            predicted = take.alignment.predicted_start(k, tools.sequence.upsample_factor, N_FRAMES)
        if s.refine_linear and s.space == "srgb":
            # the clock breaks the neighbours' near-ties, not a disagreement (QC's off_clock judges those)
            near = predicted is not None and abs(lo + res.start - predicted) <= CLOCK_PRIOR_REACH
            res = refine_in_linear_light(
                blur,
                scored,
                res,
                N_FRAMES,
                tools.subframes,
                s.subframes,
                exclude_clipped=s.exclude_clipped,
                span=span,
                device=s.device,
                clock=predicted - lo if near else None,
                clock_db=s.clock_prior_db,
            )
    p = lo + int(res.start)
    window = seq[p - lo : p - lo + N_FRAMES]
    motion = float(np.mean(np.abs(window[-1] - window[0])))
    expected = None if predicted is None else predicted - p  # steps after the chosen start
    with clock("registration"):
        weights = frame_weights(N_FRAMES, s.subframes, span)
        shift_px = misregistration(
            blur,
            scored,
            int(res.start),
            weights,
            res.matrix,
            settings.qc.max_shift_px,
            settings.qc.shift_grid,
            expected=expected,
        )
    reasons = _qc(settings, res, p, lo, hi, motion, shift_px, expected, last_start)
    fit = {"sharp_start": p, "psnr": float(res.psnr), "psnr_margin": float(res.margin)}
    if reasons:
        clock_steps = np.nan if expected is None else float(expected)
        return {**fit, "clock_steps": clock_steps, "clock_moved": res.clock_moved}, reasons, None
    with clock("colour"):
        sharp = [apply_color_matrix(res.matrix, f) for f in window]
    images = [blur, *sharp]
    if matting is not None:
        background, bg_id = sample_background(sample_id, blur, settings)
        with clock("matting"):
            images = matting(images, background)
    blur_path, sharp_paths = paths_for(take, k)
    with clock("write wait"):
        written = writer.submit([blur_path, *sharp_paths], images)
    row = sample_row(
        sample_id=sample_id,
        category=take.category,
        subject=take.subject,
        take=take.take_id,
        blur_path=blur_path,
        sharp_paths=sharp_paths,
        blur_index=k,
        upsample_factor=tools.sequence.upsample_factor,
        color_matrix=res.matrix,
        interpolator=tools.upsampler.name,
        matting=settings.matting.method if matting is not None else None,
        background=bg_id if matting is not None else None,
        width=blur.shape[1],
        height=blur.shape[0],
        **fit,
    )
    return {**row, "shift_px": shift_px, "clock_moved": res.clock_moved}, [], written


def done_summary(dataset_dir: Path, unit: str, key: str) -> TakeSummary | None:
    """The summary of a unit of work committed with this key, or None (then it must be redone)."""
    marker = Path(dataset_dir) / WORK_DIR / f"{unit}.done.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        failed = any(STAGE_FAILED in reason_names_of(r) for r in done["summary"].get("reasons", {}))
        current = done.get("key") == key and not failed
        missing = missing_sample_files(dataset_dir, unit) if current else 0
        if current and not missing:
            return TakeSummary(**{**done["summary"], "skipped": True, "units": 1, "units_built_before": 1})
        if missing:  # the manifest must describe samples that exist
            say(f"note: {unit}: {missing} of its sample file(s) are gone (deleted since it was built): redoing it")
        # made with other inputs or settings, or some of its samples failed (a frame since repaired)
        marker.unlink()
    return None


def missing_sample_files(dataset_dir: Path, unit: str) -> int:
    """How many of a finished unit's sample files no longer exist (a stat each, no read)."""
    record = Path(dataset_dir) / WORK_DIR / f"{unit}.rows.parquet"
    if not record.is_file():
        return 1  # its record of rows is gone: nothing says which files it made
    rows = pd.read_parquet(record, columns=["blur_path", "sharp_paths"])
    files = [p for blur, sharp in zip(rows["blur_path"], rows["sharp_paths"]) for p in (blur, *sharp)]
    return sum(not (Path(dataset_dir) / p).is_file() for p in files)


def commit_results(dataset_dir: Path, unit: str, key: str, rows: list, rejects: list, summary: TakeSummary) -> None:
    work = Path(dataset_dir) / WORK_DIR
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(work / f"{unit}.rows.parquet") as tmp:
        pd.DataFrame(rows, columns=ROW_COLUMNS).to_parquet(tmp, index=False)
    with atomic_path(work / f"{unit}.rejects.parquet") as tmp:
        pd.DataFrame(rejects, columns=REJECT_COLUMNS).to_parquet(tmp, index=False)
    # The marker is written last: its presence (with the same key) is what "done" means.
    write_json_atomic(work / f"{unit}.done.json", {"key": key, "summary": asdict(summary)})


ROW_COLUMNS = [
    "sample_id",
    "category",
    "subject",
    "take",
    "blur_path",
    "sharp_paths",
    "blur_index",
    "sharp_start",
    "upsample_factor",
    "color_matrix",
    "psnr",
    "psnr_margin",
    "interpolator",
    "matting",
    "background",
    "order",
    "width",
    "height",
    "sha256",
    "shift_px",  # registration.misregistration of the sample (not a manifest column: build.reject_moved's evidence)
]
# clock_steps: how many steps of x the clock's start lies after the one Algorithm 1 chose (NaN: not known)
REJECT_COLUMNS = [
    "sample_id",
    "take",
    "subject",
    "blur_index",
    "reason",
    "sharp_start",
    "psnr",
    "psnr_margin",
    "clock_steps",
]


def load_results(dataset_dir: Path, unit: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    work = Path(dataset_dir) / WORK_DIR
    rows = pd.read_parquet(work / f"{unit}.rows.parquet").reindex(columns=ROW_COLUMNS)  # older: no shift_px (NaN)
    return rows, pd.read_parquet(work / f"{unit}.rejects.parquet")


def write_sample_images(dataset_dir: Path, rels: list[str], images: list[np.ndarray], compression: int) -> list[str]:
    """Write PNGs atomically; return their sha256 (hashed from the bytes written)."""
    digests = []
    for rel, img in zip(rels, images):
        data = encode_png(img, compression)
        write_bytes_atomic(Path(dataset_dir) / rel, data)
        digests.append(hashlib.sha256(data).hexdigest())
    return digests
