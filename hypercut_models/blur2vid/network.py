"""The blur2vid backbone: a compact residual U-Net that predicts 7 RGB frames from the blurry image.

It sees the blurry image only (never a ground-truth frame, unlike the official reimplementation of
Purohit et al., which feeds the sharp middle frame to the network at test time too). Output frame k
is ``warp(blur, f_k) + r_k``: the network predicts a flow field f_k per frame that resamples the
blurry image (by default one path per pixel through the exposure, ``MOTIONS``; in units of
``FLOW_SCALE`` px), and an RGB residual r_k. The last conv starts at zero for the residuals and
near zero for the flows, so a fresh network is the blurry-input floor (every frame = the input) to
within a small fraction of a pixel of motion.
The warp is what makes CPU training work: a frame at the edge of the exposure is mostly the blurry
image *moved* by half the motion, which a flow expresses with one value per region but residuals
only as a large high-frequency image. Measured on 36 panning sequences (40x40, 2 px/frame, Adam
5e-4, batch 4): after 200 steps the residual-only head gained +0.82 dB pPSNR on x0 of held-out
sequences, the warp head +2.65 dB after 50 steps (``warp=False`` keeps the residual-only head).

Layout: a 3x3 head conv, then per level ``blocks`` residual blocks and a stride-2 conv to the next
level's width; the deepest level has ``2 * blocks`` residual blocks, then (``context``, the default
sizes) adds a global context: its features averaged over the whole image, through two 1x1 convs,
added at every position; the decoder upsamples
(bilinear x2 + 3x3 conv), adds the skip connection of its level and runs ``blocks`` residual
blocks; a 3x3 tail conv gives the flow channels and the 21 residual channels. Fully
convolutional: any input size works (``forward`` pads to a multiple of the total stride by
reflection and crops back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FRAMES = 7
FLOW_SCALE = 4.0  # the warp head's flow output is in units of 4 px (bigger steps for small weights)
FLOW_INIT_STD = 1e-3  # initial weights of the flow outputs (see Blur2VidNet.__init__)
# How the warp head's flows are parametrised: "path" (the default) gives each pixel one path through
# the exposure, flow_k = t_k * v + t_k^2 * a with t_k = (k - 3) / 3, so every frame's error trains the
# same 4 numbers; "frames" gives each frame its own flow (14 channels; the networks before #15's
# path head, whose checkpoints still load). `rb2v bench blur2vid`, hypercut loss, 2026-12-04, same
# data, seed and budget: border frames x0/x6 of the panning test videos 19.86/19.88 ("frames") ->
# 20.32/20.27 dB ("path"), the predicted x0 -> x6 motion 2.51 -> 3.72 px of the true ~10.
MOTIONS = ("path", "frames")
# The global context lets a pixel whose neighbourhood shows no evidence either way (sky, asphalt, a
# soft region) take the motion of the picture as a whole: without it the hypercut model gave such
# regions of a still street the panning videos' motion. `rb2v bench blur2vid`'s data and budget,
# hypercut loss, seed 0 (2026-12-04): the still street's border frames 31.76 -> 33.57 dB (floor
# 34.90), the panning videos' 21.09/20.95 -> 21.35/21.28 dB; README, #15.
# name -> constructor arguments. small: 0.56 M parameters, trains on a CPU in minutes on 64 px crops;
# base: 16.2 M parameters, for GPUs.
SIZES: dict[str, dict] = {
    "small": {"widths": (24, 48, 96), "blocks": 1, "warp": True, "motion": "path", "context": True},
    "base": {"widths": (48, 96, 192, 384), "blocks": 2, "warp": True, "motion": "path", "context": True},
}


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Blur2VidNet(nn.Module):
    """(B, 3, H, W) blurry image in [0, 1] -> (B, 7, 3, H, W) frames (not clamped)."""

    def __init__(
        self,
        widths: tuple[int, ...] = (24, 48, 96),
        blocks: int = 1,
        warp: bool = False,
        motion: str = "frames",
        context: bool = False,
    ):
        super().__init__()
        if motion not in MOTIONS:
            raise ValueError(f"unknown blur2vid motion {motion!r}: {', '.join(MOTIONS)}")
        widths = tuple(int(w) for w in widths)
        self.widths, self.blocks, self.warp, self.motion = widths, blocks, bool(warp), motion
        self.context = bool(context)
        self.stride = 2 ** (len(widths) - 1)
        self.head = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for i, w in enumerate(widths[:-1]):
            self.enc.append(nn.Sequential(*[ResBlock(w) for _ in range(blocks)]))
            self.down.append(
                nn.Sequential(nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True))
            )
        self.middle = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(2 * blocks)])
        if self.context:
            self.global_context = nn.Sequential(
                nn.Conv2d(widths[-1], widths[-1], 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(widths[-1], widths[-1], 1),
            )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(
                nn.Sequential(nn.Conv2d(widths[i], widths[i - 1], 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
            )
            self.dec.append(nn.Sequential(*[ResBlock(widths[i - 1]) for _ in range(blocks)]))
        self.flow_channels = (2 * FRAMES if motion == "frames" else 4) if self.warp else 0
        self.tail = nn.Conv2d(widths[0], self.flow_channels + 3 * FRAMES, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start at the floor: every frame = the blurry input
        nn.init.zeros_(self.tail.bias)
        if self.warp:
            # Flows start small but not zero. At exactly zero every frame is the same image, a
            # point where a loss that cannot tell a sequence from its reverse (order-invariant)
            # has no gradient toward moving the first and last frames apart.
            nn.init.normal_(self.tail.weight[: self.flow_channels], std=FLOW_INIT_STD)

    def config(self) -> dict:
        return {
            "widths": list(self.widths),
            "blocks": self.blocks,
            "warp": self.warp,
            "motion": self.motion,
            "context": self.context,
        }

    def forward(self, blur: torch.Tensor, with_flow: bool = False):
        """Frames (B, 7, 3, H, W); with ``with_flow`` also the warp head's flows (B, 7, 2, H, W) in
        pixels, (x, y): frame k samples the blurry image at x + flow_k(x) (None without a warp head)."""
        h, w = blur.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        x = blur
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            x = F.pad(blur, (0, pw, 0, ph), mode=mode)
        feat = self.head(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        if self.context:
            feat = feat + self.global_context(feat.mean(dim=(2, 3), keepdim=True))
        for up, dec in zip(self.up, self.dec):
            skip = skips.pop()
            feat = up(F.interpolate(feat, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            feat = dec(feat + skip)
        out = self.tail(feat)[..., :h, :w]
        b = blur.shape[0]
        if not self.warp:
            frames = blur.unsqueeze(1) + out.reshape(b, FRAMES, 3, h, w)
            return (frames, None) if with_flow else frames
        residual = out[:, self.flow_channels :].reshape(b, FRAMES, 3, h, w)
        if self.motion == "frames":
            flow = out[:, : 2 * FRAMES].reshape(b, FRAMES, 2, h, w) * FLOW_SCALE
        else:  # velocity and acceleration at the middle of the exposure
            half = FRAMES // 2
            t = ((torch.arange(FRAMES, device=out.device, dtype=out.dtype) - half) / half).view(1, FRAMES, 1, 1, 1)
            flow = (t * out[:, None, 0:2] + t * t * out[:, None, 2:4]) * FLOW_SCALE
        frames = warp_frames(blur, flow.reshape(b * FRAMES, 2, h, w)).view(b, FRAMES, 3, h, w) + residual
        return (frames, flow) if with_flow else frames


def warp_frames(blur: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Frame k = the blurry image sampled at x + flow_k(x) (bilinear, borders replicated).
    ``blur`` (B, 3, H, W), ``flow`` (B * 7, 2, H, W) in pixels (x, y) -> (B * 7, 3, H, W)."""
    b, _, h, w = blur.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=blur.device, dtype=flow.dtype),
        torch.arange(w, device=blur.device, dtype=flow.dtype),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    source = blur.unsqueeze(1).expand(b, FRAMES, 3, h, w).reshape(b * FRAMES, 3, h, w)
    grid = torch.stack([gx, gy], dim=-1).to(source.dtype)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def make_network(size: str = "small") -> Blur2VidNet:
    if size not in SIZES:
        raise ValueError(f"unknown blur2vid size {size!r}: {', '.join(SIZES)}")
    return Blur2VidNet(**SIZES[size])
