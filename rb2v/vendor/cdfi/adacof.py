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

# elements of one gathered (N, C, taps, H, W) block: bounds the temporary memory per step
GATHER_BUDGET = 1 << 23


def adacof(
    input: torch.Tensor, weight: torch.Tensor, offset_i: torch.Tensor, offset_j: torch.Tensor, dilation: int
) -> torch.Tensor:
    """Sample ``input`` (N,C,Hin,Win) with F*F adaptive taps per output pixel -> (N,C,H,W).

    Channels are independent, so several maps warped by the same kernels are best passed
    concatenated along C in one call.
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
    k = torch.arange(f, device=dev).repeat_interleave(f)  # row tap of channel k*F+l
    l = torch.arange(f, device=dev).repeat(f)  # column tap
    rows = torch.arange(h, device=dev).view(1, 1, h, 1) + (k * dilation).view(1, taps, 1, 1)
    cols = torch.arange(w, device=dev).view(1, 1, 1, w) + (l * dilation).view(1, taps, 1, 1)

    flat = input.reshape(n, c, h_in * w_in)
    out = torch.zeros(n, c, h, w, dtype=input.dtype, device=dev)
    step = max(1, GATHER_BUDGET // (n * c * h * w))
    for s in range(0, taps, step):
        sl = slice(s, min(s + step, taps))
        m = sl.stop - sl.start
        oi, oj = offset_i[:, sl], offset_j[:, sl]
        a_int, b_int = torch.trunc(oi), torch.trunc(oj)
        fa = (oi - a_int).unsqueeze(1)  # in (-1, 1): negative for negative offsets
        fb = (oj - b_int).unsqueeze(1)
        r0 = rows[:, sl] + a_int.long()
        c0 = cols[:, sl] + b_int.long()
        r0, r1 = r0.clamp(0, h_in - 1) * w_in, (r0 + 1).clamp(0, h_in - 1) * w_in
        c0, c1 = c0.clamp(0, w_in - 1), (c0 + 1).clamp(0, w_in - 1)

        def corner(r: torch.Tensor, cc: torch.Tensor, m: int = m) -> torch.Tensor:
            idx = (r + cc).reshape(n, 1, m * h * w).expand(n, c, m * h * w)
            return torch.gather(flat, 2, idx).view(n, c, m, h, w)

        v = (
            corner(r0, c0) * ((1 - fa) * (1 - fb))
            + corner(r1, c0) * (fa * (1 - fb))
            + corner(r0, c1) * ((1 - fa) * fb)
            + corner(r1, c1) * (fa * fb)
        )
        out += (v * weight[:, sl].unsqueeze(1)).sum(dim=2)
    return out
