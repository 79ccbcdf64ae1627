"""``rb2v build``, ``rb2v synth-reds`` and ``rb2v report``: thin commands over ``rb2v.dataset.build.build_dataset``,
``rb2v.dataset.reds.synth_reds_dataset`` and ``rb2v.dataset.report.write_report``.

Each checks its arguments before it imports its stage (pandas, OpenCV, the interpolators: seconds), so a
mistake is told at once.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..config import project_path
from ..errors import PartialFailure, Rb2vError
from ..executor import ExecutorSettings, executor_options, run_unit, say_failure
from ..manifest.names import MANIFEST_NAME
from ..settings import CATEGORIES
from .plan import CHUNK_FRAMES, check_input_folder, rate_plan


@click.command("build")
@click.option("--category", type=click.Choice(CATEGORIES), required=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output root holding aligned/ (default: rb2v.toml's out, else ./out).",
)
@click.option("--pipeline", default=None, help="Pipeline file (default: pipelines/<category>.toml).")
@click.option(
    "--interpolator",
    type=click.Choice(["flow", "cdfi", "linear"]),
    default=None,
    help="Makes the in-between frames (default: the pipeline's, flow).",
)
@click.option(
    "--cdfi-checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Official CDFI_adacof.pth (--interpolator cdfi).",
)
@click.option(
    "--matting",
    type=click.Choice(["chroma", "bgmv2", "none"]),
    default=None,
    help="Keys the green screen (default: the pipeline's: chroma for hand and face, none for street).",
)
@click.option(
    "--bgmv2-checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Official BackgroundMattingV2 weights (--matting bgmv2).",
)
@click.option("--backgrounds", type=click.Path(file_okay=False), default=None, help="Folder of background photos.")
@click.option("--stride", type=click.IntRange(min=1), default=None, help="Use every N-th blurry frame.")
@click.option("--device", default=None, help="auto | cpu | cuda for the models and the search.")
@executor_options("Chunks of takes built")
@click.option(
    "--chunk-frames",
    type=click.IntRange(min=1),
    default=None,
    help=f"Blurry frames per unit of work (the manifest does not depend on it); default {CHUNK_FRAMES}, "
    "or fewer so that each worker gets several.",
)
@click.option("--no-report", is_flag=True, help="Skip report.html.")
def build(
    category,
    out,
    pipeline,
    interpolator,
    cdfi_checkpoint,
    matting,
    bgmv2_checkpoint,
    backgrounds,
    stride,
    device,
    workers,
    backend,
    ray_address,
    chunk_frames,
    no_report,
):
    """Build a category's dataset from OUT/aligned/<category>: upsampling, Algorithm 1, matting, QC, split."""
    from .settings import load_pipeline, note_unused_options
    from .takes import aligned_take_folders

    overrides = {
        "upsample.interpolator": interpolator,
        "upsample.cdfi_checkpoint": cdfi_checkpoint,
        "matting.method": matting,
        "matting.bgmv2_checkpoint": bgmv2_checkpoint,
        "matting.backgrounds": backgrounds,
        "sampling.stride": stride,
    }
    if device:
        overrides.update({"upsample.device": device, "search.device": device, "matting.device": device})
    settings = load_pipeline(pipeline or category, overrides)
    if settings.category != category:
        raise Rb2vError(f"{pipeline}: the pipeline is for category '{settings.category}', not '{category}'")
    note_unused_options(
        settings,
        {"--cdfi-checkpoint": cdfi_checkpoint, "--bgmv2-checkpoint": bgmv2_checkpoint, "--backgrounds": backgrounds},
    )
    out = out or project_path("out")
    aligned_take_folders(out, category)  # build_dataset's first check, before the stage is imported (3.7 s)
    from .build import build_dataset

    build_dataset(
        out,
        settings,
        ExecutorSettings(workers, backend, ray_address),
        report=not no_report,
        chunk_frames=chunk_frames,
    )


@click.command("synth-reds")
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Frame rate of the input sequences (REDS: 120).",
)
@click.option(
    "--input",
    "input_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="DIR/<sequence>/<frames> or DIR/<sequence>.mp4",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output root: datasets/reds/ is written there (default: rb2v.toml's out, else ./out).",
)
@click.option(
    "--interpolator",
    type=click.Choice(["flow", "cdfi", "linear"]),
    default=None,
    help="Makes the in-between frames and sub-frames (default: the pipeline's, flow).",
)
@click.option(
    "--cdfi-checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Official CDFI_adacof.pth (--interpolator cdfi).",
)
@click.option("--device", default=None, help="auto | cpu | cuda for the interpolator (cdfi).")
@click.option("--stride", type=click.IntRange(min=1), default=None, help="Use every N-th sample position.")
@click.option("--max-per-sequence", type=click.IntRange(min=0), default=None, help="0: no limit.")
@executor_options("Chunks of sequences made")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
def synth_reds(
    fps,
    input_dir,
    out,
    interpolator,
    cdfi_checkpoint,
    device,
    stride,
    max_per_sequence,
    workers,
    backend,
    ray_address,
    no_report,
):
    """Make the synthetic REDS blur2vid set in the manifest format (OUT/datasets/reds)."""
    from .settings import load_pipeline, note_unused_options

    settings = load_pipeline(
        "reds",
        {
            "upsample.interpolator": interpolator,
            "upsample.cdfi_checkpoint": cdfi_checkpoint,
            "upsample.device": device,
            "sampling.stride": stride,
            "sampling.max_per_take": max_per_sequence,
        },
    )
    note_unused_options(settings, {"--cdfi-checkpoint": cdfi_checkpoint})
    out = out or project_path("out")
    # synth_reds_dataset's first checks, before the stage is imported (3.1 s)
    rate_plan(fps)
    check_input_folder(input_dir)
    from .reds import synth_reds_dataset

    synth_reds_dataset(
        input_dir,
        out,
        fps,
        settings,
        report=not no_report,
        executor=ExecutorSettings(workers, backend, ray_address),
    )


@click.command("report")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default=None, required=False)
def report_cmd(out):
    """Regenerate OUT/datasets/<category>/report.html for every built dataset under OUT (or for one
    dataset folder: a fetched or moved one)."""
    out = out or project_path("out")
    if (out / MANIFEST_NAME).is_file():
        found = [out]
    else:
        found = sorted(p.parent for p in (out / "datasets").glob(f"*/{MANIFEST_NAME}"))
    if not found:
        raise Rb2vError(
            f"{out}: no built dataset, neither a dataset folder ({MANIFEST_NAME}) nor OUT with datasets/<category>/ "
            "(run rb2v build first)"
        )
    from .report import write_report

    failed = 0
    for d in found:  # one damaged dataset does not keep the others' reports from being written
        outcome = run_unit(str(d), write_report, (d,))
        if outcome.status == "done":
            click.echo(f"wrote {outcome.value}")
        else:
            say_failure(outcome)
            failed += 1
    if failed:
        raise PartialFailure(f"{failed} of {len(found)} report(s) not written (named above)")
