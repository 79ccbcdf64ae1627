"""``rb2v build``: a thin command over ``rb2v.dataset.build.build_dataset``."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import project_path
from ..errors import Rb2vError
from ..executor import ExecutorSettings, executor_options
from ..settings import CATEGORIES
from .build import CHUNK_FRAMES


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
    from .build import build_dataset
    from .settings import load_pipeline, note_unused_options

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
    build_dataset(
        out or project_path("out"),
        settings,
        ExecutorSettings(workers, backend, ray_address),
        report=not no_report,
        chunk_frames=chunk_frames,
    )
