"""The fixed random hyperplane h, the HyperCUT losses, and the R_hyp regulariser.

Conventions (used by training, the metrics, ``rb2v order`` and R_hyp alike):

* ``h(v) = w . v + b`` with ``w ~ U[-1, 1]^n`` and ``b ~ U[-1, 1]`` drawn once from a seeded
  generator and stored in the checkpoint (the official code draws the same distribution but
  computes ``v . (w + b)``, adding the bias to every coefficient; we use the affine form of the
  paper's hyperplane).
* A sequence of N = 7 frames gives the symmetric pairs (x_0, x_6), (x_1, x_5), (x_2, x_4);
  ``score`` is h(H(x_k, x_{N-1-k})) and ``reverse score`` is h(H(x_{N-1-k}, x_k)).
* A score < 0 is the *negative* side, >= 0 the positive side. The canonical time order (the one
  ``rb2v order`` keeps, label "ignore") is the one whose (x_0, x_6) score is negative; R_hyp
  pushes a blur2vid model's predicted sequences to that side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rb2v.manifest import FRAMES_PER_SEQ

from .learnability import MIN_SHIFT
from .network import HyperCUTNet

PAIRS = ((0, 6), (1, 5), (2, 4))


class Hyperplane(nn.Module):
    """h(v) = w . v + b, fixed (buffers, never trained), reproducible from its seed."""

    def __init__(self, dim: int = 128, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        coeffs = torch.rand(dim + 1, generator=g, dtype=torch.float64) * 2 - 1
        self.seed = seed
        self.register_buffer("weight", coeffs[:dim].float())
        self.register_buffer("bias", coeffs[dim].float())

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v.float() @ self.weight + self.bias


def pair_scores(
    net: HyperCUTNet, plane: Hyperplane, frames: torch.Tensor, channels_last: bool = False, with_reverse: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores of the three symmetric pairs and of their reverses, each (B, 3).

    ``frames`` is (B, 7, 3, H, W) in [0, 1]; all pairs go through the network as one batch.
    Without ``with_reverse`` only the forward scores are computed (the second item is None).
    """
    if frames.ndim != 5 or frames.shape[1] != FRAMES_PER_SEQ:
        raise ValueError(f"expected (B, {FRAMES_PER_SEQ}, 3, H, W) frames, got {tuple(frames.shape)}")
    b = frames.shape[0]
    order = list(PAIRS) + ([(j, i) for i, j in PAIRS] if with_reverse else [])
    firsts = torch.cat([frames[:, i] for i, _ in order])
    seconds = torch.cat([frames[:, j] for _, j in order])
    if channels_last:
        firsts = firsts.contiguous(memory_format=torch.channels_last)
        seconds = seconds.contiguous(memory_format=torch.channels_last)
    scores = plane(net(firsts, seconds)).view(len(order), b).T  # (B, 3 or 6)
    return scores[:, : len(PAIRS)], (scores[:, len(PAIRS) :] if with_reverse else None)


def order_loss(forward: torch.Tensor, reverse: torch.Tensor) -> torch.Tensor:
    """L_h (Eq. 6): softplus(h(H(x_a, x_b)) * h(H(x_b, x_a))), small when the two differ in sign."""
    return F.softplus(forward * reverse).mean()


def same_side_loss(forward: torch.Tensor) -> torch.Tensor:
    """Consistency of one sequence: softplus(-s_a * s_b) over the pairs of pairs (a, b)."""
    n = forward.shape[1]
    terms = [F.softplus(-forward[:, a] * forward[:, b]) for a in range(n) for b in range(a + 1, n)]
    return torch.stack(terms).mean()


def escape_loss(forward: torch.Tensor, reverse: torch.Tensor) -> torch.Tensor:
    """softplus(-|s - r|): a push apart of a pair's and its reverse's scores that, unlike L_h, has a
    gradient where they are equal. L_h = softplus(s r) is stationary wherever s = r = 0 (and,
    with the same-side terms, wherever s = r = a constant): its gradient there is proportional to
    s - r, so a fresh network, whose pair and reverse score alike, leaves that plateau only as
    fast as a tiny s - r grows. Measured on CPU: 200-1300 steps on the plateau without it. Used
    with a weight that fades to 0 over the first steps of training (``TrainSettings.warmup``)."""
    return F.softplus(-(forward - reverse).abs()).mean()


def direction_loss(forward: torch.Tensor, reverse: torch.Tensor, shift: torch.Tensor, min_shift: float) -> torch.Tensor:
    """The direction prior: each pair's score on the side of the sequence's ``shift`` (the x_0 ->
    x_6 global shift on a fixed axis, ``learnability.classical_side``), its reverse on the other,
    softplus(-s sign(shift)) + softplus(r sign(shift)), over the sequences that move more than
    ``min_shift`` px (0 when none does). L_h accepts any side that flips under time reversal, and
    the network picks one from appearance changes that a blurry image averages away (measured with
    ``rb2v eval-hypercut --learnability``); this term asks for one that a blurry image's motion
    axis decides under one convention, so blur2vid can learn the labels."""
    moving = shift.abs() > min_shift
    if not moving.any():
        return forward.new_zeros(())
    sign = torch.sign(shift[moving]).to(forward.dtype)[:, None]
    return 0.5 * (F.softplus(-forward[moving] * sign).mean() + F.softplus(reverse[moving] * sign).mean())


class HyperCUTLoss(nn.Module):
    """L_h + same_weight * same-side term (the official trainer weighs both equally). The same-side
    term is taken over the forward scores and over the reverse scores: the time-reversed sequence
    is a sequence too (its pairs must agree as well), and its scores are computed anyway for L_h."""

    def __init__(self, same_weight: float = 1.0, direction_weight: float = 0.0, min_shift: float = MIN_SHIFT):
        super().__init__()
        self.same_weight, self.direction_weight, self.min_shift = same_weight, direction_weight, min_shift

    def forward(
        self,
        forward: torch.Tensor,
        reverse: torch.Tensor,
        escape_weight: float = 0.0,
        shift: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``shift`` (B,): the sequences' projected global shifts, needed when ``direction_weight`` > 0."""
        diff = order_loss(forward, reverse)
        same = 0.5 * (same_side_loss(forward) + same_side_loss(reverse))
        total = diff + self.same_weight * same
        if escape_weight > 0:
            total = total + escape_weight * escape_loss(forward, reverse)
        direction = forward.new_zeros(())
        if self.direction_weight > 0:
            direction = direction_loss(forward, reverse, shift, self.min_shift)
            total = total + self.direction_weight * direction
        return {"total": total, "order": diff, "same": same, "direction": direction}


class HyperplaneRegularizer(nn.Module):
    """R_hyp (Eq. 7) for blur2vid training: sum over the symmetric pairs of the *predicted*
    sequence of softplus(h(H(x̂_k, x̂_{N-1-k}))), batch mean. It is small when the prediction lies
    on the canonical (negative) side, so the model stops hesitating between a sequence and its
    reverse. The HyperCUT network is frozen; gradients flow to the predicted frames only.
    From a checkpoint: ``checkpoint.load_regularizer(path)``."""

    def __init__(self, net: HyperCUTNet, plane: Hyperplane):
        super().__init__()
        self.net, self.plane = net.eval(), plane
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> HyperplaneRegularizer:
        super().train(mode)
        self.net.eval()  # frozen: never switches to training behaviour
        return self

    def forward(self, predicted: torch.Tensor) -> torch.Tensor:
        forward, _ = pair_scores(self.net, self.plane, predicted, with_reverse=False)
        return F.softplus(forward).sum(dim=1).mean()
