"""Small torch models that checkpoints must be fitted to, as ``fitting_models:NAME`` specs.

Each declares one thing transformers honours when loading: a buffer the model
computes itself (non-persistent), ``_keys_to_ignore_on_load_unexpected``, or
a discriminator next to the generator in a GAN checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Positional(nn.Module):
    """Embedding + Linear; ``position_ids`` is a non-persistent buffer, as in current transformers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 2)
        self.register_buffer("position_ids", torch.arange(16).unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x + self.embed(self.position_ids[:, : x.shape[1]]))


class Declares(nn.Module):
    """A model that declares checkpoint names it does not load."""

    _keys_to_ignore_on_load_unexpected = [r"^teacher\."]

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def positional() -> Positional:
    return Positional()


def declares() -> Declares:
    return Declares()


def generator() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 4))


def discriminator() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))


def seq_inputs() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32)}


def vec_inputs() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)}
