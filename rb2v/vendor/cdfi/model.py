"""The CDFI_adacof network: a pruned AdaCoF kernel-estimation U-Net plus a GridNet
feature-synthesis stage. Module attribute names and ``nn.Sequential`` indices follow
the official state-dict keys, so the official checkpoint loads with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .adacof import adacof

# per-channel RGB means removed before kernel estimation
RGB_MEAN = (0.4631, 0.4352, 0.3990)
# the padded size must be a multiple of this (five 2x poolings)
SIZE_MULTIPLE = 32


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1)


def _conv_relu_stack(*chs: int) -> list[nn.Module]:
    """conv, ReLU, conv, ReLU, ... through the channel counts ``chs``."""
    layers: list[nn.Module] = []
    for cin, cout in zip(chs[:-1], chs[1:]):
        layers += [_conv(cin, cout), nn.ReLU(inplace=False)]
    return layers


def _up_conv(cin: int, cout: int) -> nn.Sequential:
    """Bilinear 2x (align_corners=True), conv, ReLU — the U-Net decoder step."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), _conv(cin, cout), nn.ReLU(inplace=False)
    )


def _head(chs: tuple[int, int, int, int], cout: int, last: nn.Module | None) -> nn.Sequential:
    """Three conv+ReLU, bilinear 2x up, conv to ``cout``, optional softmax/sigmoid."""
    layers = _conv_relu_stack(*chs) + [
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        _conv(chs[-1], cout),
    ]
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


class PrunedKernelEstimation(nn.Module):
    """U-Net predicting two sets of AdaCoF kernels (weights, row and column offsets),
    an occlusion map, a blend map and five side feature maps."""

    # encoder channel counts of the pruned model, level by level
    ENC = ((6, 24, 24, 24), (24, 48, 48, 52), (52, 99, 97, 95), (95, 156, 142, 159), (159, 92, 72, 121))
    # decoder (deconv stack, upsample output) from the deepest level up
    DEC = (((121, 99, 69, 36), 121), ((121, 74, 83, 81), 159), ((159, 83, 88, 72), 95), ((95, 45, 45, 45), 52))
    SIDE = ((24, 4), (52, 8), (95, 12), (159, 16), (121, 20))

    def __init__(self, kernel_size: int):
        super().__init__()
        taps = kernel_size * kernel_size
        for i, (cin, cout) in enumerate(self.SIDE, 1):
            # padding=1 on a 1x1 conv: the side maps are 2 px larger, border = bias
            setattr(self, f"module1by1_{i}", nn.Conv2d(cin, cout, kernel_size=1, stride=1, padding=1))
        for i, chs in enumerate(self.ENC, 1):
            setattr(self, f"moduleConv{i}", nn.Sequential(*_conv_relu_stack(*chs)))
            setattr(self, f"modulePool{i}", nn.AvgPool2d(kernel_size=2, stride=2))
        for level, (chs, up) in zip((5, 4, 3, 2), self.DEC):
            setattr(self, f"moduleDeconv{level}", nn.Sequential(*_conv_relu_stack(*chs)))
            setattr(self, f"moduleUpsample{level}", _up_conv(chs[-1], up))
        kernel_chs = (52, 52, 49, 21)
        self.moduleWeight1 = _head(kernel_chs, taps, nn.Softmax(dim=1))
        self.moduleAlpha1 = _head(kernel_chs, taps, None)
        self.moduleBeta1 = _head(kernel_chs, taps, None)
        self.moduleWeight2 = _head(kernel_chs, taps, nn.Softmax(dim=1))
        self.moduleAlpha2 = _head(kernel_chs, taps, None)
        self.moduleBeta2 = _head(kernel_chs, taps, None)
        self.moduleOcclusion = _head((52, 52, 52, 48), 1, nn.Sigmoid())
        self.moduleBlend = _head((52, 52, 52, 48), 1, nn.Sigmoid())

    def forward(self, x0: torch.Tensor, x1: torch.Tensor):
        x = torch.cat([x0, x1], 1)
        enc = []
        for i in range(1, 6):
            x = getattr(self, f"moduleConv{i}")(x)
            enc.append(x)
            x = getattr(self, f"modulePool{i}")(x)
        for level in (5, 4, 3, 2):
            x = getattr(self, f"moduleUpsample{level}")(getattr(self, f"moduleDeconv{level}")(x))
            x = x + enc[level - 1]
        heads = [
            self.moduleWeight1,
            self.moduleAlpha1,
            self.moduleBeta1,
            self.moduleWeight2,
            self.moduleAlpha2,
            self.moduleBeta2,
            self.moduleOcclusion,
            self.moduleBlend,
        ]
        side = [getattr(self, f"module1by1_{i}")(enc[i - 1]) for i in range(1, 6)]
        return [h(x) for h in heads], side


class LateralBlock(nn.Module):
    """Residual PReLU-conv-PReLU-conv; a 3x3 conv projects the skip when channels change."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.f = nn.Sequential(nn.PReLU(), _conv(cin, cout), nn.PReLU(), _conv(cout, cout))
        if cin != cout:
            self.conv = _conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fx = self.f(x)
        return fx + (self.conv(x) if fx.shape[1] != x.shape[1] else x)


class DownSamplingBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.PReLU(), nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1), nn.PReLU(), _conv(cout, cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class UpSamplingBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.f = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.PReLU(),
            _conv(cin, cout),
            nn.PReLU(),
            _conv(cout, cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class GridNet(nn.Module):
    """3 rows (32, 64, 96 channels) x 6 columns: 3 downsampling columns, 3 upsampling."""

    def __init__(self, cin: int, cout: int, chs: tuple[int, int, int] = (32, 64, 96)):
        super().__init__()
        self.lateral_init = LateralBlock(cin, chs[0])
        for r, ch in enumerate(chs):
            for c in range(5):
                setattr(self, f"lateral_{r}_{c}", LateralBlock(ch, ch))
        # all down blocks before all up blocks: the official state-dict order
        for r in range(2):
            for c in range(3):
                setattr(self, f"down_{r}_{c}", DownSamplingBlock(chs[r], chs[r + 1]))
        for r in range(2):
            for c in range(3):
                setattr(self, f"up_{r}_{c}", UpSamplingBlock(chs[r + 1], chs[r]))
        self.lateral_final = LateralBlock(chs[0], cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lat = lambda r, c: getattr(self, f"lateral_{r}_{c}")  # noqa: E731
        down = lambda r, c: getattr(self, f"down_{r}_{c}")  # noqa: E731
        up = lambda r, c: getattr(self, f"up_{r}_{c}")  # noqa: E731
        s0 = self.lateral_init(x)
        s1 = down(0, 0)(s0)
        s2 = down(1, 0)(s1)
        for c in (1, 2):  # downsampling columns
            s0 = lat(0, c - 1)(s0)
            s1 = down(0, c)(s0) + lat(1, c - 1)(s1)
            s2 = down(1, c)(s1) + lat(2, c - 1)(s2)
        for c in range(3):  # upsampling columns
            s2 = lat(2, c + 2)(s2)
            s1 = up(1, c)(s2) + lat(1, c + 2)(s1)
            s0 = up(0, c)(s1) + lat(0, c + 2)(s0)
        return self.lateral_final(s0)


class CDFIAdaCoF(nn.Module):
    """``CDFI_adacof``: frames (N,3,H,W) RGB in [0,1] -> the middle frame (N,3,H,W), unclamped."""

    def __init__(self, kernel_size: int = 11, dilation: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.kernel_pad = (kernel_size - 1) * dilation // 2
        self.get_kernel = PrunedKernelEstimation(kernel_size)
        self.context_synthesis = GridNet(126, 3)

    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        if frame0.shape != frame1.shape:
            raise ValueError(f"CDFI: frame shapes differ: {tuple(frame0.shape)} vs {tuple(frame1.shape)}")
        h, w = frame0.shape[-2:]
        # reflect-pad bottom/right to a multiple of 32, as the official code does
        ph, pw = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
        if ph:
            frame0, frame1 = (F.pad(f, [0, 0, 0, ph], mode="reflect") for f in (frame0, frame1))
        if pw:
            frame0, frame1 = (F.pad(f, [0, pw, 0, 0], mode="reflect") for f in (frame0, frame1))
        mean = frame0.new_tensor(RGB_MEAN).view(1, 3, 1, 1)
        (w1, a1, b1, w2, a2, b2, occ, blend), side = self.get_kernel(frame0 - mean, frame1 - mean)

        p = self.kernel_pad
        pad0 = F.pad(frame0, [p, p, p, p], mode="replicate")
        pad1 = F.pad(frame1, [p, p, p, p], mode="replicate")
        # every map is warped by both kernel sets; maps sharing a kernel set go in one call
        feats = [F.interpolate(f, size=pad0.shape[-2:], mode="bilinear", align_corners=False) for f in side]
        warped0 = adacof(torch.cat([pad0] + feats, 1), w1, a1, b1, self.dilation)
        warped1 = adacof(torch.cat([pad1] + feats, 1), w2, a2, b2, self.dilation)
        sizes = [3] + [f.shape[1] for f in feats]
        parts0, parts1 = warped0.split(sizes, 1), warped1.split(sizes, 1)
        warp0, warp1 = parts0[0], parts1[0]
        # synthesis input order: frame warps, then each feature level's two warps
        combined = [warp0, warp1] + [x for pair in zip(parts0[1:], parts1[1:]) for x in pair]
        synth = self.context_synthesis(torch.cat(combined, 1))
        out = blend * synth + (1 - blend) * (occ * warp0 + (1 - occ) * warp1)
        return out[:, :, :h, :w]
