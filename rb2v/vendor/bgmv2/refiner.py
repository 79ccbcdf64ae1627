"""The patch refiner of BackgroundMattingV2 ('full', 'sampling', 'thresholding').

Inputs are the coarse outputs at 1/4 of the full resolution (with backbone_scale 1/4):
the refiner improves 4x4 full-resolution patches chosen by the predicted error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REFINE_MODES = ("full", "sampling", "thresholding")


class Refiner(nn.Module):
    def __init__(
        self,
        mode: str,
        sample_pixels: int,
        threshold: float,
        kernel_size: int = 3,
        prevent_oversampling: bool = True,
        patch_crop_method: str = "unfold",
        patch_replace_method: str = "scatter_nd",
    ):
        super().__init__()
        if mode not in REFINE_MODES:
            raise ValueError(f"refine_mode {mode!r}: use one of {', '.join(REFINE_MODES)}")
        if kernel_size not in (1, 3):
            raise ValueError(f"refine_kernel_size {kernel_size}: use 1 or 3")
        # Crop and replace methods change how patches are gathered, never the result;
        # this implementation always gathers by unfolding and writes by indexing.
        if patch_crop_method not in ("unfold", "roi_align", "gather"):
            raise ValueError(f"refine_patch_crop_method {patch_crop_method!r}: use unfold, roi_align or gather")
        if patch_replace_method not in ("scatter_nd", "scatter_element"):
            raise ValueError(f"refine_patch_replace_method {patch_replace_method!r}: use scatter_nd or scatter_element")
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.prevent_oversampling = prevent_oversampling
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method
        self.conv1 = nn.Conv2d(32 + 4 + 6, 24, kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.conv2 = nn.Conv2d(24, 16, kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16 + 6, 12, kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(12)
        self.conv4 = nn.Conv2d(12, 4, kernel_size, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def _first_half(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def _second_half(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.relu(self.bn3(self.conv3(x))))

    def forward(self, src, bgr, pha, fgr, err, hid):
        """Return full-resolution (alpha, foreground residual) before clamping, and the refined-patch map."""
        h, w = src.shape[2:]
        half, quarter = (h // 2, w // 2), (h // 4, w // 4)
        src_bgr = torch.cat([src, bgr], dim=1)
        coarse = torch.cat([hid, pha, fgr], dim=1)
        pad_half, pad_full = (3, 2) if self.kernel_size == 3 else (0, 0)

        if self.mode == "full":
            x = F.interpolate(coarse, half, mode="bilinear", align_corners=False)
            y = F.interpolate(src_bgr, half, mode="bilinear", align_corners=False)
            x = self._first_half(F.pad(torch.cat([x, y], dim=1), (pad_half,) * 4))
            x = F.interpolate(x, (h + 2 * pad_full, w + 2 * pad_full), mode="nearest")
            x = self._second_half(torch.cat([x, F.pad(src_bgr, (pad_full,) * 4)], dim=1))
            ref = torch.ones((src.shape[0], 1, *quarter), device=src.device, dtype=src.dtype)
            return x[:, :1], x[:, 1:], ref

        err = F.interpolate(err, quarter, mode="bilinear", align_corners=False)
        ref = self.select_regions(err)
        idx = torch.nonzero(ref.squeeze(1))
        idx = (idx[:, 0], idx[:, 1], idx[:, 2])
        out = F.interpolate(torch.cat([pha, fgr], dim=1), (h, w), mode="bilinear", align_corners=False)
        if idx[0].numel() > 0:
            x = F.interpolate(coarse, half, mode="bilinear", align_corners=False)
            y = F.interpolate(src_bgr, half, mode="bilinear", align_corners=False)
            x = torch.cat([crop_patches(x, idx, 2, pad_half), crop_patches(y, idx, 2, pad_half)], dim=1)
            x = self._first_half(x)
            x = F.interpolate(x, 4 + 2 * pad_full, mode="nearest")
            x = self._second_half(torch.cat([x, crop_patches(src_bgr, idx, 4, pad_full)], dim=1))
            out = replace_patches(out, x, idx)
        return out[:, :1], out[:, 1:], ref

    def select_regions(self, err: torch.Tensor) -> torch.Tensor:
        """1.0 at the quarter-resolution positions to refine, else 0.0."""
        if self.mode == "thresholding":
            return err.gt(self.threshold).to(err.dtype)
        b, _, h, w = err.shape
        flat = err.reshape(b, -1)
        # The official code fails in top-k when asked for more patches than exist; taking
        # them all is what such a request means.
        k = min(self.sample_pixels // 16, flat.shape[1])
        ref = torch.zeros_like(flat)
        ref.scatter_(1, flat.topk(k, dim=1, sorted=False).indices, 1.0)
        if self.prevent_oversampling:
            ref.mul_(flat.gt(0).to(flat.dtype))
        return ref.view(b, 1, h, w)


def crop_patches(x: torch.Tensor, idx, size: int, padding: int) -> torch.Tensor:
    """(P, C, size+2p, size+2p) windows around the grid cells ``idx`` (batch, row, col) of step ``size``."""
    if padding:
        x = F.pad(x, (padding,) * 4)
    win = size + 2 * padding
    return x.permute(0, 2, 3, 1).unfold(1, win, size).unfold(2, win, size)[idx[0], idx[1], idx[2]]


def replace_patches(x: torch.Tensor, patches: torch.Tensor, idx) -> torch.Tensor:
    """Write the (P, C, 4, 4) ``patches`` into the 4x4 cells ``idx`` of ``x`` (N, C, H, W)."""
    n, c, h, w = x.shape
    cells = x.view(n, c, h // 4, 4, w // 4, 4).permute(0, 2, 4, 1, 3, 5).clone()
    cells[idx[0], idx[1], idx[2]] = patches.to(cells.dtype)  # under autocast the refiner's convs give float16
    return cells.permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
