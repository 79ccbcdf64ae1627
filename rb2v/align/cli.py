"""``rb2v align RAW OUT``."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import project_path
from ..executor import ExecutorSettings, executor_options
from ..settings import DEFAULT_RIG, load_rig
from .preflight import check_sync, preflight


@click.command("align")
@click.argument("raw", required=False, type=click.Path(path_type=Path))
@click.argument("out", required=False, type=click.Path(path_type=Path))
@click.option("--rig", default=DEFAULT_RIG, show_default=True, help="Rig definition (name in rigs/ or a TOML path).")
@executor_options("Takes aligned")
@click.option(
    "--flip",
    type=click.Choice(["auto", "horizontal", "vertical", "none"]),
    default="auto",
    show_default=True,
    help="Flip of the sharp camera; auto detects it from the images (the rig file only breaks ties).",
)
@click.option(
    "--sync",
    "sync_methods",
    default=None,
    help="Comma-separated sync methods in order of preference (default: the rig's, timecode,audio,visual).",
)
@click.option("--no-ecc", is_flag=True, help="Skip the photometric (ECC) refinement of the homography.")
@click.option("--no-frames", is_flag=True, help="Only estimate and write alignment.json, no PNG frames.")
@click.option(
    "--png-compression",
    type=click.IntRange(0, 9),
    default=None,
    help="zlib level of the aligned PNGs (default: the rig's align.png_compression).",
)
def align(raw, out, rig, workers, backend, ray_address, flip, sync_methods, no_ecc, no_frames, png_compression):
    """Pair, synchronise and geometrically align the two cameras of each take in RAW.

    Writes OUT/takes.parquet, OUT/aligned/<category>/<subject>/<take>/ (alignment.json,
    blur/%06d.png, sharp/%06d.png) and OUT/align_errors.parquet. Takes already aligned with
    the same inputs and settings are skipped; re-running after a crash resumes.
    """
    raw = raw or project_path("raw", required=True)
    out = out or project_path("out", required=True)
    methods = tuple(m.strip() for m in sync_methods.split(",") if m.strip()) if sync_methods is not None else None
    rig_settings = load_rig(rig, overrides={"align.png_compression": png_compression})
    executor = ExecutorSettings(workers, backend, ray_address)
    # AlignOptions' and run_align's own checks, in their order, before the stage is imported (2.7 s): a
    # mistake is told at once
    check_sync(methods)
    preflight(raw, out, executor)
    from .stage import AlignOptions, run_align

    opts = AlignOptions(rig=rig_settings, flip=flip, sync_methods=methods, ecc=not no_ecc, write_frames=not no_frames)
    run_align(raw, out, opts, executor)  # it says its own summary
