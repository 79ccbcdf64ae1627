"""``rb2v build``: every aligned take of a category -> the dataset, its manifest and report.

Takes are independent units (``stage.build_take``); they run in this process, in worker
processes, or on Ray. The manifest is assembled from the takes' committed results, so a
killed build re-run skips finished takes and ends with the same manifest.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .. import __version__
from ..config import to_dict
from ..errors import PartialFailure, Rb2vError
from ..fsutil import atomic_path, clean_partials, write_json_atomic
from ..manifest import MANIFEST_NAME, write_manifest, write_metadata_json
from ..progress import progress, say
from ..settings import load_rig
from .settings import PipelineSettings
from .split import format_table1, split_subjects, table1
from .stage import StageTools, TakeSummary, build_take, load_results
from .takes import AlignedTake, find_aligned_takes

_WORKER_TOOLS: dict = {}


def _worker_build(take: AlignedTake, settings: PipelineSettings, dataset_dir: str) -> TakeSummary:
    """Process/Ray entry point: tools are created once per worker and reused."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    key = settings.hash
    if key not in _WORKER_TOOLS:
        _WORKER_TOOLS.clear()
        _WORKER_TOOLS[key] = StageTools.create(settings)
    return build_take(take, settings, Path(dataset_dir), _WORKER_TOOLS[key])


def run_takes(
    takes: list[AlignedTake],
    settings: PipelineSettings,
    dataset_dir: Path,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
) -> tuple[list[TakeSummary], list[tuple[str, str]]]:
    """Build every take; failures are reported per take and do not stop the others."""
    summaries, failures = [], []
    if executor == "ray":
        try:
            import ray
        except ImportError:
            raise Rb2vError("--executor ray needs Ray: pip install 'rb2v[ray]'") from None
        started = not ray.is_initialized()
        if started:
            ray.init(
                address=ray_address,
                num_cpus=None if ray_address else workers,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        try:
            remote = ray.remote(_worker_build)
            pending = {remote.remote(t, settings, str(dataset_dir)): t for t in takes}
            with progress(total=len(takes), desc=f"build {settings.category} (ray)", unit="take") as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    take = pending.pop(done[0])
                    try:
                        summaries.append(ray.get(done[0]))
                    except Exception as e:  # the task's exception, re-raised by ray.get
                        failures.append((take.take_id, _one_line(e)))
                    bar.update(1)
        finally:
            if started:
                ray.shutdown()
        return summaries, failures
    if workers <= 1:
        tools = StageTools.create(settings)  # a bad model setting stops the build here, before any take
        frames = sum(len(range(0, t.blur_count, settings.sampling.stride)) for t in takes)
        with progress(total=frames, desc=f"build {settings.category}", unit="frame") as bar:
            for take in takes:
                try:
                    summaries.append(build_take(take, settings, dataset_dir, tools, on_frame=lambda: bar.update(1)))
                except Rb2vError as e:
                    failures.append((take.take_id, str(e)))
        return summaries, failures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool,
        progress(total=len(takes), desc=f"build {settings.category} ({workers} workers)", unit="take") as bar,
    ):
        futures = {pool.submit(_worker_build, t, settings, str(dataset_dir)): t for t in takes}
        for fut in as_completed(futures):
            try:
                summaries.append(fut.result())
            except Exception as e:
                failures.append((futures[fut].take_id, _one_line(e)))
            bar.update(1)
    return summaries, failures


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def assemble(
    dataset_dir: Path, units: list[str], summaries: list[TakeSummary], settings: PipelineSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect the units' committed rows, split by subject, write manifest + metadata + rejects + tables.

    ``units`` are the work units (takes, sequences) that finished, by their file-safe key.
    """
    parts, rejects = [], []
    for unit in units:
        r, j = load_results(dataset_dir, unit)
        parts.append(r)
        rejects.append(j)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    rej = pd.concat(rejects, ignore_index=True) if rejects else pd.DataFrame()
    if rows.empty:
        reasons = rej["reason"].value_counts().to_dict() if not rej.empty else {}
        raise Rb2vError(f"{dataset_dir}: no sample passed QC (see rejects: {reasons})")
    counts = rows.groupby("subject").size().to_dict()
    splits = split_subjects(counts, settings.split.test_fraction, settings.split.seed)
    rows["split"] = rows["subject"].map(splits)
    meta = {
        "settings_hash": settings.hash,
        "settings": to_dict(settings),
        "rb2v_version": __version__,
        "category": settings.category,
    }
    write_manifest(dataset_dir / MANIFEST_NAME, rows, meta)
    write_metadata_json(dataset_dir, rows)
    with atomic_path(dataset_dir / "rejects.parquet") as tmp:
        rej.to_parquet(tmp, index=False)
    t1 = table1(rows)
    with atomic_path(dataset_dir / "table1.csv") as tmp:
        t1.to_csv(tmp, index=False)
    write_json_atomic(
        dataset_dir / "build.json",
        {
            "category": settings.category,
            "settings_hash": settings.hash,
            "samples": len(rows),
            "rejected": len(rej),
            "splits": splits,
            "takes": [asdict(s) for s in summaries],
        },
    )
    return rows, rej


def build_dataset(
    out: Path,
    settings: PipelineSettings,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    report: bool = True,
) -> Path:
    out = Path(out)
    started = time.perf_counter()
    takes, broken = find_aligned_takes(out, settings.category, load_rig(settings.rig))
    dataset_dir = out / "datasets" / settings.category
    dataset_dir.mkdir(parents=True, exist_ok=True)
    clean_partials(dataset_dir)
    for _, err in broken:
        say(f"rb2v: error: {err}")
    summaries, failures = run_takes(takes, settings, dataset_dir, workers, executor, ray_address)
    for take_id, err in failures:
        say(f"rb2v: error: {take_id}: {err}")
    done = {s.take for s in summaries}
    rows, rej = assemble(dataset_dir, [t.key for t in takes if t.take_id in done], summaries, settings)
    if report:
        from .report import write_report

        write_report(dataset_dir)
    print_summary(dataset_dir, rows, rej, summaries, time.perf_counter() - started)
    bad = len(broken) + len(failures)
    if bad:
        raise PartialFailure(f"{bad} take(s) of '{settings.category}' failed (named above); the others were built")
    return dataset_dir


def print_summary(
    dataset_dir: Path, rows: pd.DataFrame, rej: pd.DataFrame, summaries: list[TakeSummary], seconds: float
) -> None:
    skipped = sum(s.skipped for s in summaries)
    say(format_table1(table1(rows)))
    reasons = (
        rej["reason"].str.split(";").explode().str.split(":").str[0].value_counts().to_dict() if not rej.empty else {}
    )
    say(
        f"built {dataset_dir.name}: {len(rows)} samples from {len(summaries)} unit(s) ({skipped} already built), "
        f"{len(rej)} rejected {reasons or ''} in {seconds:.1f} s\n"
        f"  manifest: {dataset_dir / MANIFEST_NAME}\n  report:   {dataset_dir / 'report.html'}"
    )
