"""Scoring a manifest with a trained HyperCUT: the ordering metrics and the order labels."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from rb2v.device import resolve_device
from rb2v.fsutil import exclusive
from rb2v.manifest import (
    ORDER_KEY,
    manifest_metadata,
    manifest_path,
    read_manifest,
    write_manifest,
    write_metadata_json,
)
from rb2v.progress import progress

from .checkpoint import load_model
from .data import SequenceDataset, default_workers, iterate, make_loader
from .losses import Hyperplane, pair_scores
from .metrics import ordering_metrics
from .network import HyperCUTNet


@torch.no_grad()
def score_dataset(
    net: HyperCUTNet,
    plane: Hyperplane,
    dataset: SequenceDataset,
    device: torch.device,
    *,
    batch_size: int = 8,
    workers: int | None = None,
    with_reverse: bool = True,
    desc: str = "score",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward (and reverse) scores (S, 3) of every sample, in dataset order."""
    cuda = device.type == "cuda"
    net = net.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format).eval()
    plane = plane.to(device)
    if not dataset.uniform_size():
        batch_size = 1  # frames of different sizes cannot share a batch
    workers = default_workers() if workers is None else workers
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, workers=workers, device=device)
    fwd = np.zeros((len(dataset), 3), np.float64)
    rev = np.zeros((len(dataset), 3), np.float64) if with_reverse else None
    for frames, index in progress(iterate(loader), total=len(loader), desc=desc, unit="batch"):
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            f, r = pair_scores(
                net, plane, frames.to(device, non_blocking=True), channels_last=cuda, with_reverse=with_reverse
            )
        fwd[index.numpy()] = f.float().cpu().numpy()
        if with_reverse:
            rev[index.numpy()] = r.float().cpu().numpy()
    return fwd, rev


def evaluate(
    manifest: str | Path,
    checkpoint: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int = 8,
    workers: int | None = None,
    crop: int | None = None,
) -> dict:
    """hit / con@2 / con@3 (see ``metrics``) of a checkpoint on one split: on full frames, or on a
    seeded (hence repeatable) random crop of side ``crop`` per sample, which is faster."""
    dev = resolve_device(device)
    net, plane, _ = load_model(checkpoint)
    dataset = SequenceDataset(manifest, split, crop=crop)
    t0 = time.perf_counter()
    fwd, rev = score_dataset(net, plane, dataset, dev, batch_size=batch_size, workers=workers, desc=f"eval {split}")
    seconds = time.perf_counter() - t0
    result = ordering_metrics(fwd, rev)
    result.update(
        {
            "split": split,
            "manifest": str(dataset.manifest),
            "checkpoint": str(checkpoint),
            "device": str(dev),
            "seconds": round(seconds, 3),
        }
    )
    return result


def write_orders(
    manifest: str | Path,
    checkpoint: str | Path,
    *,
    device: str = "auto",
    batch_size: int = 8,
    workers: int | None = None,
) -> dict[str, int]:
    """Label every sample: "ignore" when h(H(x_0, x_6)) < 0 (the canonical, negative side: keep the
    order), "reverse" otherwise. Rewrites the manifest's ``order`` column (recording the checkpoint under the
    schema metadata key ``ORDER_KEY``, so blur2vid training can tell computed labels from the
    default "ignore") and ``metadata.json``."""
    dev = resolve_device(device)
    net, plane, _ = load_model(checkpoint)
    # the dataset's lock, as build and synth-reds hold it: during a build its samples come and go (a
    # label run then failed on "image not found" or "manifest not found")
    folder = manifest_path(manifest).parent
    with exclusive(folder, "order") if folder.is_dir() else contextlib.nullcontext():
        dataset = SequenceDataset(manifest, split=None)
        fwd, _ = score_dataset(
            net, plane, dataset, dev, batch_size=batch_size, workers=workers, with_reverse=False, desc="order"
        )
        labels = dict(zip(dataset.rows["sample_id"], np.where(fwd[:, 0] < 0, "ignore", "reverse")))
        return write_labels(dataset.manifest, labels, str(checkpoint))


def write_labels(manifest: str | Path, labels: dict[str, str], source: str) -> dict[str, int]:
    """Write sample_id -> "ignore" | "reverse" into the manifest's ``order`` column and record
    ``source`` (the checkpoint, or another ordering) under ``ORDER_KEY``; return the counts."""
    path = Path(manifest)
    df = read_manifest(path)
    df["order"] = [labels[s] for s in df["sample_id"]]
    counts = {"ignore": int((df["order"] == "ignore").sum()), "reverse": int((df["order"] == "reverse").sum())}
    meta = manifest_metadata(path)
    meta.pop("schema", None)
    meta[ORDER_KEY] = json.dumps({"checkpoint": source, **counts}, sort_keys=True)
    write_manifest(path, df, meta)
    write_metadata_json(path.parent, df)
    return counts
