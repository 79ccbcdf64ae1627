"""Training/evaluation data over an rb2v manifest: the 7 sharp frames of each sample.

Random crops and flips are drawn from a generator seeded by (seed, epoch, sample index), so a
sample's augmentation depends neither on the worker that loads it nor on where a run was
resumed. A flip (horizontal or vertical) or a transposition (of square crops) is applied to all 7
frames alike: it mirrors or turns the motion but keeps the temporal order, so the pair/reverse
labels stay right.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rb2v.errors import Rb2vError
from rb2v.io.images import read_image
from rb2v.manifest import FRAMES_PER_SEQ, read_manifest

from .network import MIN_SIDE


def manifest_dir(df) -> Path:
    return Path(df.attrs["path"]).parent


class SequenceDataset(Dataset):
    """Item i -> (frames (7, 3, h, w) float32 in [0, 1], i)."""

    def __init__(
        self,
        manifest: str | Path,
        split: str | None = "train",
        crop: int | None = None,
        flips: bool = False,
        seed: int = 0,
    ):
        df = read_manifest(manifest)
        self.manifest = df.attrs["path"]
        self.root = manifest_dir(df)
        if split is not None:
            df = df[df["split"] == split]
        if df.empty:
            what = f"no '{split}' samples" if split else "no samples"
            raise Rb2vError(f"{self.manifest}: {what} in the manifest")
        self.rows = df.reset_index(drop=True)
        self.paths = [[self.root / p for p in paths] for paths in self.rows["sharp_paths"]]
        bad = [i for i, p in enumerate(self.paths) if len(p) != FRAMES_PER_SEQ]
        if bad:
            raise Rb2vError(
                f"{self.manifest}: sample {self.rows['sample_id'][bad[0]]} has "
                f"{len(self.paths[bad[0]])} sharp frames, expected {FRAMES_PER_SEQ}"
            )
        missing = [p for paths in self.paths for p in paths if not p.is_file()]
        if missing:
            raise Rb2vError(f"{missing[0]}: image listed in {self.manifest} not found ({len(missing)} missing in all)")
        self.smallest = smallest = int(min(self.rows["width"].min(), self.rows["height"].min()))  # a frame's side
        side = smallest if crop is None else min(crop, smallest)  # a crop of 0 is not "no crop"
        if side < MIN_SIDE:  # the crop asked for, or the data's frames: the message blames the right one
            asked = crop is not None and crop < smallest
            what = f"--crop {crop}" if asked else f"{self.manifest}: frames of side {side}"
            raise Rb2vError(f"{what}: too small for HyperCUT (sides of at least {MIN_SIDE} px)")
        if crop is not None and crop > smallest:
            raise Rb2vError(f"crop {crop} is larger than the smallest frame side ({smallest}) of {self.manifest}")
        self.crop, self.flips, self.seed, self.epoch = crop, flips, seed, 0

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def uniform_size(self) -> bool:
        return self.crop is not None or (self.rows["width"].nunique() == 1 and self.rows["height"].nunique() == 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        frames = np.stack([read_image(p) for p in self.paths[index]])  # (7, H, W, 3)
        if len({f.shape for f in frames}) != 1:
            raise Rb2vError(f"{self.paths[index][0].parent}: the 7 frames differ in size")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.crop is not None:
            h, w = frames.shape[1:3]
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            frames = frames[:, y : y + self.crop, x : x + self.crop]
        if self.flips:
            if rng.random() < 0.5:
                frames = frames[:, :, ::-1]
            if rng.random() < 0.5:
                frames = frames[:, ::-1]
            if self.crop is not None and rng.random() < 0.5:  # with the flips: the 8 right-angle views
                frames = frames.transpose(0, 2, 1, 3)
        tensor = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        return tensor, index


def _seed_worker(worker_id: int) -> None:
    # torch already seeds each worker from the loader's generator; numpy and random follow it
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: SequenceDataset,
    *,
    batch_size: int,
    shuffle: bool,
    workers: int,
    device: torch.device,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=_seed_worker if workers > 0 else None,
        persistent_workers=False,
    )


def iterate(loader: DataLoader):
    """Iterate a loader; a user error raised in a worker comes back as one clean line."""
    it = iter(loader)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return
        except Rb2vError as e:
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            last = lines[-1] if lines else str(e)
            raise Rb2vError(last.split("Rb2vError: ", 1)[-1]) from None


def default_workers() -> int:
    import os

    return max(0, min(4, (os.cpu_count() or 1) - 1))
