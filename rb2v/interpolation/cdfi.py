"""``"cdfi"``: the CDFI network (``CDFI_adacof``, kernel 11, dilation 2) with the official checkpoint.

    load_interpolator("cdfi", checkpoint="CDFI_adacof.pth", device="auto")

* Checkpoint: the official file unchanged — a dict whose ``'state_dict'`` holds the model's
  weights (what ``train.py`` saves); a bare state dict is accepted too. Loading is strict:
  a checkpoint of another model is refused with the keys that do not fit.
* Sizes: any H x W. The network reflect-pads bottom/right to a multiple of 32 and crops
  back, as the official code does. The official code cannot reflect-pad a dimension of 16
  px or less; there we first replicate-pad that dimension to 32 (a documented extension).
* Time: the network makes the midpoint. ``t = k / 2^m`` (1/4, 3/4, 3/8, ... up to m = 6) is
  exact recursive bisection: 1/4 is the midpoint of ``a`` and the midpoint. Any other t
  (1/3, 2/3, which the synthetic blur needs) has no honest CDFI answer: by default it is
  an error; ``other_t="flow"`` hands those t to the "flow" interpolator instead, so one
  object can serve the whole build (CDFI for the 2x upsampling, flow for the thirds).
* Output: clamped to [0, 1] (the raw network output can fall slightly outside).
* Batches: ``batch()`` runs its pairs through the network ``batch_size`` at a time. The default
  is 1: at 1280x720 on an H200, batches of 4 and 16 were no faster (3.5 vs 3.9 frames/s) and
  each pair of a batch needs about 4.6 GiB of GPU memory.
* ``precision``: "float32" (the default; no TF32), or on CUDA "tf32" / "float16" (``rb2v.device``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import Rb2vError
from ..weights import load_weights
from .base import Interpolator, register

# deepest bisection level accepted for dyadic t
MAX_BISECTIONS = 6
# below this a dimension cannot be reflect-padded to 32 as the official code does
MIN_REFLECT_SIZE = 17


def dyadic_steps(t: float) -> list[int] | None:
    """The bisection path to ``t`` (0 = left half, 1 = right half), or None if t is not k/2^m."""
    for m in range(1, MAX_BISECTIONS + 1):
        k = t * 2**m
        if abs(k - round(k)) < 1e-9:
            k, path = int(round(k)), []
            for level in range(m - 1, -1, -1):
                path.append((k >> level) & 1)
            # the path's last step is always the midpoint of the final interval
            return path[:-1]
    return None


def load_state_dict(checkpoint: str | os.PathLike) -> dict:
    """The model weights of an official CDFI checkpoint file (or a bare state dict file)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise Rb2vError(f"{path}: CDFI checkpoint not found")
    obj = load_weights(path, "CDFI")
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(hasattr(v, "shape") for v in sd.values()):
        raise Rb2vError(f"{path}: not a CDFI checkpoint (expected a dict with a 'state_dict' of tensors)")
    return sd


class CDFIInterpolator(Interpolator):
    """The vendored CDFI network; batches on the GPU when there is one."""

    name = "cdfi"

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str = "auto",
        batch_size: int = 1,
        other_t: str = "error",
        precision: str = "float32",
    ):
        import torch

        from ..device import check_precision, resolve_device
        from ..vendor.cdfi import CDFIAdaCoF

        if checkpoint is None:
            raise Rb2vError(
                "interpolator 'cdfi' needs checkpoint=PATH (the official CDFI_adacof.pth); "
                "use 'flow' when you have none"
            )
        if other_t not in ("error", "flow"):
            raise Rb2vError(f"cdfi other_t must be 'error' or 'flow', got {other_t!r}")
        if batch_size < 1:
            raise Rb2vError(f"cdfi batch_size must be >= 1, got {batch_size}")
        sd = load_state_dict(checkpoint)
        model = CDFIAdaCoF(kernel_size=11, dilation=2)
        want, got = set(model.state_dict()), set(sd)
        missing, unexpected = sorted(want - got), sorted(got - want)
        bad_shape = [k for k in want & got if tuple(sd[k].shape) != tuple(model.state_dict()[k].shape)]
        if missing or unexpected or bad_shape:
            detail = "; ".join(
                f"{what} {len(keys)} (e.g. {keys[0]})"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape))
                if keys
            )
            raise Rb2vError(f"{checkpoint}: not a CDFI_adacof (kernel 11, dilation 2) checkpoint: {detail}")
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.other_t = other_t
        self._flow: Interpolator | None = None
        self._torch = torch

    def _batch(self, A: np.ndarray, B: np.ndarray, t: float) -> np.ndarray:
        steps = dyadic_steps(t)
        if steps is None:
            if self.other_t == "flow":
                if self._flow is None:
                    from .flow import FlowInterpolator

                    self._flow = FlowInterpolator()
                return self._flow._batch(A, B, t)
            raise Rb2vError(
                f"cdfi interpolates only t = k/2^m (0.5, 0.25, 0.75, ...), not t={t:.6g}; "
                "use the 'flow' interpolator for it, or cdfi with other_t='flow'"
            )
        lo, hi = A, B
        for step in steps:
            mid = self.midpoints(lo, hi)
            lo, hi = (lo, mid) if step == 0 else (mid, hi)
        return self.midpoints(lo, hi)

    def midpoints(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """The network's middle frames of N pairs (N,H,W,3) float32, in chunks of ``batch_size``."""
        from ..device import inference_precision

        torch = self._torch
        out = np.empty_like(A)
        with torch.inference_mode(), inference_precision(self.device, self.precision):
            for s in range(0, len(A), self.batch_size):
                x0 = self._to_tensor(A[s : s + self.batch_size])
                x1 = self._to_tensor(B[s : s + self.batch_size])
                y = self._forward(x0, x1)
                out[s : s + self.batch_size] = y.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return out

    def _forward(self, x0, x1):
        """The model, with tiny dimensions replicate-padded first (the official code rejects them)."""
        import torch.nn.functional as F

        h, w = x0.shape[-2:]
        ph = 32 - h if h < MIN_REFLECT_SIZE else 0
        pw = 32 - w if w < MIN_REFLECT_SIZE else 0
        if ph or pw:
            x0, x1 = (F.pad(x, [0, pw, 0, ph], mode="replicate") for x in (x0, x1))
        return self.model(x0, x1)[:, :, :h, :w]

    def _to_tensor(self, X: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2))).to(self.device)


register("cdfi", lambda **kw: CDFIInterpolator(**kw))
