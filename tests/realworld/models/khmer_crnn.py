"""Khmer text-line recogniser (the network in khmer-ocr-ocm 0.1.0's ``assets/model.pth``).

A VGG-style stack reads a (batch, 1, 48, width) grey image scaled to [-1, 1]:
seven 3x3 (the last 2x2) convolutions with BatchNorm and ReLU, pooling that
halves the height five times and the width twice. The remaining height is
averaged away, the width becomes time, and a 2-layer bidirectional LSTM
(512 -> 2 x 256) feeds a Linear layer over 984 classes (983 characters and the
CTC blank at 0). The output is time-major, (time, batch, classes), as CTC wants.
Dropout layers hold no weights but keep the Sequential indices of the file.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import rng, save_npz

CLASSES = 984
HEIGHT = 48


def _block(cin: int, cout: int, kernel: int = 3, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=padding), nn.BatchNorm2d(cout), nn.ReLU()]


class KhmerCRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        layers += _block(1, 64) + [nn.MaxPool2d(2, 2), nn.Dropout2d(0.2)]
        layers += _block(64, 128) + [nn.MaxPool2d(2, 2), nn.Dropout2d(0.2)]
        layers += _block(128, 256) + _block(256, 256) + [nn.MaxPool2d((2, 1), (2, 1)), nn.Dropout2d(0.2)]
        layers += _block(256, 512) + _block(512, 512) + [nn.MaxPool2d((2, 1), (2, 1)), nn.Dropout2d(0.2)]
        layers += _block(512, 512, kernel=2, padding=0)
        self.cnn = nn.Sequential(*layers)
        self.rnn = nn.LSTM(512, 256, num_layers=2, bidirectional=True, dropout=0.2)
        self.fc = nn.Linear(512, CLASSES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.cnn(image).mean(dim=2).permute(2, 0, 1)  # (time, batch, channels)
        sequence, _ = self.rnn(features)
        return self.fc(sequence)


def build() -> nn.Module:
    return KhmerCRNN().eval()


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    # Two text-line-like images, 48 x 160: white paper (+1) with dark strokes (-1); then two of
    # uniform noise in [-1, 1], on which float32 rounding alone moves the logits past 1e-5.
    gen = rng(0)
    image = np.ones((2, 1, HEIGHT, 160), np.float32)
    for b in range(2):
        for _ in range(40):
            y, x = gen.integers(8, 40), gen.integers(0, 156)
            h, w = gen.integers(1, 12), gen.integers(1, 4)
            image[b, 0, y:y + h, x:x + w] = -1.0
    image += gen.normal(0.0, 0.05, image.shape).astype(np.float32)
    noise = rng(3).uniform(-1.0, 1.0, (2, 1, HEIGHT, 160)).astype(np.float32)
    return {"image": np.concatenate([np.clip(image, -1.0, 1.0), noise])}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
