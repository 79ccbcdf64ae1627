"""MattingBase and MattingRefine with the official constructors and outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import make_backbone
from .heads import ASPP, Decoder
from .refiner import Refiner

BACKBONES = ("resnet50", "resnet101", "mobilenetv2")


class MattingBase(nn.Module):
    """Coarse network: returns (pha, fgr, err, hid) at the input's resolution."""

    def __init__(self, backbone: str):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone {backbone!r}: use one of {', '.join(BACKBONES)}")
        self.backbone = make_backbone(backbone, in_channels=6)
        self.aspp = ASPP(self.backbone.out_channels, (3, 6, 9))
        self.decoder = Decoder((256, 128, 64, 48, 1 + 3 + 1 + 32), (*self.backbone.feature_channels, 6))

    def _coarse(self, src: torch.Tensor, bgr: torch.Tensor) -> torch.Tensor:
        x, *skips = self.backbone(torch.cat([src, bgr], dim=1))
        return self.decoder(self.aspp(x), *skips)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        x = self._coarse(src, bgr)
        pha = x[:, 0:1].clamp(0.0, 1.0)
        fgr = (x[:, 1:4] + src).clamp(0.0, 1.0)
        err = x[:, 4:5].clamp(0.0, 1.0)
        hid = x[:, 5:].relu()
        return pha, fgr, err, hid


class MattingRefine(MattingBase):
    """Coarse network at ``backbone_scale`` plus the patch refiner at full resolution.

    Returns (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm).
    """

    def __init__(
        self,
        backbone: str,
        backbone_scale: float = 1 / 4,
        refine_mode: str = "sampling",
        refine_sample_pixels: int = 80_000,
        refine_threshold: float = 0.1,
        refine_kernel_size: int = 3,
        refine_prevent_oversampling: bool = True,
        refine_patch_crop_method: str = "unfold",
        refine_patch_replace_method: str = "scatter_nd",
    ):
        if not backbone_scale <= 1 / 2:
            raise ValueError(f"backbone_scale {backbone_scale}: must be at most 1/2")
        super().__init__(backbone)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(
            refine_mode,
            refine_sample_pixels,
            refine_threshold,
            refine_kernel_size,
            refine_prevent_oversampling,
            refine_patch_crop_method,
            refine_patch_replace_method,
        )

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        if src.shape != bgr.shape:
            raise ValueError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} differ in shape")
        if src.shape[2] % 4 or src.shape[3] % 4:
            raise ValueError(f"image size {tuple(src.shape[2:])}: height and width must be divisible by 4")
        down = dict(scale_factor=self.backbone_scale, mode="bilinear", align_corners=False, recompute_scale_factor=True)
        src_sm = F.interpolate(src, **down)
        bgr_sm = F.interpolate(bgr, **down)
        x = self._coarse(src_sm, bgr_sm)
        pha_sm = x[:, 0:1].clamp(0.0, 1.0)
        res_sm = x[:, 1:4]
        err_sm = x[:, 4:5].clamp(0.0, 1.0)
        hid_sm = x[:, 5:].relu()
        pha, res, ref_sm = self.refiner(src, bgr, pha_sm, res_sm, err_sm, hid_sm)
        pha = pha.clamp(0.0, 1.0)
        fgr = (res + src).clamp(0.0, 1.0)
        fgr_sm = (src_sm + res_sm).clamp(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm
