"""``rb2v build``: a thin command over ``rb2v.dataset.build.build_dataset``."""

from __future__ import annotations

from pathlib import Path

import click

from ..settings import CATEGORIES


def default_out() -> Path:
    """``out`` from ./rb2v.toml when present, else ./out."""
    from ..config import read_toml

    cfg = Path("rb2v.toml")
    return Path(read_toml(cfg).get("out", "out")) if cfg.exists() else Path("out")


@click.command("build")
@click.option("--category", type=click.Choice(CATEGORIES), required=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output root holding aligned/ (default: rb2v.toml's out, else ./out).",
)
@click.option("--pipeline", default=None, help="Pipeline file (default: pipelines/<category>.toml).")
@click.option("--interpolator", type=click.Choice(["flow", "cdfi", "linear"]), default=None)
@click.option("--cdfi-checkpoint", type=click.Path(dir_okay=False), default=None)
@click.option("--matting", type=click.Choice(["chroma", "bgmv2", "none"]), default=None)
@click.option("--bgmv2-checkpoint", type=click.Path(dir_okay=False), default=None)
@click.option("--backgrounds", type=click.Path(file_okay=False), default=None, help="Folder of background photos.")
@click.option("--stride", type=int, default=None, help="Use every N-th blurry frame.")
@click.option("--device", default=None, help="auto | cpu | cuda for the models and the search.")
@click.option("--workers", type=int, default=1, show_default=True, help="Takes built in parallel (processes).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, help="Join an existing Ray cluster.")
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
    executor,
    ray_address,
    no_report,
):
    """Build a category's dataset from OUT/aligned/<category>: upsampling, Algorithm 1, matting, QC, split."""
    from .build import build_dataset
    from .settings import load_pipeline

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
        raise click.BadParameter(
            f"pipeline file is for '{settings.category}', not '{category}'", param_hint="--pipeline"
        )
    build_dataset(
        out or default_out(),
        settings,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        report=not no_report,
    )
