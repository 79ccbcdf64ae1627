"""``rb2v build``: every aligned take of a category -> the dataset, its manifest and report.

Each take is cut into chunks of consecutive blurry frames (``stage.build_take`` on a chunk),
the units of work of the one executor (``rb2v.executor``: inline, processes or Ray). The
manifest is assembled from the chunks' committed results in take and frame order, so it is
the same whatever the chunk size or the number of workers, and a killed build re-run skips
finished chunks and ends with the same manifest.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..config import to_dict
from ..device import resolve_device
from ..errors import PartialFailure, Rb2vError
from ..executor import INLINE, ExecutorSettings, Outcome, Unit, check_executor, chunks, failures_table, run_units
from ..fsutil import atomic_path, clean_partials, exclusive, write_json_atomic
from ..manifest import (
    BLUR_NAME,
    MANIFEST_NAME,
    METADATA_NAME,
    ORDER_KEY,
    SAMPLES_DIR,
    read_manifest,
    write_manifest,
    write_metadata_json,
)
from ..progress import say
from ..settings import load_rig
from .plan import CHUNK_FRAMES, CHUNKS_PER_WORKER, MIN_CHUNK_FRAMES
from .records import REJECT_REASONS, TakeSummary, stage_failures
from .settings import PipelineSettings
from .split import format_table1, split_subjects, table1
from .stage import (
    MOVE_EVIDENCE,
    WORK_DIR,
    StageTools,
    build_take,
    chunk_name,
    load_results,
    moved_from,
    reason_names_of,
    take_frames,
)
from .takes import AlignedTake, find_aligned_takes

_WORKER_TOOLS: dict = {}


def _tools(settings: PipelineSettings) -> StageTools:
    """Models and interpolators, created once per worker process and reused by its chunks."""
    key = settings.hash
    if key not in _WORKER_TOOLS:
        _WORKER_TOOLS.clear()
        _WORKER_TOOLS[key] = StageTools.create(settings)
    return _WORKER_TOOLS[key]


def build_chunk(take: AlignedTake, ks: list[int], settings: PipelineSettings, dataset_dir: str) -> TakeSummary:
    """One unit of work of ``rb2v build`` (a chunk of a take), wherever the executor runs it."""
    return build_take(take, settings, Path(dataset_dir), _tools(settings), ks=ks)


def chunk_size(frames: int, executor: ExecutorSettings) -> int:
    """Blurry frames per chunk: ``CHUNK_FRAMES``, or fewer when several workers would otherwise get
    too few chunks to share (one 10 s take is 250 frames: 2 workers on 200 + 50 run at 1.25x)."""
    workers = executor.workers if executor.backend == "local" else max(executor.workers, 2)
    if workers <= 1:
        return CHUNK_FRAMES
    return int(min(CHUNK_FRAMES, max(MIN_CHUNK_FRAMES, -(-frames // (CHUNKS_PER_WORKER * workers)))))


def take_units(
    takes: list[AlignedTake], settings: PipelineSettings, dataset_dir: Path, chunk_frames: int = CHUNK_FRAMES
) -> list[Unit]:
    """Every take cut into chunks of consecutive blurry frames, in take and frame order."""
    units = []
    for take in takes:
        for ks in chunks(take_frames(take, settings), chunk_frames):
            units.append(
                Unit(f"{take.take_id}@{ks[0]}", build_chunk, (take, ks, settings, str(dataset_dir)), weight=len(ks))
            )
    return units


WITHDRAWN_MANIFEST = "withdrawn-manifest.parquet"  # in WORK_DIR while a build runs, and after one that failed
OrderLabels = tuple[dict, str]  # (sample_id, image hashes) -> "ignore" | "reverse"; the ORDER_KEY record


def order_labels(path: Path) -> OrderLabels | None:
    """The labels ``rb2v order`` wrote into a manifest, keyed by sample and image content, or None."""
    try:
        df = read_manifest(path)
    except Rb2vError:  # none yet, or unreadable: nothing to keep
        return None
    record = df.attrs["metadata"].get(ORDER_KEY)
    if record is None:
        return None
    return {(s, tuple(h)): o for s, h, o in zip(df["sample_id"], df["sha256"], df["order"])}, record


def uses_checkpoints(settings: PipelineSettings) -> bool:
    """Whether a model of the build loads a checkpoint (CDFI, BackgroundMattingV2)."""
    return settings.upsample.interpolator == "cdfi" or settings.matting.method == "bgmv2"


def check_devices(settings: PipelineSettings) -> None:
    """A device no unit of this machine can use is refused once, before any work (every sample would fail
    alike). "auto" and "cpu" need no check, so a CPU build does not import torch for it."""
    for device in (settings.upsample.device, settings.search.device, settings.matting.device):
        if device.strip().lower() not in ("auto", "cpu"):
            resolve_device(device)


def prepare(dataset_dir: Path, settings: PipelineSettings, executor: ExecutorSettings) -> OrderLabels | None:
    """Before any unit of work: refuse bad settings (models, checkpoints, the backgrounds folder), then
    withdraw the manifest, returning its order labels. A unit about to be redone removes its old
    samples, and a manifest is only ever the record of a finished build: the end of this one writes
    it again (with those labels when every sample is the same)."""
    check_executor(executor)
    if executor.backend == "local":  # a Ray cluster's workers may have the GPU its head lacks
        check_devices(settings)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    clean_partials(dataset_dir)
    if executor.backend == "local" and executor.workers == 1:
        _tools(settings)  # loaded once here and reused by every unit of this process
    elif executor.backend == "local" and uses_checkpoints(settings):
        StageTools.create(settings)  # a bad checkpoint refused here, not by every worker after the withdrawal
    if settings.matting.method != "none":
        from ..matting import list_backgrounds

        list_backgrounds(settings.matting.backgrounds or None)
    # The manifest is set aside, not deleted: its order labels outlive a build that fails or is stopped
    # (they were only in memory). The records that describe its samples go with it.
    manifest, withdrawn = dataset_dir / MANIFEST_NAME, dataset_dir / WORK_DIR / WITHDRAWN_MANIFEST
    if manifest.exists():
        withdrawn.parent.mkdir(exist_ok=True)
        manifest.replace(withdrawn)
    for stale in (METADATA_NAME, "table1.csv"):
        (dataset_dir / stale).unlink(missing_ok=True)
    return order_labels(withdrawn)


def run_takes(
    takes: list[AlignedTake],
    settings: PipelineSettings,
    dataset_dir: Path,
    executor: ExecutorSettings = INLINE,
    chunk_frames: int | None = None,
) -> tuple[list[TakeSummary], list[str], list[Outcome]]:
    """Build every take in chunks (``chunk_frames``; None: ``chunk_size``); returns the finished
    takes' summaries, their chunks' unit keys (in order) and the failed outcomes. A failed chunk
    fails its take; the other takes go on."""
    if chunk_frames is None:
        chunk_frames = chunk_size(sum(len(take_frames(t, settings)) for t in takes), executor)
    units = take_units(takes, settings, dataset_dir, chunk_frames)
    outcomes = run_units(units, executor, desc=f"build {settings.category}", unit_name="frame")
    return gather(units, outcomes, key=lambda u: chunk_name(u.args[0], u.args[1]))


def owner(unit_id: str) -> str:
    """The take or sequence a chunk's unit id (``OWNER@first``) belongs to."""
    return unit_id.rsplit("@", 1)[0]


def gather(units: list[Unit], outcomes: list[Outcome], key) -> tuple[list[TakeSummary], list[str], list[Outcome]]:
    """Per owner, in unit order: its merged summary and its chunks' keys (``key(unit)``) when every
    chunk finished; the failed outcomes. A failed chunk fails its owner; the others go on."""
    groups: dict[str, list[tuple[Unit, Outcome]]] = {}
    for unit, outcome in zip(units, outcomes):
        groups.setdefault(owner(unit.id), []).append((unit, outcome))
    summaries, keys, failed = [], [], [o for o in outcomes if not o.ok]
    for parts in groups.values():
        if all(o.ok for _, o in parts):
            summaries.append(TakeSummary.merge([o.value for _, o in parts]))
            keys.extend(key(u) for u, _ in parts)
    return summaries, keys, failed


def assemble(
    dataset_dir: Path,
    units: list[str],
    summaries: list[TakeSummary],
    settings: PipelineSettings,
    failures: list[dict] | None = None,
    labels: OrderLabels | None = None,
    source: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect the units' committed rows, split by subject, write manifest + metadata + rejects + tables.

    ``units`` are the work units (takes, sequences) that finished, by their file-safe key; ``labels``
    (the previous manifest's order labels) are kept when the samples are exactly the labelled ones.
    """
    parts, rejects = [], []
    for unit in units:
        r, j = load_results(dataset_dir, unit)
        parts.append(r)
        rejects.append(j)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    rej = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame()
    rows, rej = reject_moved(dataset_dir, rows, rej, summaries, settings.qc.move_min_frames, settings.qc.max_shift_px)
    if "shift_px" in rows:  # the evidence, not a manifest column
        qc = settings.qc
        lone = int((rows["shift_px"].astype(float) > qc.max_shift_px).sum())
        if lone:
            say(
                f"note: {lone} kept sample(s) sit {qc.max_shift_px:g}-{qc.max_shift_px * qc.lone_shift_factor:g} px "
                "off their synthetic blur (qc.max_shift_px, times qc.lone_shift_factor) where their take did not move: "
                "kept as the check's own error on fast content"
            )
        rows = rows.drop(columns="shift_px")
    if rows.empty:  # the record beside the withdrawn manifest says this build, not the one before
        record_build(dataset_dir, settings, rows, rej, summaries, failures)
    if rows.empty and rej.empty:  # nothing even reached QC
        why = "every take or sequence failed (named above)" if failures else "too short for one sample"
        raise Rb2vError(f"{dataset_dir}: no sample was built: {why}")
    if rows.empty:
        say_stage_failures(rej)
        hints = "".join(f"; {h}" for h in reject_hints(rej, rows))
        raise Rb2vError(f"{dataset_dir}: no sample passed QC (see rejects: {reason_counts(rej)}){hints}")
    counts = rows.groupby("subject").size().to_dict()
    splits = split_subjects(counts, settings.split.test_fraction, settings.split.seed)
    rows["split"] = rows["subject"].map(splits)
    meta = {
        "settings_hash": settings.hash,
        "settings": to_dict(settings),
        "rb2v_version": __version__,
        "category": settings.category,
        **({"source": source} if source else {}),
    }
    if labels is not None:
        by_sample, record = labels
        keys = [(s, tuple(h)) for s, h in zip(rows["sample_id"], rows["sha256"])]
        if set(keys) == set(by_sample):
            rows["order"] = [by_sample[k] for k in keys]
            meta[ORDER_KEY] = record
        else:
            say("note: the samples changed, so the previous manifest's order labels are not kept: run rb2v order again")
    write_manifest(dataset_dir / MANIFEST_NAME, rows, meta)
    (dataset_dir / WORK_DIR / WITHDRAWN_MANIFEST).unlink(missing_ok=True)
    remove_unlisted_samples(dataset_dir, rows, units)
    write_metadata_json(dataset_dir, rows)
    t1 = table1(rows)
    with atomic_path(dataset_dir / "table1.csv") as tmp:
        t1.to_csv(tmp, index=False)
    record_build(dataset_dir, settings, rows, rej, summaries, failures, splits)
    return rows, rej


def remove_unlisted_samples(dataset_dir: Path, rows: pd.DataFrame, units: list[str]) -> int:
    """Remove the sample folders that no finished unit of work lists (an earlier build's: synth-reds at
    another --fps, a frame rejected since); returns how many. Work kept for a re-run stays: the folders of
    every unit with a done marker, this build's (``rows``, of ``units``) or not (a take that failed today
    keeps yesterday's)."""
    root, work = dataset_dir / SAMPLES_DIR, dataset_dir / WORK_DIR
    if not root.is_dir():
        return 0
    listed = {Path(p).parent for p in rows["blur_path"]} if len(rows) else set()
    read = set(units)
    for marker in work.glob("*.done.json"):
        unit = marker.name.removesuffix(".done.json")
        record = work / f"{unit}.rows.parquet"
        if unit not in read and record.is_file():  # this build's units' rows were read already
            listed.update(Path(p).parent for p in pd.read_parquet(record, columns=["blur_path"])["blur_path"])
    removed = 0
    for blur in sorted(root.rglob(BLUR_NAME)):
        folder = blur.parent
        if folder.relative_to(dataset_dir) in listed:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
        while folder.parent != root and not any(folder.parent.iterdir()):  # a sequence's or take's folder left empty
            folder = folder.parent
            folder.rmdir()
    if removed:
        say(f"note: removed {removed} sample folder(s) of an earlier build that this one does not list")
    return removed


def record_build(
    dataset_dir: Path,
    settings: PipelineSettings,
    rows: pd.DataFrame,
    rej: pd.DataFrame,
    summaries: list[TakeSummary],
    failures: list[dict] | None,
    splits: dict | None = None,
) -> None:
    """``rejects.parquet`` and ``build.json`` of this build (also of one that built no sample)."""
    with atomic_path(dataset_dir / "rejects.parquet") as tmp:
        rej.to_parquet(tmp, index=False)
    write_json_atomic(
        dataset_dir / "build.json",
        {
            "category": settings.category,
            "settings_hash": settings.hash,
            "samples": len(rows),
            "rejected": len(rej),
            "splits": splits or {},
            "takes": [asdict(s) for s in summaries],
            "failures": failures or [],
        },
    )


SAID_FAILURES = 10  # distinct messages said (a finished build's rejects.parquet and report.html keep all)


def say_stage_failures(rej: pd.DataFrame) -> dict[str, int]:
    """Say each message that made samples fail (``records.stage_failures``), the first ``SAID_FAILURES`` of
    them; return them all."""
    failures = stage_failures(rej["reason"]) if not rej.empty else {}
    for message, n in list(failures.items())[:SAID_FAILURES]:
        say(f"rb2v: error: {message} ({n} sample(s) rejected)")
    if len(failures) > SAID_FAILURES:
        say(f"rb2v: error: … and {len(failures) - SAID_FAILURES} other message(s)")
    return failures


def reject_moved(
    dataset_dir: Path,
    rows: pd.DataFrame,
    rej: pd.DataFrame,
    summaries: list[TakeSummary],
    min_frames: int,
    max_shift_px: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each take's kept samples from where its views moved (``stage.moved_from``) on, rejected ``moved``: their
    folders removed, their takes' summaries told. A kept sample whose ``shift_px`` is over ``max_shift_px`` (under
    ``qc.lone_shift_factor`` times it: kept alone) is evidence of a move like a sample rejected for its geometry.
    The same units' results always give the same verdict, so a re-run that reuses them removes the same samples."""
    if rows.empty or min_frames <= 0:
        return rows, rej
    suspect = rows["shift_px"].astype(float) > max_shift_px  # NaN (a unit recorded before shift_px): no evidence
    evidence = reason_names(rej).map(lambda names: any(n in MOVE_EVIDENCE for n in names))
    moved = []
    for take, kept in rows.groupby("take", sort=False):
        mine = rej["take"] == take
        judged = sorted(
            [(k, bool(bad)) for k, bad in zip(kept["blur_index"], suspect[kept.index])]
            + [(k, True if bad else None) for k, bad in zip(rej.loc[mine, "blur_index"], evidence[mine])]
        )
        at = moved_from([bad for _, bad in judged], min_frames)
        if at is not None:
            moved.append(kept[kept["blur_index"] >= judged[at][0]])
    if not moved:
        return rows, rej
    moved = pd.concat(moved)
    for rel in moved["blur_path"]:
        shutil.rmtree(dataset_dir / Path(rel).parent, ignore_errors=True)
    counts = moved["take"].value_counts()
    for summary in summaries:
        n = int(counts.get(summary.take, 0))
        if n:
            summary.accepted, summary.rejected = summary.accepted - n, summary.rejected + n
            summary.reasons["moved"] = summary.reasons.get("moved", 0) + n
    gone = moved.assign(reason="moved").reindex(columns=rej.columns)  # clock_steps: not kept for a sample
    return rows.drop(index=moved.index).reset_index(drop=True), pd.concat([rej, gone], ignore_index=True)


def build_dataset(
    out: Path,
    settings: PipelineSettings,
    executor: ExecutorSettings = INLINE,
    report: bool = True,
    chunk_frames: int | None = None,
) -> Path:
    out = Path(out)
    started = time.perf_counter()
    takes, broken = find_aligned_takes(out, settings.category, load_rig(settings.rig))
    dataset_dir = out / "datasets" / settings.category
    with exclusive(dataset_dir, "another build of this dataset"):  # two runs removed each other's samples
        labels = prepare(dataset_dir, settings, executor)
        for _, err in broken:
            say(f"rb2v: error: {err}")
        summaries, keys, failed = run_takes(takes, settings, dataset_dir, executor, chunk_frames)
        unbuilt = [{"unit": take, "error": err, "traceback": None} for take, err in broken] + failures_table(failed)
        rows, rej = conclude(dataset_dir, keys, summaries, settings, unbuilt, labels, started, report)
        failed_samples = say_stage_failures(rej)
        bad = len(broken) + len({owner(o.unit) for o in failed})
        if bad or failed_samples:
            what, where = [], []
            if bad:
                what.append(f"{bad} take(s)")
                where.append(f"tracebacks in {dataset_dir / 'build.json'}")
            if failed_samples:
                what.append(f"{sum(failed_samples.values())} sample(s)")
                where.append(f"each sample's reason in {dataset_dir / 'rejects.parquet'}")
            raise PartialFailure(
                f"{' and '.join(what)} of '{settings.category}' failed (named above; {'; '.join(where)}); "
                "the others were built, and a re-run redoes what failed"
            )
        return dataset_dir


def conclude(
    dataset_dir: Path,
    units: list[str],
    summaries: list[TakeSummary],
    settings: PipelineSettings,
    failures: list[dict],
    labels: OrderLabels | None,
    started: float,
    report: bool,
    source: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How build and synth-reds end: ``assemble``, report.html when asked for, the summary."""
    rows, rej = assemble(dataset_dir, units, summaries, settings, failures, labels, source)
    if report:
        from .report import write_report  # matplotlib is imported only for a report

        write_report(dataset_dir)
    print_summary(dataset_dir, rows, rej, summaries, time.perf_counter() - started, report)
    return rows, rej


def print_summary(
    dataset_dir: Path,
    rows: pd.DataFrame,
    rej: pd.DataFrame,
    summaries: list[TakeSummary],
    seconds: float,
    report: bool = True,
) -> None:
    units, before = sum(s.units for s in summaries), sum(s.units_built_before for s in summaries)
    say(format_table1(table1(rows)))
    reasons = reason_counts(rej)
    lines = [
        f"built {dataset_dir.name}: {len(rows)} samples from {units} unit(s) ({before} already built), "
        f"{len(rej)} rejected {reasons or ''} in {seconds:.1f} s",
        f"  manifest: {dataset_dir / MANIFEST_NAME}",
    ]
    moved = sum(s.clock_moved for s in summaries)
    if moved:
        lines.append(
            f"  clock:    {moved} blurry frame(s) placed by their take's clock, where their own scores nearly tied "
            "two neighbouring starts (search.clock_prior_db)"
        )
    lines += [f"  {h}" for h in empty_take_hints(rej, rows) + reject_hints(rej, rows)]
    say("\n".join(lines + ([f"  report:   {dataset_dir / 'report.html'}"] if report else [])))
    composited = rows[rows["background"].notna()] if len(rows) else rows
    if len(composited):
        from ..matting.backgrounds import enlarged_note

        sizes = list(zip(composited["width"], composited["height"]))
        note = enlarged_note(list(composited["background"]), sizes)
        if note:
            say(note)


GEOMETRY_REASONS = (*MOVE_EVIDENCE, "moved", "knocked")  # the summary's hints: what a user can act on


# A take whose off_clock frames (at least this many) all lie the same number of steps from the clock's start
# (their median absolute deviation at most CLOCK_STEP_SPREAD: a start is a whole step, the clock's is not, so
# frames a constant time off spread by up to half a step) was off in time from some frame on.
CLOCK_STEP_MIN_FRAMES = 5
CLOCK_STEP_SPREAD = 0.3


def clock_step_hints(rej: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """A sentence for each take whose off_clock frames sit a constant time from where its clock puts them.

    A knocked view shifts a frame's content by a distance, which Algorithm 1 takes for the time the motion
    needs to cover it: that varies with the motion's speed from frame to frame. A constant offset is time
    itself: after frames that were kept, the blur camera's exposure changed (an auto shutter: align fits
    one window per take); from the take's first frame on, its alignment's clock is off.
    """
    if rej.empty or "clock_steps" not in rej:
        return []
    off = rej[reason_names(rej).map(lambda names: "off_clock" in names) & rej["clock_steps"].notna()]
    hints = []
    for take, part in off.groupby("take", sort=True):
        steps = part["clock_steps"].to_numpy(float)
        centre = float(np.median(steps))
        if len(steps) < CLOCK_STEP_MIN_FRAMES or np.median(np.abs(steps - centre)) > CLOCK_STEP_SPREAD:
            continue
        first, last = int(part["blur_index"].min()), int(part["blur_index"].max())
        kept_before = not rows.empty and bool(((rows["take"] == take) & (rows["blur_index"] < first)).any())
        cause = (
            "as when the blur camera's exposure changes during a take (lock its shutter: align fits one exposure "
            "per take)"
            if kept_before
            else "its alignment's clock is off by that much (time_offset_s and the blur exposure in its "
            "alignment.json: align it again; where the cameras' sound latencies differ, with --sync visual)"
        )
        hints.append(
            f"{take}: its {len(steps)} off_clock blurry frames ({first} to {last}) all match sharp frames "
            f"{abs(centre):.1f} steps {'before' if centre > 0 else 'after'} where its clock puts them, the same "
            f"for each: a shift in time, not in place (a knocked view's shift varies with the motion's speed): {cause}"
        )
    return hints


def reason_names(rej: pd.DataFrame) -> pd.Series:
    """Each reject's reasons as a list of names (``"a;b"`` -> [a, b]; a detail after a colon left out)."""
    return rej["reason"].map(reason_names_of)


def reason_counts(rej: pd.DataFrame) -> dict[str, int]:
    """How many rejects name each reason, most first."""
    return reason_names(rej).explode().value_counts().to_dict() if not rej.empty else {}


def reason_table(rej: pd.DataFrame) -> pd.DataFrame:
    """One row per reason: how many blurry frames it rejected and the (at most 3) takes with the most."""
    names = reason_names(rej) if not rej.empty else pd.Series(dtype=object)
    rows = []
    for reason, n in names.explode().value_counts().items():
        takes = rej.loc[names.apply(lambda r, reason=reason: reason in r), "take"].value_counts()
        rows.append(
            {"reason": reason, "blurry frames": n, "most in": ", ".join(f"{t} ({k})" for t, k in takes.head(3).items())}
        )
    return pd.DataFrame(rows, columns=["reason", "blurry frames", "most in"])


def empty_take_hints(rej: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """A sentence for each take that gave no sample, every blurry frame of it rejected: a take's alignment
    or recording gone wrong as a whole, which the reason counts of many takes together hide."""
    if rej.empty:
        return []
    kept = set(rows["take"]) if not rows.empty else set()
    hints = []
    for take, part in rej[~rej["take"].isin(kept)].groupby("take", sort=True):
        reasons = ", ".join(f"{r} {n}" for r, n in reason_counts(part).items())
        hints.append(f"{take}: none of its {len(part)} blurry frames gave a sample ({reasons})")
    return hints


def reject_hints(rej: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """A sentence for each of ``GEOMETRY_REASONS`` that ``rej`` holds, naming its worst takes, then those of
    ``clock_step_hints`` (``rows``: the kept samples)."""
    table = reason_table(rej).set_index("reason")
    return [
        f"{r}: {table.at[r, 'blurry frames']} blurry frames (most in {table.at[r, 'most in']}) {REJECT_REASONS[r]}"
        for r in GEOMETRY_REASONS
        if r in table.index
    ] + clock_step_hints(rej, rows)
