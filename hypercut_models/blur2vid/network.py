"""The blur2vid backbone: a compact residual U-Net that predicts 7 RGB frames from the blurry image.

It sees the blurry image only (never a ground-truth frame, unlike the official reimplementation of
Purohit et al., which feeds the sharp middle frame to the network at test time too). Output frame k
is ``blur + r_k``: the network predicts 7 residuals, so a fresh network starts at the blurry-input
floor and training only has to learn the motion.

Layout: a 3x3 head conv, then per level ``blocks`` residual blocks and a stride-2 conv to the next
level's width; the deepest level has ``2 * blocks`` residual blocks; the decoder upsamples
(bilinear x2 + 3x3 conv), adds the skip connection of its level and runs ``blocks`` residual
blocks; a 3x3 tail conv gives the 21 residual channels. Fully convolutional: any input size works
(``forward`` pads to a multiple of the total stride by reflection and crops back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FRAMES = 7
# name -> constructor arguments. small: ~0.5 M parameters, trains on a CPU in minutes on 64 px crops;
# base: ~8 M parameters, for GPUs.
SIZES: dict[str, dict] = {
    "small": {"widths": (24, 48, 96), "blocks": 1},
    "base": {"widths": (48, 96, 192, 384), "blocks": 2},
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

    def __init__(self, widths: tuple[int, ...] = SIZES["small"]["widths"], blocks: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.widths, self.blocks = widths, blocks
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
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(
                nn.Sequential(nn.Conv2d(widths[i], widths[i - 1], 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
            )
            self.dec.append(nn.Sequential(*[ResBlock(widths[i - 1]) for _ in range(blocks)]))
        self.tail = nn.Conv2d(widths[0], 3 * FRAMES, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start at the floor: every frame = the blurry input
        nn.init.zeros_(self.tail.bias)

    def config(self) -> dict:
        return {"widths": list(self.widths), "blocks": self.blocks}

    def forward(self, blur: torch.Tensor) -> torch.Tensor:
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
        for up, dec in zip(self.up, self.dec):
            skip = skips.pop()
            feat = up(F.interpolate(feat, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            feat = dec(feat + skip)
        residual = self.tail(feat)[..., :h, :w]
        b = blur.shape[0]
        return blur.unsqueeze(1) + residual.view(b, FRAMES, 3, h, w)


def make_network(size: str = "small") -> Blur2VidNet:
    if size not in SIZES:
        raise ValueError(f"unknown blur2vid size {size!r}: {', '.join(SIZES)}")
    return Blur2VidNet(**SIZES[size])
