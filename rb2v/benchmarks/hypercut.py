"""``rb2v bench hypercut``: the HyperCUT accuracy recipe, end to end, next to a classical peer.

Data (``hypercut_models.synthetic``): real photographs filmed by a moving virtual camera — the
bundled scikit-image photos plus the 12 Middlebury scenes — and three crops of a real street video
(``img_seq``), 96x96, 16 takes x 4 samples per photo. Held out (test split, never trained on):
coffee, camera, brick, hubble_deep_field and the street video. Training: ``rb2v train-hypercut``
with the recipe below on the CPU; scoring: ``rb2v eval-hypercut`` on whole frames, with its
checks of whether blur2vid can learn the labels (``--learnability``).

Peer, on the same test split: a classical ordering by global motion. The shift from x_a to x_b
is measured by phase correlation and its side is the sign of its projection on a fixed direction;
a pair and its reverse read opposite shifts, so hit is near 100 % by construction (measured: 5 of
804 pairs missed, all on the static-camera street video, where the global shift is ~0). Its con@3
is the figure to compare: how often the three pairs of a sequence agree when the motion is known
up to measurement noise.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from hypercut_models.learnability import MOTION_AXIS, projected_shift

from . import scratch_folder

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TEST_SUBJECTS = ("coffee", "camera", "brick", "hubble_deep_field", "img_seq")
RECIPE = {"epochs": 8, "final_epochs": 2, "crop": 64, "lr": 3e-4, "same_weight": 3.0, "batch_size": 8, "workers": 0}
PAPER = "hit 94.4-98.7 %, con@3 91.2-96.8 % (Table 3)"


def phase_correlation_scores(frames: np.ndarray, axis: float = MOTION_AXIS) -> tuple[np.ndarray, np.ndarray]:
    """Forward/reverse scores (3,) of one (7, H, W, 3) sequence: the global shift of each symmetric
    pair projected on the unit vector at ``axis`` radians."""
    from hypercut_models.losses import PAIRS

    gray = frames.mean(axis=3).astype(np.float32)
    fwd = np.array([projected_shift(gray[a], gray[b], axis) for a, b in PAIRS])
    rev = np.array([projected_shift(gray[b], gray[a], axis) for a, b in PAIRS])
    return fwd, rev


def classical_metrics(manifest: Path) -> dict:
    from hypercut_models.data import SequenceDataset
    from hypercut_models.metrics import ordering_metrics

    data = SequenceDataset(manifest, "test")
    scores = [phase_correlation_scores(data[i][0].numpy().transpose(0, 2, 3, 1)) for i in range(len(data))]
    return ordering_metrics(np.stack([f for f, _ in scores]), np.stack([r for _, r in scores]))


@click.command()
@click.option(
    "--work",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the dataset and the run (default: a new temporary folder).",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=2, show_default=True, help="torch CPU threads for training."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the training run.")
def main(work, threads, seed):
    """Make the data, train HyperCUT on the CPU with the recipe, score it and the classical peer."""

    from hypercut_models.checkpoint import load_checkpoint
    from hypercut_models.evaluate import evaluate
    from hypercut_models.learnability import evaluate_learnability, summary
    from hypercut_models.synthetic import make_dataset
    from hypercut_models.train import TrainSettings, train

    from ..progress import say

    work = scratch_folder(work, "rb2v-bench-hypercut-", keep=True)
    shared = SHARED.resolve()
    photo_dirs = [shared / "middlebury" / "input"] if (shared / "middlebury" / "input").is_dir() else []
    video_dirs = [shared / "img_seq"] if (shared / "img_seq").is_dir() else []
    if not photo_dirs or not video_dirs:
        say(f"note: {shared} not found: the data is scikit-image's photos only, not the reported set")
    manifest = work / "data" / "manifest.parquet"
    if not manifest.exists():
        t0 = time.perf_counter()
        make_dataset(
            work / "data",
            test_subjects=TEST_SUBJECTS,
            video_dirs=tuple(video_dirs),
            photo_dirs=tuple(photo_dirs),
            takes=16,
            samples=4,
            size=96,
        )
        say(f"data: {manifest} in {time.perf_counter() - t0:.0f} s")
    run = work / f"run-seed{seed}"
    t0 = time.perf_counter()
    last = train(
        TrainSettings(manifest=str(manifest), out=str(run), seed=seed, device="cpu", threads=threads, **RECIPE),
        resume=(run / "last.pt").exists(),
    )
    wall = time.perf_counter() - t0
    history = load_checkpoint(last)["history"]
    train_seconds = sum(row["seconds"] for row in history)
    ours = evaluate(manifest, last, device="cpu", workers=0)
    peer = classical_metrics(manifest)
    click.echo(
        f"\nHyperCUT, {len(history)} epochs on the CPU ({threads} threads): {train_seconds:.0f} s of epochs "
        f"({wall:.0f} s wall this call); test split: {ours['sequences']} sequences of unseen subjects"
    )
    click.echo(f"{'':<34}{'hit':>8}{'con@2':>8}{'con@3':>8}")
    for name, m in (("ours (HyperCUT, whole frames)", ours), ("classical (phase correlation)", peer)):
        click.echo(f"{name:<34}{100 * m['hit']:>7.2f}%{100 * m['con@2']:>7.2f}%{100 * m['con@3']:>7.2f}%")
    click.echo(f"paper: {PAPER}; ours/classical con@3 ratio {ours['con@3'] / max(peer['con@3'], 1e-9):.3f}")
    click.echo(summary(evaluate_learnability(manifest, last, device="cpu")))
    click.echo(f"run: {run}")
