"""The HyperCUT mapping H: a frame pair [x_a, x_b] -> a motion vector in R^n (n = 128).

Supplement Table 2: reflection pad 3, 7x7 conv from the 6 channels of the concatenated pair,
five stride-2 3x3 convs with LeakyReLU, six residual blocks at 128 channels, global average
pooling. Decisions (where the table and the official code disagree or are loose):

* First conv: 32 output channels. The table's header says 32 while its row lists 64; the
  official ``ResnetIm2Vec`` uses ``nf=32`` and the stride-2 convs then double the width
  (32 -> 64 -> 128) and stay at 128, which matches the six residual blocks at 128 channels.
  So 32 is the reading consistent with the rest of the table and with the released weights.
* LeakyReLU slope 0.2. The official code writes ``nn.LeakyReLU(True)``, which sets the *slope*
  to True == 1.0 (an identity, not an in-place flag), leaving the encoder linear up to the
  residual blocks; we use a real non-linearity as the table intends.
* Temporal-difference initialisation: the first conv's weights on the second frame start as the
  negative of those on the first (then train freely), so the initial features respond to
  x_b - x_a. With the default initialisation H(x_a, x_b) ~ H(x_b, x_a) ~ a constant, L_h drives
  every score to 0, where softplus(s * s') has a zero gradient (a saddle at loss 2 ln 2); on
  small CPU runs training sat there for hundreds of steps. Starting from difference features the
  pair and its reverse differ from step 0.
* Inputs are RGB in [0, 1] (the public image convention of rb2v); the ImageNet normalisation of
  the official data pipeline is done inside the network so every caller (training, evaluation,
  the R_hyp regulariser of blur2vid training) feeds the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# five stride-2 convs leave ceil(side / 32) pixels; the residual blocks' reflection padding needs 2
MIN_SIDE = 33


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convs with a ReLU between them, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HyperCUTNet(nn.Module):
    """H(x_a, x_b): two RGB frames (B,3,H,W) in [0,1] -> (B, out_dim) motion vectors."""

    def __init__(self, out_dim: int = 128, base_channels: int = 32, n_down: int = 5,
                 n_blocks: int = 6, slope: float = 0.2):
        super().__init__()
        self.out_dim = out_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN * 2).view(1, 6, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD * 2).view(1, 6, 1, 1), persistent=False)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(6, base_channels, 7),
                                   nn.LeakyReLU(slope, inplace=True)]
        channels = base_channels
        for _ in range(n_down):
            out = min(channels * 2, out_dim)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(slope, inplace=True)]
            channels = out
        if channels != out_dim:
            raise ValueError(f"{n_down} stride-2 convs from {base_channels} channels do not reach {out_dim}")
        layers += [ResidualBlock(out_dim) for _ in range(n_blocks)]
        self.encoder = nn.Sequential(*layers)
        with torch.no_grad():  # temporal-difference initialisation (see the module docstring)
            first = self.encoder[1].weight
            first[:, 3:] = -first[:, :3]

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if min(first.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"frames of {tuple(first.shape[-2:])} are too small: HyperCUT needs sides >= {MIN_SIDE}")
        x = (torch.cat([first, second], dim=1) - self.mean) / self.std
        return self.encoder(x).mean(dim=(2, 3))
