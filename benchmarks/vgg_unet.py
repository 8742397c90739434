"""A VGG16-BN + U-Net text detector in the shape of CRAFT, with seeded random weights.

The layers and sizes follow CRAFT (Baek et al., 2019): a VGG16 backbone with
BatchNorm, a dilated conv head, four up-convolution blocks joined to the
backbone's stages by bilinear resizing and channel concatenation, and a small
classifier returning a two-channel score map channels-last plus the feature
map. About 20M parameters (83 MB of float32), as the published weights. The
benchmark uses it as ``benchmarks.vgg_unet:build`` with ``inputs()`` (a
1x3x64x96 image); no pretrained weights are needed to time it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# VGG16 with BatchNorm: the stages CRAFT taps, ending at relu2_2, relu3_3, relu4_3, relu5_3.
_STAGES = ((3, 64, 64), ("M", 128, 128), ("M", 256, 256, 256), ("M", 512, 512, 512), ("M", 512, 512, 512))


def _stage(spec, in_channels):
    layers, channels = [], in_channels
    for item in spec:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        if channels == item and not layers:  # the first stage's input width is its spec head
            continue
        layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
        channels = item
    return nn.Sequential(*layers), channels


class _DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, mid: int, out: int) -> None:
        super().__init__(nn.Conv2d(in_channels + mid, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True))


class VGGUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        stages, channels = [], 3
        for spec in _STAGES:
            stage, channels = _stage(spec, channels)
            stages.append(stage)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(512, 1024, 3, padding=6, dilation=6),
                                  nn.Conv2d(1024, 1024, 1))
        self.up1, self.up2 = _DoubleConv(1024, 512, 256), _DoubleConv(512, 256, 128)
        self.up3, self.up4 = _DoubleConv(256, 128, 64), _DoubleConv(128, 64, 32)
        self.classify = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 2, 1))

    def forward(self, image: torch.Tensor):
        taps = []
        x = image
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        y = torch.cat([self.head(x), taps[4]], dim=1)
        for up, tap in ((self.up1, taps[3]), (self.up2, taps[2]), (self.up3, taps[1])):
            y = up(y)
            y = F.interpolate(y, size=tap.shape[2:], mode="bilinear", align_corners=False)
            y = torch.cat([y, tap], dim=1)
        feature = self.up4(y)
        return self.classify(feature).permute(0, 2, 3, 1), feature


def build() -> nn.Module:
    """The detector with seeded random weights, in eval mode. BatchNorm statistics are
    those of seeded random images, so activations keep a trained network's scale
    (statistics that do not fit the weights drive deep activations into subnormal
    floats, which every runtime computes many times slower)."""
    torch.manual_seed(0)
    model = VGGUNet()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 64, 96))
    return model.eval()


def inputs() -> dict[str, np.ndarray]:
    """One 64x96 RGB image, normalised like ImageNet inputs."""
    return {"image": np.random.default_rng(2).standard_normal((1, 3, 64, 96)).astype(np.float32)}
