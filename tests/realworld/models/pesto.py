"""PESTO pitch encoder (the network in pesto-pitch 2.0.1's weights/mir-1k.ckpt).

The Lightning checkpoint keeps the model under ``state_dict`` with an
``encoder.`` prefix and a 0-d ``shift`` buffer (the constant that turns the
relative pitch into an absolute one). The encoder reads one CQT frame (batch, 1,
264 bins; log magnitude): LayerNorm over the bins, a Conv1d prefilter and one
residual Conv1d prefilter (kernel 15, LeakyReLU 0.3), four 1x1 Conv1d layers
(40 -> 30 -> 30 -> 10 -> 3 channels), then a Toeplitz "linear" layer, a
convolution with one 1175-tap kernel that maps 792 features to 384 pitch bins,
and a softmax.

This file's checkpoint stores the residual prefilter as ``prefilt_layers.0``
(a bare Conv1d), the layout of the version it was trained with.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rng, save_npz

BINS = 264
OUT = 384
CHANNELS = (40, 30, 30, 10, 3)
KERNEL = 15
SLOPE = 0.3


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm([1, BINS])
        self.conv1 = nn.Sequential(nn.Conv1d(1, CHANNELS[0], KERNEL, padding=KERNEL // 2))
        self.prefilt_layers = nn.ModuleList(
            [nn.Conv1d(CHANNELS[0], CHANNELS[0], KERNEL, padding=KERNEL // 2)])
        layers: list[nn.Module] = []
        for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:], strict=False):
            # indices 0, 3, 6, 9 as in the checkpoint: conv, activation, dropout
            layers += [nn.Conv1d(cin, cout, 1), nn.LeakyReLU(SLOPE), nn.Dropout(0.2)]
        self.conv_layers = nn.Sequential(*layers)
        features = BINS * CHANNELS[-1]
        self.fc = nn.Conv1d(1, 1, features + OUT - 1, padding=OUT - 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layernorm(x)
        x = F.leaky_relu(self.conv1(x), SLOPE)
        for layer in self.prefilt_layers:
            x = F.leaky_relu(layer(x), SLOPE) + x
        x = self.conv_layers(x).flatten(1)
        return torch.softmax(self.fc(x.unsqueeze(1)).squeeze(1), dim=-1)


class Pesto(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.register_buffer("shift", torch.zeros((), dtype=torch.float32))

    def forward(self, cqt: torch.Tensor) -> torch.Tensor:
        return self.encoder(cqt)


def build() -> nn.Module:
    return Pesto().eval()


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    cqt = rng(3).normal(-40.0, 10.0, size=(4, 1, BINS)).astype(np.float32)
    return {"cqt": cqt}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
