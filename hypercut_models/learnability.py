"""Can blur2vid learn a HyperCUT's order labels from the blurry image? Three checks of the labels.

A blurry image shows its content and the axis of its motion, never the motion's direction.
blur2vid trained with the hypercut loss has to reproduce the labelled order from the blurry image
alone, so the label (the side of h(H(x_0, x_6))) must follow from what that image shows: the
motion's axis under a fixed convention, not appearance changes between x_0 and x_6 that a blurry
image averages away. The side ``>= 0`` is the label "reverse", as in ``evaluate.write_orders``.

* **rotation flip**: a sequence turned by 180 degrees shows the turned content moving the
  opposite way. A side that follows the motion flips; one read from what changes between x_0 and
  x_6 in appearance (brightness, what enters the frame) does not. 1.0 for a motion rule.
* **crop agreement**: the side of each corner crop (``crop`` px) against the whole frame's.
  blur2vid learns on crops, and a crop carries its whole frame's label.
* **direction agreement**: the global shift of x_0 -> x_6 by phase correlation gives a motion
  direction for sequences that move (more than ``min_shift`` px); the share of them that the best
  direction rule (label = which side of a line through the origin the direction falls on, the line
  chosen to fit best) labels alike. 1.0 when the label is such a rule (what a blurry image's axis and
  a fixed convention decide). Labels unrelated to the direction score above 0.5 because the line is
  fitted, the more so the fewer the sequences: the same labels shuffled over the sequences give that
  chance level (``direction_chance``, mean of ``SHUFFLES`` seeded shuffles). Only meaningful where
  the whole frame moves (a panning camera).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from rb2v.progress import progress

SHUFFLES = 20
MOTION_AXIS = 0.3  # radians: the classical ordering's fixed axis
MIN_SHIFT = 1.0  # px: a sequence whose whole frame moves less from x_0 to x_6 has no direction here
SideFn = Callable[[torch.Tensor], torch.Tensor]  # (B, 7, 3, H, W) in [0, 1] -> (B,) scores of the (0, 6) pair


def global_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(dx, dy): the global shift from grey frame ``a`` to ``b`` (float32, H x W) by phase correlation."""
    import cv2

    window = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    return np.array(cv2.phaseCorrelate(a, b, window)[0])


def projected_shift(grey_a: np.ndarray, grey_b: np.ndarray, axis: float = MOTION_AXIS) -> float:
    """The global shift from ``grey_a`` to ``grey_b`` projected on the unit vector at ``axis`` radians."""
    return float(np.dot(global_shift(grey_a, grey_b), [np.cos(axis), np.sin(axis)]))


def classical_side(frames: Iterable[torch.Tensor]) -> torch.Tensor:
    """The classical ordering's (0, 6) score of each (7, 3, H, W) sequence of a batch, as a
    ``SideFn``: the x_0 -> x_6 global shift projected on ``MOTION_AXIS``. A direction rule (its
    sign follows the motion under one fixed convention), so blur2vid can learn it from the blurry
    image's axis; the HyperCUT direction prior (``losses.direction_loss``) trains toward it."""
    ends = [f[[0, -1]].numpy().mean(axis=1).astype(np.float32) for f in frames]
    return torch.tensor([projected_shift(a, b) for a, b in ends], dtype=torch.float64)


def motion_direction(frames: torch.Tensor) -> tuple[float, float]:
    """(angle in degrees [0, 360), length in px) of the x_0 -> x_6 global shift of one (7, 3, H, W) sequence."""
    grey = frames[[0, -1]].mean(dim=1).numpy().astype(np.float32)
    dx, dy = global_shift(grey[0], grey[1])
    return float(np.degrees(np.arctan2(dy, dx)) % 360), float(np.hypot(dx, dy))


def direction_agreement(labels: np.ndarray, angles: np.ndarray) -> float:
    """The share of labels that the best-fitting direction rule gives alike (module docstring); the
    line is searched in 1-degree steps. ``angles`` in degrees; at least one label."""
    labels = np.asarray(labels, bool)
    normals = np.radians(np.arange(180))[:, None]  # the rule: cos(angle - normal) >= 0, either polarity
    rule = np.cos(np.radians(np.asarray(angles, np.float64))[None] - normals) >= 0
    same = (rule == labels[None]).mean(axis=1)
    return float(np.maximum(same, 1 - same).max())


def corner_crops(frames: torch.Tensor, side: int) -> torch.Tensor:
    """The four corner crops (4, 7, 3, c, c) of one (7, 3, H, W) sequence, c = min(side, H, W)."""
    h, w = frames.shape[-2:]
    c = min(side, h, w)
    return torch.stack([frames[..., y : y + c, x : x + c] for y in (0, h - c) for x in (0, w - c)])


@torch.no_grad()
def learnability(
    side_fn: SideFn,
    sequences: Iterable[torch.Tensor],
    crop: int = 64,
    min_shift: float = MIN_SHIFT,
    total: int | None = None,
) -> dict:
    """The three checks (module docstring) of a labelling ``side_fn`` over (7, 3, H, W) sequences."""
    flips, crops, labels, angles = [], [], [], []
    for frames in progress(sequences, total=total, desc="learnability", unit="seq"):
        whole, turned = side_fn(torch.stack([frames, frames.flip(-1).flip(-2)])).tolist()
        parts = side_fn(corner_crops(frames, crop))
        flips.append((whole >= 0) != (turned >= 0))
        crops.append(((parts >= 0) == (whole >= 0)).numpy())
        angle, length = motion_direction(frames)
        if length > min_shift:
            labels.append(whole >= 0)
            angles.append(angle)
    crops = np.stack(crops)
    labels, angles = np.array(labels, bool), np.array(angles)
    agreement = chance = None  # nothing moves: no direction to compare with (e.g. a static camera)
    if len(labels):
        rng = np.random.default_rng(0)
        agreement = direction_agreement(labels, angles)
        chance = float(np.mean([direction_agreement(rng.permutation(labels), angles) for _ in range(SHUFFLES)]))
    return {
        "sequences": len(flips),
        "rotation_flip": float(np.mean(flips)),
        "crop_agreement": float(crops.mean()),
        "crop_all_four": float(crops.all(axis=1).mean()),
        "crop": crop,
        "direction_agreement": agreement,
        "direction_chance": chance,
        "moving_sequences": len(labels),
        "min_shift": min_shift,
    }


def checkpoint_side(checkpoint: str | Path, device: torch.device) -> SideFn:
    """The (0, 6) pair's score under a HyperCUT checkpoint, as a ``SideFn``."""
    from .checkpoint import load_model
    from .losses import pair_scores

    net, plane, _ = load_model(checkpoint)
    net, plane = net.to(device).eval(), plane.to(device)

    def side(frames: torch.Tensor) -> torch.Tensor:
        return pair_scores(net, plane, frames.to(device), with_reverse=False)[0][:, 0].float().cpu()

    return side


def evaluate_learnability(
    manifest: str | Path, labelling: str | Path | SideFn, *, split: str = "test", device: str = "auto", crop: int = 64
) -> dict:
    """``learnability`` of a labelling on one split of a manifest (whole frames): a HyperCUT
    checkpoint's (a path), or any ``SideFn`` (e.g. a classical ordering)."""
    from rb2v.device import resolve_device

    from .data import SequenceDataset

    data = SequenceDataset(manifest, split)
    side = labelling if callable(labelling) else checkpoint_side(labelling, resolve_device(device))
    return {"split": split, **learnability(side, (data[i][0] for i in range(len(data))), crop, total=len(data))}


def summary(result: dict, title: str = "learnability of the labels") -> str:
    """The checks in words, one line each, under ``title``."""
    moving = f"{result['moving_sequences']} sequences moving > {result['min_shift']:g} px"
    if result["direction_agreement"] is None:
        direction = f"  direction: not measured, no sequence moves > {result['min_shift']:g} px as a whole"
    else:
        direction = (
            f"  labels a direction rule gives alike: {100 * result['direction_agreement']:.1f} % of the {moving} "
            f"(a direction rule: 100 %; the same labels shuffled: {100 * result['direction_chance']:.1f} %)"
        )
    return "\n".join(
        [
            f"{title} ({result['split']} split, {result['sequences']} sequences):",
            f"  side flips under a 180-degree turn: {100 * result['rotation_flip']:.1f} % (a motion rule: 100 %)",
            f"  {result['crop']} px corner crops on the whole frame's side: {100 * result['crop_agreement']:.1f} % "
            f"(all four: {100 * result['crop_all_four']:.1f} % of the sequences)",
            direction,
        ]
    )
