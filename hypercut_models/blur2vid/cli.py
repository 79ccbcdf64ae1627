"""``rb2v train-blur2vid``, ``rb2v eval-blur2vid`` and ``rb2v deblur``."""

from __future__ import annotations

import click

from rb2v.fsutil import write_json_atomic
from rb2v.manifest import manifest_file

from ..cli import THREADS_HELP, _set_threads, json_option, precision_option


@click.command("train-blur2vid")
@click.option("--manifest", required=True, type=click.Path(), help="manifest.parquet (or its folder).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option(
    "--loss",
    type=click.Choice(["naive", "order-invariant", "hypercut"]),
    default=None,
    help="Training loss (default naive).",
)
@click.option("--hypercut", type=click.Path(), default=None, help="HyperCUT checkpoint for R_hyp (--loss hypercut).")
@click.option("--alpha", type=float, default=None, help="Weight of R_hyp (default 0; the paper's 0.2 measured worse).")
@click.option("--alpha-from", type=int, default=None, help="First epoch (1-based) with R_hyp (default 1).")
@click.option(
    "--flow-weight", type=float, default=None, help="Weight of the flow term on the true frames' flows (default 0.01)."
)
@click.option("--size", type=click.Choice(["small", "base"]), default=None, help="Network size (default small).")
@click.option("--epochs", type=int, default=None, help="Epochs in all (default 30; on --resume, the run's own).")
@click.option("--crop", type=int, default=None, help="Random square crop side (default 64).")
@click.option("--batch-size", type=int, default=None, help="Samples per step (default 8).")
@click.option("--lr", type=float, default=None, help="Adam learning rate (default 5e-4, cosine decay).")
@click.option("--seed", type=int, default=None, help="Seed of the weights, shuffling and crops (default 0).")
@precision_option("auto")
@click.option("--workers", type=int, default=None, help="Data loader processes (default 0).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
def train_blur2vid(
    manifest,
    out,
    loss,
    hypercut,
    alpha,
    alpha_from,
    flow_weight,
    size,
    epochs,
    crop,
    batch_size,
    lr,
    seed,
    precision,
    workers,
    device,
    threads,
    resume,
):
    """Train an image-to-video deblurring model (7 frames from one blurry image)."""
    from rb2v.progress import say

    given = {
        "loss": loss,
        "hypercut": hypercut,
        "alpha": alpha,
        "alpha_from": alpha_from,
        "flow_weight": flow_weight,
        "size": size,
        "epochs": epochs,
        "crop": crop,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "precision": precision,
        "workers": workers,
    }
    if resume:
        from .train import Blur2VidSettings

        fixed = [k for k, v in given.items() if v is not None and k not in Blur2VidSettings.RUNTIME]
        if fixed:
            ignored = ", ".join(f"--{k.replace('_', '-')}" for k in fixed)
            say(f"note: --resume continues with the run's own settings; ignoring {ignored}")
    else:
        if (loss or "naive") != "hypercut":
            unused = [f"--{k.replace('_', '-')}" for k in ("hypercut", "alpha", "alpha_from") if given[k] is not None]
            if unused:
                say(f"note: {', '.join(unused)} not used: they apply to --loss hypercut, not {loss or 'naive'}")
            for k in ("hypercut", "alpha", "alpha_from"):  # settings.json then says what the run used
                given[k] = None
        # a new run trains on this manifest (a resumed one on its own): one that is not there is told before
        # torch is imported (4 s), not after
        manifest_file(manifest)
    from .train import Blur2VidSettings, train

    settings = Blur2VidSettings(
        manifest=str(manifest),
        out=str(out),
        device=device,
        threads=threads,
        **{k: v for k, v in given.items() if v is not None},
    )
    click.echo(str(train(settings, resume=resume)))


@click.command("eval-blur2vid")
@click.option("--manifest", required=True, type=click.Path(), help="manifest.parquet (or its folder).")
@click.option("--checkpoint", required=True, type=click.Path(), help="A blur2vid last.pt (or its run folder).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True)
@click.option("--hypercut", type=click.Path(), default=None, help="Also score the predictions' order (hit, con@3).")
@json_option("Write the figures here (a .json file).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
def eval_blur2vid(manifest, checkpoint, split, hypercut, json_path, batch_size, workers, device, threads):
    """pPSNR per frame (official definition), pSSIM, forward PSNR and the blurry-input floor."""
    from .evaluate import evaluate, format_result

    _set_threads(threads)
    result = evaluate(
        manifest, checkpoint, split=split, hypercut=hypercut, device=device, batch_size=batch_size, workers=workers
    )
    click.echo(format_result(result))
    if json_path:
        write_json_atomic(json_path, result)


@click.command("deblur")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path(), help="A blur2vid last.pt (or its run folder).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Writes OUT/<name>/frame00k.png.")
@click.option(
    "--video",
    type=click.Choice(["mp4", "gif"]),
    is_flag=False,
    flag_value="mp4",
    default=None,
    help="Also write a video of the 7 frames (--video: MP4; --video gif).",
)
@click.option("--tile", type=int, default=512, show_default=True, help="Tile side for large images.")
@click.option("--overlap", type=int, default=32, show_default=True, help="Pixels shared by neighbouring tiles.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
def deblur_cmd(inputs, checkpoint, out, video, tile, overlap, device, threads):
    """Any blurry photo(s) or folder -> OUT/<name>/frame001.png ... frame007.png (time order)."""
    from .inputs import prepare

    # deblur's checks before torch and the network are imported (4 s): a mistake is told at once
    files = prepare(list(inputs), out, video=video, tile=tile, overlap=overlap)
    from .deblur import deblur_files

    _set_threads(threads)
    for folder in deblur_files(files, checkpoint, out, video=video, device=device, tile=tile, overlap=overlap):
        click.echo(str(folder))
