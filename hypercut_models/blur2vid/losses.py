"""The three blur2vid training losses (``--loss naive | order-invariant | hypercut``).

Frames are (B, 7, 3, H, W). The reconstruction terms are per-pixel means of the Charbonnier
penalty ``sqrt(d^2 + eps^2)`` (a smooth L1).

* ``naive``: per frame, against the stored order.
* ``order-invariant``: Jin et al. (CVPR 2018, "Learning to extract a video sequence from a single
  motion-blurred image"): for the symmetric pairs k = 0, 1, 2 the penalty compares
  ``|x'_k + x'_{6-k}|`` with ``|x_k + x_{6-k}|`` and ``|x'_k - x'_{6-k}|`` with ``|x_k - x_{6-k}|``,
  which is the same for a sequence and its reverse; plus a direct term on the middle frame x_3.
  The official HyperCUT code gives the middle frame no loss at all (its pairs stop at k = 2);
  we add it, since x_3 is the same in both orders.
* ``hypercut``: the targets arrive already in the order ``rb2v order`` assigned (the data loader
  reverses the "reverse" samples), the per-frame term, plus ``alpha * R_hyp`` (Eq. 7) of the
  *predicted* sequence under the frozen HyperCUT network and hyperplane. Side convention (the one
  of ``hypercut_models.losses``): the labelled targets lie on the negative side (h < 0), and
  R_hyp = sum_k softplus(h(H(x'_k, x'_{6-k}))) pushes the predictions to that same side.

Each adds ``flow_weight`` times a flow term (Charbonnier, in pixels) between the warp head's flows and
the flow targets of the ground-truth frames (``data.flow_targets``), in the same order as its frame
term: per frame for naive and hypercut, over the same symmetric pairs for order-invariant. It is
supervision only (the network still sees the blurry image alone): photometric errors alone train the
flows slowly, since a motion-blurred image has little gradient along its motion.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import PAIRS, HyperplaneRegularizer

LOSSES = ("naive", "order-invariant", "hypercut")
EPS = 1e-3
MIDDLE = 3


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def naive_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame Charbonnier against the given order."""
    return charbonnier(pred, target)


def order_invariant_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Jin et al.'s symmetric-pair loss + a direct loss on the middle frame (module docstring);
    its value is unchanged when either sequence is reversed in time. Frames or flows (B, 7, C, H, W)."""
    terms = []
    for a, b in PAIRS:
        terms.append(charbonnier((pred[:, a] + pred[:, b]).abs(), (target[:, a] + target[:, b]).abs()))
        terms.append(charbonnier((pred[:, a] - pred[:, b]).abs(), (target[:, a] - target[:, b]).abs()))
    terms.append(charbonnier(pred[:, MIDDLE], target[:, MIDDLE]))
    return torch.stack(terms).mean()


class Blur2VidLoss(nn.Module):
    """``loss(pred, target[, pred_flow, target_flow])``; ``regularizer`` only for "hypercut"."""

    def __init__(
        self,
        kind: str,
        regularizer: HyperplaneRegularizer | None = None,
        alpha: float = 0.0,
        flow_weight: float = 0.0,
    ):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"unknown blur2vid loss {kind!r}: {', '.join(LOSSES)}")
        if kind == "hypercut" and regularizer is None:
            raise ValueError("the hypercut loss needs the HyperCUT regulariser (a HyperCUT checkpoint)")
        self.kind, self.alpha, self.flow_weight = kind, alpha, flow_weight
        self.regularizer = regularizer if kind == "hypercut" else None

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        pred_flow: torch.Tensor | None = None,
        target_flow: torch.Tensor | None = None,
        regularize: bool = True,
    ) -> dict[str, torch.Tensor]:
        """-> {"total", "recon", "hyp", "flow"}; the flow term needs both flows (B, 7, 2, H, W).
        ``regularize=False`` leaves R_hyp out (and its HyperCUT pass: the epochs before ``alpha_from``)."""
        term = order_invariant_loss if self.kind == "order-invariant" else naive_loss
        recon = term(pred, target)
        zero = torch.zeros((), device=pred.device)
        hyp, flow = zero, zero
        if regularize and self.regularizer is not None and self.alpha > 0:
            hyp = self.regularizer(pred.float())
        if self.flow_weight > 0 and pred_flow is not None and target_flow is not None:
            flow = term(pred_flow.float(), target_flow)
        return {"total": recon + self.alpha * hyp + self.flow_weight * flow, "recon": recon, "hyp": hyp, "flow": flow}
