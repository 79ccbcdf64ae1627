"""ASPP (DeepLabV3's, rates 3/6/9) and the coarse decoder of BackgroundMattingV2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> list[nn.Module]:
    pad = dilation * (kernel - 1) // 2
    return [
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class ASPPPooling(nn.Sequential):
    """Global average, 1x1 conv+BN+ReLU, spread back by bilinear resize."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *conv_bn_relu(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, rates=(3, 6, 9), cout: int = 256):
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(*conv_bn_relu(cin, cout))]
        branches += [nn.Sequential(*conv_bn_relu(cin, cout, 3, r)) for r in rates]
        branches.append(ASPPPooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        # Dropout(0.5) of the original sits at index 3; it is inactive at inference.
        self.project = nn.Sequential(*conv_bn_relu(len(branches) * cout, cout), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class Decoder(nn.Module):
    """Upsample to each skip's size, concatenate (upsampled first), 3x3 conv; last conv has bias."""

    def __init__(self, channels=(256, 128, 64, 48, 37), feature_channels=(32, 24, 16, 6)):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _up_cat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        return torch.cat([x, skip], dim=1)

    def forward(self, x4, x3, x2, x1, x0) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self._up_cat(x4, x3))))
        x = self.relu(self.bn2(self.conv2(self._up_cat(x, x2))))
        x = self.relu(self.bn3(self.conv3(self._up_cat(x, x1))))
        return self.conv4(self._up_cat(x, x0))
