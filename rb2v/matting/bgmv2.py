"""BackgroundMattingV2 as a matter: ``alpha, fg = m(frame, background=plate)``."""

from __future__ import annotations

import os

import numpy as np

from ..errors import Rb2vError
from .frames import as_frame, as_frames
from .plate import estimate_plate


class BGMv2Matter:
    """Runs an official BackgroundMattingV2 checkpoint (eager state dict or TorchScript).

    Constructor arguments are the official MattingRefine ones, same names and defaults;
    they are ignored for a base-only checkpoint. Frames whose sides are not multiples
    of 4 are padded by edge replication and the outputs cropped back. Outputs are the
    official ``pha`` and ``fgr`` (composite them in sRGB: ``composite(..., space="srgb")``).
    """

    name = "bgmv2"
    space = "srgb"

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str = "cpu",
        backbone_scale: float = 0.25,
        refine_mode: str = "sampling",
        refine_sample_pixels: int = 80_000,
        refine_threshold: float = 0.1,
        refine_kernel_size: int = 3,
        refine_prevent_oversampling: bool = True,
        refine_patch_crop_method: str = "unfold",
        refine_patch_replace_method: str = "scatter_nd",
    ):
        if checkpoint is None:
            raise Rb2vError("bgmv2: a checkpoint is required (checkpoint=PATH to an official .pth)")
        from ..device import resolve_device
        from ..vendor.bgmv2 import load_model

        self.device = resolve_device(device)
        self.model, self.info = load_model(
            checkpoint,
            backbone_scale=backbone_scale,
            refine_mode=refine_mode,
            refine_sample_pixels=refine_sample_pixels,
            refine_threshold=refine_threshold,
            refine_kernel_size=refine_kernel_size,
            refine_prevent_oversampling=refine_prevent_oversampling,
            refine_patch_crop_method=refine_patch_crop_method,
            refine_patch_replace_method=refine_patch_replace_method,
        )
        self.model.to(self.device)
        self.plate: np.ndarray | None = None

    def fit(self, frames, plate: np.ndarray | None = None) -> BGMv2Matter:
        """Set the take's plate: the given clean plate, or one estimated from the frames."""
        self.plate = as_frame(plate, "plate") if plate is not None else estimate_plate(as_frames(frames))
        return self

    def __call__(self, frame, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        img = as_frame(frame)
        if background is None:
            background = self.plate
        if background is None:
            raise Rb2vError("bgmv2: needs a background plate (background=PLATE, or fit(frames) to estimate one)")
        plate = as_frame(background, "background plate")
        if plate.shape != img.shape:
            raise Rb2vError(f"bgmv2: background plate {plate.shape} and frame {img.shape} differ in size")
        h, w = img.shape[:2]
        ph, pw = -h % 4, -w % 4
        pad = ((0, ph), (0, pw), (0, 0))
        src = torch.from_numpy(np.pad(img, pad, mode="edge")).permute(2, 0, 1)[None].to(self.device)
        bgr = torch.from_numpy(np.pad(plate, pad, mode="edge")).permute(2, 0, 1)[None].to(self.device)
        with torch.inference_mode():
            pha, fgr = self.model(src, bgr)[:2]
        alpha = pha[0, 0, :h, :w].float().cpu().numpy()
        fg = fgr[0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()
        return np.ascontiguousarray(alpha), np.ascontiguousarray(fg)
