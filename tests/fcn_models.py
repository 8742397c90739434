"""A small fully convolutional net for the dynamic-shape tests, resolvable as ``fcn_models:fcn``.

Conv + BatchNorm + ReLU, a ceil-mode max pool (its output size depends on the
input's parity), a 1x1 head and a softmax over channels: any height and width
of 2 or more runs. ``flat_head`` ends in a Linear over the flattened map, so it
only takes the size it was built for.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class FCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.head = nn.Conv2d(8, 2, 1)
        with torch.no_grad():  # statistics a trained net would have
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.pool(torch.relu(self.bn(self.conv(image))))), dim=1)


class SizeBranch(nn.Module):
    """Takes a branch on the image height: torch.export can only keep the traced height."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y = self.conv(image)
        return y * 2 if image.shape[2] == 12 else y


def fcn() -> FCN:
    return FCN().eval()


def size_branch() -> SizeBranch:
    return SizeBranch().eval()


def images(batch: int, height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((batch, 3, height, width)).astype(np.float32)}
