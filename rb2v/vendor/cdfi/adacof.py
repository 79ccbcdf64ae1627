"""The AdaCoF sampling op, vectorised in PyTorch (CPU and CUDA, no cupy).

Reproduces the official CUDA forward kernel, quirks included:

* tap (k, l) reads channel ``k*F + l`` of weight/offsets; ``offset_i`` is the row
  (vertical) offset and ``offset_j`` the column offset;
* the base sample is row ``i + k*D``, column ``j + l*D`` of the already padded input;
* offsets split into integer and fraction by truncation toward zero, so a negative
  fraction extrapolates from the pixels at +0 and +1 (offset -0.3 gives
  1.3*v[+0] - 0.3*v[+1]);
* each of the four indices is clamped to the image separately, weights unchanged;
* the per-tap weights are used as given (no normalisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# index/weight entries per chunk of output rows, which bounds the temporaries (40-50 bytes per entry).
# On the CPU the smaller chunks are as fast (8.0 vs 9.2 s for one 1280x720 call with C=63) and the
# process grows by 0.87 instead of 1.8 GB; the README's CUDA figures were measured with the larger.
BAG_BUDGET = {"cpu": 1 << 23, "cuda": 1 << 25}


def adacof(
    input: torch.Tensor, weight: torch.Tensor, offset_i: torch.Tensor, offset_j: torch.Tensor, dilation: int
) -> torch.Tensor:
    """Sample ``input`` (N,C,Hin,Win) with F*F adaptive taps per output pixel -> (N,C,H,W).

    Every output pixel is a weighted sum of 4*F*F input pixels (each tap's bilinear corners), the
    same weights for all channels: one ``embedding_bag`` over the input's pixels as rows of C values
    (indices and weights per pixel, no gathered copy of the C channels). Channels are independent,
    so several maps warped by the same kernels are best passed concatenated along C in one call.
    """
    n, c, h_in, w_in = input.shape
    taps, h, w = weight.shape[1:]
    f = int(round(taps**0.5))
    if f * f != taps or offset_i.shape != weight.shape or offset_j.shape != weight.shape:
        raise ValueError(
            f"adacof: weight/offsets must be (N,F*F,H,W) alike, got {tuple(weight.shape)}, "
            f"{tuple(offset_i.shape)}, {tuple(offset_j.shape)}"
        )
    if h_in != h + (f - 1) * dilation or w_in != w + (f - 1) * dilation:
        raise ValueError(f"adacof: input {h_in}x{w_in} does not match output {h}x{w} with F={f}, D={dilation}")

    dev = input.device
    # each batch item's pixels are rows n*Hin*Win ... of one table of C values
    table = input.permute(0, 2, 3, 1).reshape(n * h_in * w_in, c).contiguous()
    itype = torch.int32 if n * h_in * w_in < 2**31 else torch.int64
    k = torch.arange(f, device=dev, dtype=itype).repeat_interleave(f) * dilation  # row tap of channel k*F+l
    l = torch.arange(f, device=dev, dtype=itype).repeat(f) * dilation  # column tap
    cols = torch.arange(w, device=dev, dtype=itype).view(1, 1, w, 1) + l  # (1, 1, W, taps)
    base = (torch.arange(n, device=dev, dtype=itype) * (h_in * w_in)).view(n, 1, 1, 1)
    out = torch.empty(n, h, w, c, dtype=input.dtype, device=dev)
    step = max(1, BAG_BUDGET.get(dev.type, BAG_BUDGET["cpu"]) // (n * w * taps * 4))
    for y in range(0, h, step):
        ys = slice(y, min(y + step, h))
        # pixel-major (N, rows, W, taps): each output pixel's taps are one contiguous bag
        oi, oj, wt = (x[:, :, ys].permute(0, 2, 3, 1).contiguous() for x in (offset_i, offset_j, weight))
        a_int, b_int = torch.trunc(oi), torch.trunc(oj)
        fa, fb = oi - a_int, oj - b_int  # in (-1, 1): negative for negative offsets
        rows = torch.arange(ys.start, ys.stop, device=dev, dtype=itype).view(1, -1, 1, 1) + k
        r0 = rows + a_int.to(itype)
        c0 = cols + b_int.to(itype)
        r1 = (r0 + 1).clamp_(0, h_in - 1).mul_(w_in).add_(base)
        r0 = r0.clamp_(0, h_in - 1).mul_(w_in).add_(base)
        c1 = (c0 + 1).clamp_(0, w_in - 1)
        c0 = c0.clamp_(0, w_in - 1)
        bags = torch.empty(*r0.shape, 4, dtype=itype, device=dev)
        coef = torch.empty(*r0.shape, 4, dtype=input.dtype, device=dev)
        for corner, (r, cc) in enumerate(((r0, c0), (r1, c0), (r0, c1), (r1, c1))):
            torch.add(r, cc, out=bags[..., corner])
        w_lo, w_hi = wt - wt * fa, wt * fa  # the tap's weight times the row fractions
        torch.mul(w_lo, 1 - fb, out=coef[..., 0])
        torch.mul(w_hi, 1 - fb, out=coef[..., 1])
        torch.mul(w_lo, fb, out=coef[..., 2])
        torch.mul(w_hi, fb, out=coef[..., 3])
        made = F.embedding_bag(bags.view(-1, taps * 4), table, per_sample_weights=coef.view(-1, taps * 4), mode="sum")
        out[:, ys] = made.view(n, -1, w, c)
    return out.permute(0, 3, 1, 2)
