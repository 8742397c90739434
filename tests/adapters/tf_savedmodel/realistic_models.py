"""Small PyTorch models whose ONNX export uses the translator's harder ops.

Resolvable as ``realistic_models:NAME`` model specs (with this folder on
``sys.path``). Every factory is seeded; ``*_inputs()`` give fixed batches.

- ``lstm_tagger``: a two-layer bidirectional, batch-first LSTM and a linear
  head (ONNX LSTM nodes, run by ``tf.scan``);
- ``upsampler``: Conv -> reflect Pad -> bilinear Resize -> ConvTranspose
  (stride 2, output_padding) -> nearest Resize -> Conv.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FEATURES, HIDDEN, TAGS, STEPS = 6, 8, 5, 7
CHANNELS, SIDE = 3, 8


class LSTMTagger(nn.Module):
    """Per-step tags from a stacked bidirectional LSTM."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN, TAGS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out)


class Upsampler(nn.Module):
    """An image decoder: padding, resizing and a transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(CHANNELS, 4, 3)
        self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.out = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = torch.relu(self.up(y))
        y = F.interpolate(y, scale_factor=0.5, mode="nearest")
        return self.out(F.pad(y, (0, 1, 2, 0)))


def lstm_tagger() -> LSTMTagger:
    return LSTMTagger().eval()


def upsampler() -> Upsampler:
    return Upsampler().eval()


def lstm_inputs(batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((batch, STEPS, FEATURES)).astype(np.float32)}


def upsampler_inputs(batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal((batch, CHANNELS, SIDE, SIDE)).astype(np.float32)}
