"""Encoders of BackgroundMattingV2, written without torchvision.

Module names mirror torchvision's MobileNetV2 and ResNet so that the official
state dicts load key for key. Each encoder returns ``(x4, x3, x2, x1, x0)``: the
1/16 feature map, then the skips at 1/8, 1/4, 1/2 and the input itself.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6: keys ``<i>.0`` conv, ``<i>.1`` BN."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: optional 1x1 expansion, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = cin * expand_ratio
        # The residual is decided at construction (the official model later changes
        # strides to dilations without touching it).
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def depthwise(self) -> nn.Conv2d:
        return self.conv[-3][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# (expand ratio t, channels c, repeats n, first stride s) of MobileNetV2, width 1.0.
MOBILENETV2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 without its last 1x1 block, output stride 16 (blocks 15-17 dilated)."""

    feature_channels = (32, 24, 16)
    out_channels = 320

    def __init__(self, in_channels: int = 6):
        super().__init__()
        blocks: list[nn.Module] = [ConvBNReLU6(in_channels, 32, stride=2)]
        cin = 32
        for t, c, n, s in MOBILENETV2_SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*blocks)
        self.features[14].depthwise().stride = (1, 1)
        for i in (15, 16, 17):
            conv = self.features[i].depthwise()
            conv.dilation = (2, 2)
            conv.padding = (2, 2)

    def forward(self, x: torch.Tensor):
        x0 = x
        x = self.features[1](self.features[0](x))
        x1 = x
        x = self.features[3](self.features[2](x))
        x2 = x
        for i in (4, 5, 6):
            x = self.features[i](x)
        x3 = x
        for i in range(7, 18):
            x = self.features[i](x)
        return x, x3, x2, x1, x0


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_LAYERS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3)}


class ResNetEncoder(nn.Module):
    """ResNet-50/101 whose layer4 trades its stride for dilation 2 (output stride 16)."""

    feature_channels = (512, 256, 64)
    out_channels = 2048

    def __init__(self, in_channels: int = 6, variant: str = "resnet101"):
        super().__init__()
        blocks = RESNET_LAYERS[variant]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.dilation = 1
        self.layer1 = self._make_layer(64, blocks[0], 1)
        self.layer2 = self._make_layer(128, blocks[1], 2)
        self.layer3 = self._make_layer(256, blocks[2], 2)
        self.layer4 = self._make_layer(512, blocks[3], 2, dilate=True)

    def _make_layer(self, planes: int, count: int, stride: int, dilate: bool = False) -> nn.Sequential:
        first_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [Bottleneck(self.inplanes, planes, stride, first_dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, self.dilation) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor):
        x0 = x
        x = self.relu(self.bn1(self.conv1(x)))
        x1 = x
        x2 = self.layer1(self.maxpool(x))
        x3 = self.layer2(x2)
        x = self.layer4(self.layer3(x3))
        return x, x3, x2, x1, x0


def make_backbone(name: str, in_channels: int = 6) -> nn.Module:
    if name == "mobilenetv2":
        return MobileNetV2Encoder(in_channels)
    if name in RESNET_LAYERS:
        return ResNetEncoder(in_channels, name)
    raise ValueError(f"unknown backbone {name!r}: use mobilenetv2, resnet50 or resnet101")
