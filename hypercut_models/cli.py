"""``rb2v train-hypercut``, ``rb2v eval-hypercut`` and ``rb2v order``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rb2v.device import TRAINING_PRECISIONS
from rb2v.fsutil import write_json_atomic
from rb2v.outputs import check_output
from rb2v.progress import say

THREADS_HELP = (
    "CPU threads for torch (default: torch's own). On a machine shared with other jobs, "
    "1 can be several times faster than oversubscribed threads."
)


def precision_option(default: str):
    """``--precision`` of a trainer whose own default is ``default`` (the rule: ``rb2v.device.training_autocast``)."""
    return click.option(
        "--precision",
        type=click.Choice(TRAINING_PRECISIONS),
        default=None,
        help=f"Mixed precision (default {default}). auto: float16 autocast on CUDA, bfloat16 on a CPU that "
        "computes it natively; cuda-only: float16 on CUDA, float32 on the CPU; float32: neither.",
    )


def _json_suffix(ctx, param, value):
    if value is None:
        return value
    if not str(value).lower().endswith(".json"):
        raise click.BadParameter(f"{value}: give a file name ending in .json", ctx=ctx, param=param)
    check_output(value, "--json")
    return value


def json_option(help: str):
    """``--json PATH`` of an evaluation: a .json name only (``--json manifest.parquet`` replaced the manifest)."""
    return click.option(
        "--json", "json_path", type=click.Path(dir_okay=False), default=None, callback=_json_suffix, help=help
    )


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@click.command("train-hypercut")
@click.option("--manifest", required=True, type=click.Path(), help="manifest.parquet (or its folder).")
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Run folder (default runs/hypercut-<dataset folder name>).",
)
@click.option("--epochs", type=int, default=None, help="Epochs in all (default 20; on --resume, the run's own).")
@click.option("--batch-size", type=int, default=None, help="Sequences per step (default 8).")
@click.option("--lr", type=float, default=None, help="Adam learning rate (default 2e-4).")
@click.option(
    "--crop", type=int, default=None, help="Random square crop side (default 256, or the smallest frame side)."
)
@click.option(
    "--final-epochs",
    type=int,
    default=None,
    help="Train the last N epochs on --final-crop crops (default 0), e.g. at the evaluation scale.",
)
@click.option(
    "--final-crop", type=int, default=None, help="Crop side of the final epochs (default: the smallest frame side)."
)
@click.option(
    "--same-weight",
    type=float,
    default=None,
    help="Weight of the same-side consistency terms (default 1; 0 = L_h only).",
)
@click.option(
    "--direction-weight",
    type=float,
    default=None,
    help="Weight of the direction prior (default 0: the paper's losses alone); see hypercut_models/README.md.",
)
@click.option("--clip-grad", type=float, default=None, help="Gradient norm cap (default 10; 0 = none).")
@click.option("--no-flips", is_flag=True, help="Do not flip or transpose training sequences.")
@click.option(
    "--seed", type=int, default=None, help="Seed of the hyperplane, weights, shuffling and crops (default 0)."
)
@precision_option("cuda-only")
@click.option("--workers", type=int, default=None, help="Data loader processes (default up to 4).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option(
    "--init", type=click.Path(), default=None, help="Start from this checkpoint's network and hyperplane (fine-tuning)."
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
def train_hypercut(
    manifest,
    out,
    epochs,
    batch_size,
    lr,
    crop,
    final_epochs,
    final_crop,
    same_weight,
    direction_weight,
    clip_grad,
    no_flips,
    seed,
    precision,
    workers,
    device,
    threads,
    init,
    resume,
):
    """Train the HyperCUT ordering network on the manifest's train split."""
    from .train import TrainSettings, train

    if out is None:
        dataset_dir = Path(manifest).resolve()
        if dataset_dir.suffix:  # the manifest file, not its folder
            dataset_dir = dataset_dir.parent
        out = str(Path("runs") / f"hypercut-{dataset_dir.name}")
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "crop": crop,
        "final_epochs": final_epochs,
        "final_crop": final_crop,
        "same_weight": same_weight,
        "direction_weight": direction_weight,
        "clip_grad": clip_grad,
        "seed": seed,
        "precision": precision,
        "workers": workers,
    }
    if resume:
        fixed = [k for k in given if k not in TrainSettings.RUNTIME and given[k] is not None]
        fixed += ["init"] if init else []  # a resumed run continues from its last.pt, not from --init
        if fixed or no_flips:
            say(
                f"note: --resume continues with the run's own settings; ignoring "
                f"{', '.join('--' + k.replace('_', '-') for k in fixed + (['no_flips'] if no_flips else []))}"
            )
    if not resume and final_crop is not None and not final_epochs:
        say("note: --final-crop is not used without --final-epochs N (the epochs trained on it)")
    settings = TrainSettings(
        manifest=str(manifest),
        out=out,
        device=device,
        threads=threads,
        init=init,
        flips=not no_flips,
        **{k: v for k, v in given.items() if v is not None},
    )
    last = train(settings, resume=resume)
    click.echo(str(last))


def _table(result: dict) -> str:
    rows = [
        ("hit", result["hit"], f"{result['hit_count']}/{result['pairs']} pairs"),
        ("con@2", result["con@2"], f"{result['con@2_count']}/{result['pairs']} pairs of pairs"),
        ("con@3", result["con@3"], f"{result['con@3_count']}/{result['sequences']} sequences"),
    ]
    lines = [f"{'metric':<8}{'value':>8}  count", *(f"{n:<8}{100 * v:>7.2f}%  {c}" for n, v, c in rows)]
    per_pair = "  ".join(f"{k}: {100 * v:.2f}%" for k, v in result["hit_per_pair"].items())
    lines.append(f"hit per pair  {per_pair}")
    lines.append(
        f"{result['split']} split, {result['sequences']} sequences, {result['seconds']:.1f}s on {result['device']}"
    )
    return "\n".join(lines)


@click.command("eval-hypercut")
@click.option("--manifest", required=True, type=click.Path(), help="manifest.parquet (or its folder).")
@click.option("--checkpoint", required=True, type=click.Path(), help="A last.pt (or its run folder).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@json_option("Also write the figures (fractions in [0,1] and counts) to this JSON file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--crop", type=int, default=None, help="Score a seeded random crop of this side instead of full frames.")
@click.option("--workers", type=click.IntRange(min=0), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the t-SNE map of the split's (x_0, x_6) vectors and their reverses (PNG, PDF, SVG or JPEG by "
    "the file's suffix), as the paper's Fig. 7.",
)
@click.option(
    "--learnability",
    is_flag=True,
    help="Also check whether blur2vid can learn the labels from a blurry image (180-degree turn, corner crops, "
    "motion direction; whole frames; JSON key 'learnability').",
)
def eval_hypercut(
    manifest, checkpoint, split, json_path, batch_size, crop, workers, device, threads, plot, learnability
):
    """Report hit / con@2 / con@3 of a HyperCUT checkpoint on one split."""
    from .evaluate import evaluate
    from .plot import check_plot_path

    if plot:
        check_plot_path(plot)
    _set_threads(threads)
    result = evaluate(
        manifest, checkpoint, split=split, device=device, batch_size=batch_size, workers=workers, crop=crop
    )
    click.echo(_table(result))
    if learnability:
        from .learnability import evaluate_learnability, summary

        result["learnability"] = evaluate_learnability(manifest, checkpoint, split=split, device=device)
        click.echo(summary(result["learnability"]))
    if json_path:
        write_json_atomic(json_path, result)
    if plot:
        from rb2v.device import resolve_device

        from .checkpoint import load_model
        from .data import SequenceDataset
        from .plot import pair_vectors, tsne_plot

        net, plane, _ = load_model(checkpoint)
        fwd, rev = pair_vectors(net, SequenceDataset(manifest, split, crop=crop), resolve_device(device), batch_size)
        click.echo(f"t-SNE map: {tsne_plot(fwd, rev, plane, plot)}")


@click.command("order")
@click.option("--manifest", required=True, type=click.Path(), help="manifest.parquet (or its folder).")
@click.option("--checkpoint", required=True, type=click.Path(), help="A last.pt (or its run folder).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
def order(manifest, checkpoint, batch_size, workers, device, threads):
    """Write order labels: "ignore" when (x_0, x_6) falls on the hyperplane's negative side, else
    "reverse"; refreshes metadata.json."""
    from .evaluate import write_orders

    _set_threads(threads)
    counts = write_orders(manifest, checkpoint, device=device, batch_size=batch_size, workers=workers)
    click.echo(json.dumps(counts))
