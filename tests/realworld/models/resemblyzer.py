"""GE2E speaker encoder (the network in resemblyzer 0.1.4's ``pretrained.pt``).

Three stacked LSTM layers read a (batch, frames, 40) log-mel spectrogram; the
last layer's final hidden state goes through Linear(256, 256) and ReLU and is
L2-normalised. The training checkpoint also carries the GE2E loss's scalar
``similarity_weight`` and ``similarity_bias``: they are parameters of the module
here so that the ``model_state`` dict loads strictly, but forward does not use
them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import rng, save_npz

MELS = 40
HIDDEN = 256
EMBED = 256
LAYERS = 3
FRAMES = 160  # 1.6 s partial utterances, 10 ms hop


class SpeakerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MELS, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBED)
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(mels)
        embed = torch.relu(self.linear(h_n[-1]))
        return embed / embed.norm(dim=1, keepdim=True).clamp_min(1e-12)


def build() -> nn.Module:
    return SpeakerEncoder().eval()


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    # log-mel-like values: the package feeds mel power spectrograms (non-negative).
    mels = np.abs(rng(0).normal(0.0, 0.3, size=(2, FRAMES, MELS))).astype(np.float32)
    return {"mels": mels}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
