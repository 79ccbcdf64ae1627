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
    ``batch()`` mattes several frames against one plate, ``batch_size`` per network call;
    ``precision`` is "float32" (the default; no TF32), or on CUDA "tf32" / "float16" (``rb2v.device``).
    """

    name = "bgmv2"
    space = "srgb"

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str = "cpu",
        batch_size: int = 1,
        precision: str = "float32",
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
        from ..device import check_precision, resolve_device
        from ..vendor.bgmv2 import load_model

        if batch_size < 1:
            raise Rb2vError(f"bgmv2: batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.batch_size = batch_size
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
        """(alpha (H,W), foreground (H,W,3)) of one frame."""
        alphas, fgs = self._matte(as_frame(frame)[None], background)
        return alphas[0], fgs[0]

    def batch(self, frames, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(alphas (N,H,W), foregrounds (N,H,W,3)) of N frames against one background plate."""
        return self._matte(as_frames(frames), background)

    def _matte(self, imgs: np.ndarray, background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` on frames already checked by ``as_frames`` (N,H,W,3 float32 in [0,1])."""
        import torch
        import torch.nn.functional as F

        from ..device import inference_precision

        if background is None:
            background = self.plate
        if background is None:
            raise Rb2vError("bgmv2: needs a background plate (background=PLATE, or fit(frames) to estimate one)")
        plate = as_frame(background, "background plate")
        if plate.shape != imgs.shape[1:]:
            raise Rb2vError(f"bgmv2: background plate {plate.shape} and frames {imgs.shape[1:]} differ in size")
        n, h, w = imgs.shape[:3]
        pad = [0, -w % 4, 0, -h % 4]  # right, bottom: replicated on the device
        bgr = torch.from_numpy(plate).to(self.device).permute(2, 0, 1)[None]
        alphas, fgs = np.empty((n, h, w), np.float32), np.empty((n, h, w, 3), np.float32)
        with torch.inference_mode(), inference_precision(self.device, self.precision):
            bgr = F.pad(bgr, pad, mode="replicate") if any(pad) else bgr
            for s in range(0, n, self.batch_size):
                src = torch.from_numpy(imgs[s : s + self.batch_size]).to(self.device).permute(0, 3, 1, 2)
                src = F.pad(src, pad, mode="replicate") if any(pad) else src
                pha, fgr = self.model(src, bgr.expand(len(src), -1, -1, -1))[:2]
                alphas[s : s + len(src)] = pha[:, 0, :h, :w].float().cpu().numpy()
                fgs[s : s + len(src)] = fgr[:, :, :h, :w].permute(0, 2, 3, 1).float().cpu().numpy()
        return alphas, fgs
