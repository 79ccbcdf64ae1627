"""blur2vid training/evaluation data over an rb2v manifest: the blurry frame and its 7 sharp frames.

Item i -> (blur (3, h, w), frames (7, 3, h, w), i), float32 in [0, 1]. With ``ordered=True`` the 7
frames of a sample labelled "reverse" by ``rb2v order`` come reversed in time (the hypercut loss
trains on the labelled order). With ``flows=True`` a fourth item follows: the flow targets
(7, 2, h, w) of those frames, in that order (``flow_targets``). Crops depend only on (seed, epoch,
index), like the HyperCUT data, so a resumed run sees exactly the crops of an uninterrupted one.
There are no flips: a mirrored sequence can fall on the other side of the HyperCUT hyperplane than
its label says.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from torch.utils.data import Dataset

from rb2v.errors import Rb2vError
from rb2v.interpolation.flow import optical_flow
from rb2v.io.images import read_image
from rb2v.manifest import ORDER_KEY, read_manifest

from ..data import manifest_dir
from ..losses import FRAMES_PER_SEQ
from .losses import MIDDLE


def check_ordered(df) -> None:
    """Refuse a manifest whose order labels ``rb2v order`` never computed."""
    meta = df.attrs.get("metadata", {})
    if ORDER_KEY in meta or (df["order"] == "reverse").any():
        return
    raise Rb2vError(
        f"{df.attrs['path']}: its order labels were never computed (all 'ignore', no {ORDER_KEY!r} "
        "record): run `rb2v order --manifest M --checkpoint HYPERCUT` first"
    )


def order_record(df) -> dict | None:
    raw = df.attrs.get("metadata", {}).get(ORDER_KEY)
    return json.loads(raw) if raw else None


def flow_targets(frames: np.ndarray) -> np.ndarray:
    """(7, h, w, 3) frames in [0, 1] -> (7, 2, h, w) float32: flow_k such that x_k(p) ~ x_3(p + flow_k(p))
    (DIS from x_k to the middle frame; zero for x_3). The blurry image is x_3's exposure, so sampling
    it at p + flow_k(p) moves it to where x_k is, which is what the network's warp head does."""
    out = np.zeros((len(frames), 2, *frames.shape[1:3]), np.float32)
    for k in range(len(frames)):
        if k != MIDDLE:
            out[k] = optical_flow(frames[k], frames[MIDDLE]).transpose(2, 0, 1)
    return out


class BlurSequenceDataset(Dataset):
    def __init__(
        self,
        manifest,
        split: str | None = "train",
        crop: int | None = None,
        seed: int = 0,
        ordered=False,
        flows: bool = False,
    ):
        df = read_manifest(manifest)
        self.manifest = df.attrs["path"]
        root = manifest_dir(df)
        if ordered:
            check_ordered(df)
        if split is not None:
            df = df[df["split"] == split]
        if df.empty:
            raise Rb2vError(f"{self.manifest}: no {f'{split!r} ' if split else ''}samples in the manifest")
        self.rows = df.reset_index(drop=True)
        self.blur_paths = [root / p for p in self.rows["blur_path"]]
        self.sharp_paths = [[root / p for p in ps] for ps in self.rows["sharp_paths"]]
        bad = [i for i, ps in enumerate(self.sharp_paths) if len(ps) != FRAMES_PER_SEQ]
        if bad:
            raise Rb2vError(f"{self.manifest}: sample {self.rows['sample_id'][bad[0]]} does not have 7 sharp frames")
        missing = [
            p for i in range(len(self.rows)) for p in [self.blur_paths[i], *self.sharp_paths[i]] if not p.is_file()
        ]
        if missing:
            raise Rb2vError(f"{missing[0]}: image listed in {self.manifest} not found ({len(missing)} missing in all)")
        self.reverse = (self.rows["order"] == "reverse").to_numpy() if ordered else np.zeros(len(self.rows), bool)
        self.smallest = smallest = int(min(self.rows["width"].min(), self.rows["height"].min()))  # a frame's side
        if crop is not None and crop > smallest:
            raise Rb2vError(f"crop {crop} is larger than the smallest frame side ({smallest}) of {self.manifest}")
        self.crop, self.seed, self.epoch = crop, seed, 0
        self.flows = flows

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def uniform_size(self) -> bool:
        return self.crop is not None or (self.rows["width"].nunique() == 1 and self.rows["height"].nunique() == 1)

    def __getitem__(self, index: int):
        blur = read_image(self.blur_paths[index])
        frames = np.stack([read_image(p) for p in self.sharp_paths[index]])
        if frames.shape[1:] != blur.shape:
            raise Rb2vError(f"{self.blur_paths[index]}: the blurry frame and its sharp frames differ in size")
        if self.reverse[index]:
            frames = frames[::-1]
        if self.crop is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            h, w = blur.shape[:2]
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            blur = blur[y : y + self.crop, x : x + self.crop]
            frames = frames[:, y : y + self.crop, x : x + self.crop]
        blur_t = torch.from_numpy(np.ascontiguousarray(blur.transpose(2, 0, 1)))
        frames_t = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))
        if self.flows:
            return blur_t, frames_t, index, torch.from_numpy(flow_targets(frames))
        return blur_t, frames_t, index
