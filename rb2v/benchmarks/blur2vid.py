"""``rb2v bench blur2vid``: the shape of the paper's Table 2 (per-frame pPSNR x0 ... x6) on the CPU.

One run, one dataset, one training budget per model, seeds fixed:

1. Videos (``--input``, or made here): folders of consecutive frames at 120 fps. Made here: a
   virtual camera panning over real images (the 12 Middlebury scenes, scikit-image's photographs
   and a frame of the real street video ``img_seq``; 1.5-6 px per frame, 96x96), a still camera on
   each training image while objects cross it (``--still-takes``), plus three crops of the real
   street video itself (static camera, moving cars and people).
2. ``rb2v synth-reds --fps 120`` over them (4 real + 3 interpolated frames per sample, 19-sub-frame
   blur). Sequences are disjoint between train and test; test = the videos of ``TEST_SOURCES``.
3. HyperCUT: ``--hypercut CKPT``, else the bundled checkpoint trained on this training split with
   ``DIRECTION_RECIPE`` (tests/fixtures/hypercut/direction.pt), else one trained here with it; then
   ``rb2v order``.
4. ``train-blur2vid`` with the naive, order-invariant and hypercut losses (same seed, network,
   crops, steps; hypercut at alpha 0, the best measured, and at the paper's 0.2), then
   ``eval-blur2vid --hypercut`` of each on the test split; its per-video figures give the table of
   the moving-camera test videos alone and the border frames per test source (``by_source_table``).
5. ``--control`` (default): the hypercut loss on labels from the classical ordering, which follow
   the motion (``classical_control``); ``--alpha-sweep``: the hypercut loss with alpha also in
   {0.1, 0.3} (paper, Table 6).

Every step resumes: finished data, labels and runs in ``--work`` are reused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from functools import partial
from pathlib import Path

import click
import numpy as np

from . import ROOT, scratch_folder, street_frames
from .hypercut import RECIPE

SHARED = ROOT / ".." / "shared" / "data"
# HyperCUT with the direction prior, trained on this benchmark's training split (DIRECTION_RECIPE;
# tests/fixtures/hypercut/README.md says how): its labels follow the motion's direction, which
# blur2vid can learn; the paper's losses alone gave labels at chance against it (README, #15)
BUNDLED_HYPERCUT = ROOT / "tests" / "fixtures" / "hypercut" / "direction.pt"
TEST_SOURCES = ("coffee", "camera", "hubble_deep_field", "street")
STATIC_SOURCES = ("street",)  # the still-camera test videos
STILL_PREFIX = "still_"  # still-camera training videos: a training photo with objects crossing it
SPEED = (1.5, 6.0)  # px per 120-fps frame: a 7-frame (6/240 s) blur of 4.5-18 px, as HyperCUT was trained on
SIZE = 96
ALPHAS = (0.0, 0.1, 0.2, 0.3)
EVAL_FIGURES = 2  # bump when eval-blur2vid writes figures this bench prints (2: motion_true_px, by_subject)
MAIN = "hypercut (alpha 0)"  # the best measured: R_hyp (alpha 0.2) cost 0.15-2.86 dB on the border frames
PAPER_ALPHA = "hypercut (alpha 0.2)"
# HyperCUT's recipe (rb2v bench hypercut) with the direction prior; measured on an H200: labels a
# direction rule gives alike for 95.2 % of the moving test sequences (shuffled: 61.6 %)
DIRECTION_RECIPE = {**RECIPE, "epochs": 10, "direction_weight": 10.0}
CONTROL = "hypercut loss, classical labels (alpha 0)"
NAME_WIDTH = len(CONTROL) + 2  # the first column of the tables
HEADER = f"{'pPSNR (dB)':<{NAME_WIDTH}}" + "".join(f"{f'x{k}':>7}" for k in range(7)) + f"{'mean':>8}"
PAPER = "paper, Table 2 (REDS): the gain of hypercut over the others grows toward the border frames"


def make_videos(out: Path, takes: int, frames: int, seed: int = 0, still_takes: int = 1) -> Path:
    """Image-folder videos at 120 fps (see the module docstring); return ``out``."""
    from hypercut_models.synthetic import (
        PHOTOS,
        folder_photos,
        load_photo,
        render_photo_take,
        render_static_take,
        video_takes,
    )
    from rb2v.io.images import read_image, write_image

    from ..progress import say

    sources: list[tuple[str, np.ndarray]] = [(name, load_photo(name)) for name in PHOTOS]
    shared = SHARED.resolve()
    if (shared / "middlebury" / "input").is_dir():
        sources += [(name, read_image(p)) for name, p in folder_photos(shared / "middlebury" / "input")]
    street_files = street_frames()
    if not (shared / "middlebury").is_dir():
        say(f"note: {shared} not found: only scikit-image's photos and the repository's street frames are used")
    sources.append(("img_seq", read_image(street_files[len(street_files) // 2])))

    def take(name: str, t: int, render) -> None:
        """The video ``<name>-<t>``, frames ``render(rng)`` seeded by (seed, name, t), unless complete."""
        folder = out / f"{name}-{t:02d}"
        if not (folder / f"{frames - 1:05d}.png").exists():
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), t])
            for i, frame in enumerate(render(rng)):
                write_image(folder / f"{i:05d}.png", frame)

    for name, photo in sources:
        for t in range(takes):
            take(name, t, partial(render_photo_take, photo, frames, SIZE, speed=SPEED))
    # still-camera takes of the training photos, objects crossing them: the test split's street
    # video has a still camera; trained on pans alone, naive was 0.52/0.42 dB under the floor on
    # the whole test split's border frames, with them 0.05/0.07 above
    train_photos = [(name, photo) for name, photo in sources if name not in TEST_SOURCES]
    for name, photo in train_photos:
        others = [p for n, p in train_photos if n != name]
        for t in range(still_takes):
            take(f"{STILL_PREFIX}{name}", t, partial(render_static_take, photo, others, frames, SIZE, speed=SPEED))
    for t, stream in enumerate(video_takes(street_files[0].parent, SIZE)):
        folder = out / f"street-{t:02d}"
        if not (folder / f"{len(stream) - 1:05d}.png").exists():
            for i, frame in enumerate(stream):
                write_image(folder / f"{i:05d}.png", frame)
    return out


CLASSICAL = "classical: phase-correlation shift of (x0, x6) on the axis at 0.3 rad"


def linked_copy(manifest: Path, copy: Path) -> None:
    """``manifest`` copied to ``copy``, beside links to the folders of its dataset (the samples)."""
    import shutil

    copy.parent.mkdir(parents=True, exist_ok=True)
    for entry in manifest.parent.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and not (copy.parent / entry.name).exists():
            (copy.parent / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    shutil.copy2(manifest, copy)


def classical_control(manifest: Path, out: Path) -> Path:
    """The dataset again (its samples linked, not copied), ordered by the classical ordering of
    ``rb2v bench hypercut`` instead of HyperCUT: a label that follows the motion's direction, which
    a blur2vid network can learn from a blurry crop. Trained with the hypercut loss at alpha 0,
    it separates what the labels' learnability costs from what the network and budget cost."""
    from hypercut_models.data import SequenceDataset
    from hypercut_models.evaluate import write_labels
    from rb2v.manifest import ORDER_KEY, read_manifest

    from .hypercut import phase_correlation_scores

    copy = out / manifest.name
    if copy.exists() and CLASSICAL in read_manifest(copy).attrs["metadata"].get(ORDER_KEY, ""):
        return copy
    linked_copy(manifest, copy)
    data = SequenceDataset(copy, split=None)
    scores = [phase_correlation_scores(data[i][0].numpy().transpose(0, 2, 3, 1))[0][0] for i in range(len(data))]
    labels = np.where(np.array(scores) < 0, "ignore", "reverse")
    write_labels(copy, dict(zip(data.rows["sample_id"], labels)), CLASSICAL)
    return copy


def by_source_table(results: dict) -> str:
    """pPSNR of the border frames (mean of x0 and x6) per test source video, pooled over its crops:
    where each model gains or loses against the blurry input; then how far the picture moves from x0
    to x6 in the ground truth and in each model's predictions."""
    from hypercut_models.blur2vid.metrics import pooled

    by_subject = results["naive"]["by_subject"]
    sources: dict[str, list[str]] = {}
    for subject in by_subject:
        sources.setdefault(source_of(subject), []).append(subject)
    width = max(10, *map(len, sources)) + 2
    lines = [""]

    def block(title: str, reference: str, reference_key: str, key: str, value) -> None:
        """A header of sources, then ``reference`` (from the naive run's ``reference_key``) and each
        model's ``key``, pooled per source; ``value`` turns a pooled figure into the cell."""
        lines.append(f"{title:<{NAME_WIDTH}}" + "".join(f"{s:>{width}}" for s in sources))
        for name in [reference, *results]:
            r = results["naive" if name == reference else name]["by_subject"]
            k = reference_key if name == reference else key
            cells = [value(pooled(r, subs)[k]) for subs in sources.values()]
            lines.append(f"{name:<{NAME_WIDTH}}" + "".join(f"{v:>{width}.2f}" for v in cells))

    border = "border frames (x0+x6)/2, dB"
    block(border, "blurry input", "baseline_ppsnr", "ppsnr", lambda v: np.mean(np.array(v)[[0, 6]]))
    if all("motion_true_px" in r for r in by_subject.values()):  # how far the picture moves x0 -> x6
        block("motion x0 -> x6, px", "ground truth", "motion_true_px", "motion_predicted_px", float)
    samples = ", ".join(f"{s} {pooled(by_subject, subs)['samples']}" for s, subs in sources.items())
    lines.append(f"(test samples per source: {samples})")
    return "\n".join(lines)


def slug(name: str) -> str:
    """A run's name as a folder (and log) name."""
    return name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")


def source_of(subject: str) -> str:
    return subject.rsplit("-", 1)[0]


def rb2v(*args: str) -> None:
    """Run an rb2v command as a user would (a separate process); stop the benchmark if it fails."""
    proc = subprocess.run([sys.executable, "-m", "rb2v", *map(str, args)])
    if proc.returncode != 0:
        raise click.ClickException(f"rb2v {args[0]} failed (exit {proc.returncode})")


def train_args(manifest: Path, out: Path, loss: str, epochs: int, threads: int, seed: int, **extra) -> list | None:
    """The ``train-blur2vid`` arguments that start or finish one run; None when it is complete."""
    from hypercut_models.blur2vid.checkpoint import load_checkpoint

    args = ["train-blur2vid", "--manifest", manifest, "--out", out, "--epochs", epochs, "--threads", threads]
    args += ["--device", "cpu"]
    if (out / "last.pt").exists():
        return [*args, "--resume"] if load_checkpoint(out)["epoch"] < epochs else None
    args += ["--loss", loss, "--seed", seed]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return args


def run_all(jobs: list[tuple[str, list]], parallel: int, logs: Path) -> None:
    """Run rb2v commands, ``parallel`` at a time, each logging to ``logs/<name>.log``."""
    from ..progress import say

    logs.mkdir(parents=True, exist_ok=True)
    waiting, running = list(jobs), []
    while waiting or running:
        while waiting and len(running) < max(1, parallel):
            name, args = waiting.pop(0)
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 (closed when the process ends)
            say(f"started: rb2v {' '.join(map(str, args[:1]))} ({name}), log {logs / f'{name}.log'}")
            proc = subprocess.Popen([sys.executable, "-m", "rb2v", *map(str, args)], stdout=log, stderr=log)
            running.append((name, proc, log))
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode != 0:
                    raise click.ClickException(f"{name}: failed (exit {proc.returncode}), see {logs / f'{name}.log'}")


def fmt_row(name: str, values, extra: str = "") -> str:
    return f"{name:<{NAME_WIDTH}}" + "".join(f"{v:>7.2f}" for v in values) + f"{np.mean(values):>8.2f}" + extra


@click.command()
@click.option(
    "--work", type=click.Path(file_okay=False), default=None, help="Working folder (default: a new temp one)."
)
@click.option("--input", "input_dir", type=click.Path(file_okay=False), default=None, help="120 fps videos to use.")
@click.option(
    "--hypercut",
    type=click.Path(),
    default=None,
    help="HyperCUT checkpoint (default: the bundled direction-prior one).",
)
@click.option(
    "--epochs", default=20, show_default=True, help="Training epochs per blur2vid model (the budget: 9-15 min each)."
)
@click.option(
    "--takes",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Videos per source image (made videos only).",
)
@click.option(
    "--still-takes",
    default=1,
    show_default=True,
    help="Still-camera training videos per training image, objects crossing it (made videos only).",
)
@click.option(
    "--frames", type=click.IntRange(min=4), default=28, show_default=True, help="Frames per made video (4 per sample)."
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads per training."
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Trainings (and evaluations) run at the same time.",
)
@click.option("--alpha-sweep", is_flag=True, help="Also train the hypercut loss with alpha 0.1 and 0.3.")
@click.option(
    "--control/--no-control",
    default=True,
    show_default=True,
    help="Also train the hypercut loss (alpha 0) on labels from the classical ordering (see classical_control).",
)
def main(work, input_dir, hypercut, epochs, takes, still_takes, frames, threads, seed, jobs, alpha_sweep, control):
    """Per-frame pPSNR of the naive, order-invariant and hypercut losses beside the blurry-input floor."""

    from hypercut_models.blur2vid.checkpoint import load_checkpoint
    from hypercut_models.blur2vid.metrics import pooled
    from rb2v.manifest import read_manifest, update_manifest

    from ..progress import say

    work = scratch_folder(work, "rb2v-bench-blur2vid-", keep=True)  # its table names it
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    videos = Path(input_dir) if input_dir else make_videos(work / "videos", takes, frames, seed, still_takes)
    manifest = work / "reds" / "datasets" / "reds" / "manifest.parquet"
    if not manifest.exists():
        rb2v("synth-reds", "--fps", "120", "--input", videos, "--out", work / "reds", "--no-report")
    df = read_manifest(manifest)
    split = np.where([source_of(s) in TEST_SOURCES for s in df["subject"]], "test", "train")
    if (df["split"].to_numpy() != split).any() and (split == "test").any():
        df["split"] = split
        update_manifest(manifest, df)
    counts = df["split"].value_counts().to_dict()
    say(f"data: {manifest}: {counts.get('train', 0)} train / {counts.get('test', 0)} test samples")

    if hypercut is None:
        if BUNDLED_HYPERCUT.is_file():
            hypercut = BUNDLED_HYPERCUT
        else:
            hypercut = work / "hypercut" / "last.pt"
            if not hypercut.exists():
                recipe = [f"--{k.replace('_', '-')}={v}" for k, v in DIRECTION_RECIPE.items()]
                rb2v("train-hypercut", "--manifest", manifest, "--out", hypercut.parent, "--threads", threads, *recipe)
    from hypercut_models.evaluate import evaluate as eval_hypercut
    from rb2v.manifest import ORDER_KEY

    record = read_manifest(manifest).attrs["metadata"].get(ORDER_KEY)
    if record is None or Path(json.loads(record)["checkpoint"]).resolve() != Path(hypercut).resolve():
        rb2v("order", "--manifest", manifest, "--checkpoint", hypercut, "--workers", "0", "--device", "cpu",
             "--threads", threads)  # fmt: skip
    import torch

    torch.set_num_threads(threads)
    gt_order = eval_hypercut(manifest, hypercut, device="cpu", workers=0)
    from hypercut_models.learnability import evaluate_learnability, summary

    labels = summary(evaluate_learnability(manifest, hypercut, device="cpu"))
    if control:
        from hypercut_models.learnability import classical_side

        classical = evaluate_learnability(manifest, classical_side)
        labels += "\n" + summary(classical, "the control's classical labels, for comparison")

    runs = [("naive", "naive", manifest, {}), ("order-invariant", "order-invariant", manifest, {})]
    runs += [(name, "hypercut", manifest, {"hypercut": hypercut, "alpha": a})
             for name, a in ((MAIN, 0.0), (PAPER_ALPHA, 0.2))]  # fmt: skip
    if alpha_sweep:
        runs += [(f"hypercut (alpha {a:g})", "hypercut", manifest, {"hypercut": hypercut, "alpha": a})
                 for a in ALPHAS if a not in (0.0, 0.2)]  # fmt: skip
    if control:
        control_manifest = classical_control(manifest, work / "classical")
        runs.append((CONTROL, "hypercut", control_manifest, {"hypercut": hypercut, "alpha": 0.0}))
    manifests = {name: m for name, _, m, _ in runs}
    folders = {name: work / "runs" / slug(name) for name, _, _, _ in runs}
    trainings = [(name, train_args(m, folders[name], loss, epochs, threads, seed, **extra))
                 for name, loss, m, extra in runs]  # fmt: skip
    run_all([(slug(n), a) for n, a in trainings if a is not None], jobs, work / "logs")
    # a run trained further, or scored before eval-blur2vid wrote the figures printed here, is scored again
    cache = f"eval-{epochs}epochs-v{EVAL_FIGURES}.json"
    todo = [
        (f"eval-{slug(name)}", ["eval-blur2vid", "--manifest", manifests[name], "--checkpoint", folders[name],
         "--json", folders[name] / cache, "--device", "cpu", "--threads", threads, "--hypercut", hypercut])
        for name in folders
        if not (folders[name] / cache).exists()
    ]  # fmt: skip
    run_all(todo, jobs, work / "logs")
    results = {name: json.loads((folders[name] / cache).read_text()) for name in folders}
    seconds = {name: sum(r["seconds"] for r in load_checkpoint(folders[name])["history"]) for name in folders}
    # the panning test videos alone, pooled from each run's per-video figures
    subjects = list(results["naive"]["by_subject"])
    moving = [s for s in subjects if source_of(s) not in STATIC_SOURCES]
    on_moving = {}
    if moving and len(moving) < len(subjects):
        on_moving = {name: pooled(r["by_subject"], moving) for name, r in results.items()}

    first = results["naive"]
    click.echo(
        f"\nblur2vid, synth-reds 120 fps, {first['samples']} test samples of unseen videos; each model: {epochs} "
        f"epochs of the small network on 64x64 crops, CPU, {threads} thread(s); HyperCUT: {hypercut}"
    )
    click.echo(
        f"HyperCUT on the ground-truth test sequences: hit {100 * gt_order['hit']:.2f} %, "
        f"con@3 {100 * gt_order['con@3']:.2f} %"
    )
    click.echo(labels)
    click.echo(HEADER + f"{'pSSIM':>8}{'con@3':>8}{'train s':>9}")
    click.echo(fmt_row("blurry input", first["baseline_ppsnr"]))
    for name, r in results.items():
        extra = f"{r['pssim_mean']:>8.4f}{100 * r['con@3']:>7.1f}%{seconds[name]:>9.0f}"
        click.echo(fmt_row(name, r["ppsnr"], extra))
    if on_moving:
        click.echo(
            f"\nthe {on_moving['naive']['samples']} test samples of moving-camera videos only (without "
            f"{', '.join(STATIC_SOURCES)}):"
        )
        click.echo(HEADER)
        click.echo(fmt_row("blurry input", on_moving["naive"]["baseline_ppsnr"]))
        for name, r in on_moving.items():
            click.echo(fmt_row(name, r["ppsnr"]))
    click.echo(by_source_table(results))
    base = np.array(first["baseline_ppsnr"])
    hc, nv, oi = (np.array(results[n]["ppsnr"]) for n in (MAIN, "naive", "order-invariant"))
    border = [0, 6]
    click.echo("\ntargets (border frames x0, x6; measured):")
    click.echo(f"  hypercut - naive           {', '.join(f'{v:+.2f}' for v in (hc - nv)[border])} dB (target >= +1.0)")
    click.echo(f"  hypercut - order-invariant {', '.join(f'{v:+.2f}' for v in (hc - oi)[border])} dB (target >= +0.3)")
    for name in ("naive", "order-invariant", MAIN):
        gain = (np.array(results[name]["ppsnr"]) - base)[border]
        click.echo(f"  {name} - blurry input {', '.join(f'{v:+.2f}' for v in gain)} dB (target >= +1.0)")
    click.echo(
        f"  p̄PSNR: hypercut {hc.mean():.2f}, naive {nv.mean():.2f}, order-invariant {oi.mean():.2f} dB "
        "(target: hypercut highest)"
    )
    gain_by_distance = [float(np.mean((hc - np.maximum(nv, oi))[[3 - d, 3 + d]])) for d in range(4)]
    click.echo(
        "  gain of hypercut over the better other, by distance from the middle frame (0..3): "
        + ", ".join(f"{g:+.2f}" for g in gain_by_distance)
        + " dB (paper: grows toward the border)"
    )
    click.echo(f"  con@3 of the hypercut model's predictions: {100 * results[MAIN]['con@3']:.1f} % "
               "(target >= 90 %)")  # fmt: skip
    if control:
        tables = (("whole test split", results), ("moving-camera test videos", on_moving))
        for label, table in [(label, table) for label, table in tables if table]:
            ppsnr = {name: np.array(r["ppsnr"]) for name, r in table.items()}
            gain = (ppsnr[CONTROL] - ppsnr["naive"])[border]
            hyper = (ppsnr[MAIN] - ppsnr["naive"])[border]
            floor = (ppsnr[CONTROL] - np.array(table["naive"]["baseline_ppsnr"]))[border]
            click.echo(
                f"  control (hypercut loss, classical labels that follow the motion, alpha 0), {label}: - naive "
                f"{', '.join(f'{v:+.2f}' for v in gain)} dB on x0, x6 (with HyperCUT's labels: "
                f"{', '.join(f'{v:+.2f}' for v in hyper)}); - blurry input {', '.join(f'{v:+.2f}' for v in floor)} dB"
            )
    click.echo(f"{PAPER}\nwork: {work} ({time.perf_counter() - t_all:.0f} s wall this call)")
