"""Silero VAD v6, 16 kHz (silero-vad 6.2.3's data/silero_vad_16k.safetensors).

The safetensors file was written for the package's tinygrad port; the layer
names match torch modules one to one. One step reads 64 samples of context plus
a 512-sample chunk (batch, 576) and the LSTM state (2, batch, 128: h then c):
reflect-pad 64 samples on the right, an STFT done as a Conv1d with 258 fixed
kernels (real and imaginary parts of 129 bins, hop 128), the magnitude, four
Conv1d + ReLU layers (the time axis shrinks to 1), an LSTMCell, ReLU, a 1x1
Conv1d and a sigmoid. Returns the speech probability (batch, 1) and the new
state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rng, save_npz

CONTEXT = 64
CHUNK = 512
HIDDEN = 128
N_FFT = 256
BINS = N_FFT // 2 + 1


class SileroVAD16k(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 2 * BINS, N_FFT, stride=N_FFT // 2, bias=False)
        self.conv1 = nn.Conv1d(BINS, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
        self.lstm_cell = nn.LSTMCell(HIDDEN, HIDDEN)
        self.final_conv = nn.Conv1d(HIDDEN, 1, 1)

    def forward(self, input: torch.Tensor, state: torch.Tensor):
        x = F.pad(input.unsqueeze(1), (0, CONTEXT), mode="reflect")
        x = self.stft_conv(x)
        x = torch.sqrt(x[:, :BINS] ** 2 + x[:, BINS:] ** 2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = F.relu(conv(x))
        x = x.squeeze(-1)
        h, c = self.lstm_cell(x, (state[0], state[1]))
        y = torch.sigmoid(self.final_conv(F.relu(h).unsqueeze(-1)))
        return y.squeeze(1).mean(dim=1, keepdim=True), torch.stack([h, c])


def build() -> nn.Module:
    return SileroVAD16k().eval()


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    """Two streams: a 300 Hz tone with harmonics and noise, and quiet noise; zero context and state."""
    t = np.arange(CHUNK) / 16000
    voiced = sum(np.sin(2 * math.pi * 300 * k * t) / k for k in range(1, 6)) * 0.3
    noise = rng(4).normal(0.0, 0.01, size=(2, CHUNK))
    chunk = np.stack([voiced, np.zeros(CHUNK)]) + noise
    audio = np.concatenate([np.zeros((2, CONTEXT)), chunk], axis=1).astype(np.float32)
    return {"input": audio, "state": np.zeros((2, 2, HIDDEN), dtype=np.float32)}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
