"""Small torch models for the check's tests, resolvable as ``toy_models:NAME`` specs.

Each factory is seeded, so two calls build identical weights. Variants differ in
exactly one way that a conversion can get wrong (GELU approximation, LayerNorm
epsilon), so a test can plant that break and see the check catch it.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import torch
from torch import nn

FEATURES, HIDDEN, CLASSES = 8, 8, 4


class ToyMLP(nn.Module):
    """Linear -> LayerNorm -> GELU -> Linear, with a square hidden weight."""

    def __init__(self, approximate: str = "none", eps: float = 1e-5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(FEATURES, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=eps)
        self.act = nn.GELU(approximate=approximate)
        self.square = nn.Linear(HIDDEN, HIDDEN)
        self.head = nn.Linear(HIDDEN, CLASSES)
        with torch.no_grad():  # give LayerNorm non-trivial affine weights
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.square(self.act(self.norm(self.fc1(x))))))


def mlp() -> ToyMLP:
    return ToyMLP()


def mlp_tanh_gelu() -> ToyMLP:
    return ToyMLP(approximate="tanh")


def mlp_ln_eps() -> ToyMLP:
    return ToyMLP(eps=1e-1)


class Crash(ToyMLP):
    """Kills its own process on the first forward pass (a segfaulting runtime)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        os.kill(os.getpid(), signal.SIGSEGV)
        return super().forward(x)


def crashing() -> Crash:
    return Crash()


def inputs(batch: int = 16) -> dict[str, np.ndarray]:
    """A fixed, seeded input batch."""
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((batch, FEATURES)).astype(np.float32) * 2.0}


def state_dict(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def accuracy_against_reference(predict) -> float:
    """Share of rows whose class matches the reference toy model's (a task metric)."""
    feed = inputs(64)
    with torch.no_grad():
        want = mlp()(torch.from_numpy(feed["x"])).argmax(-1).numpy()
    got = predict(feed)["output"].argmax(-1)
    return float((got == want).mean())


_NOISE = torch.Generator().manual_seed(1)


class Noisy(ToyMLP):
    """Adds fresh noise on every call: a runtime whose outputs drift run to run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1e-3 * torch.randn(x.shape[0], CLASSES, generator=_NOISE)


def noisy() -> Noisy:
    return Noisy()
