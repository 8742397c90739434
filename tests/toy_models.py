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


WIDE = 2048


class WideDifference(nn.Module):
    """``a(x) - b(x)`` for two wide Linear layers whose weights differ by 1e-3: the output
    (about 0.04) is the difference of two sums of 2048 terms, so float32 rounding alone
    moves it by about 4e-5, past atol 1e-5. ``reorder`` computes the same function with
    the features in reverse order: another summation order, as another runtime would use.
    """

    def __init__(self, reorder: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(WIDE, 8)
        self.b = nn.Linear(WIDE, 8)
        self.reorder = reorder
        with torch.no_grad():
            self.a.weight.normal_(0.0, 0.5)
            self.b.weight.copy_(self.a.weight + 1e-3 * torch.randn_like(self.a.weight))
            self.b.bias.copy_(self.a.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reorder:
            xf = x.flip(-1)
            return (nn.functional.linear(xf, self.a.weight.flip(-1), self.a.bias)
                    - nn.functional.linear(xf, self.b.weight.flip(-1), self.b.bias))
        return self.a(x) - self.b(x)


def wide_difference() -> WideDifference:
    return WideDifference()


def wide_difference_reordered() -> WideDifference:
    return WideDifference(reorder=True)


def wide_inputs(batch: int = 16) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).standard_normal((batch, WIDE)).astype(np.float32)}


class Float32Only(ToyMLP):
    """Multiplies by a float32 identity in its forward: it cannot run in float64."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) @ torch.eye(CLASSES, dtype=torch.float32)


def float32_only() -> Float32Only:
    return Float32Only()


_SHARED: list[ToyMLP] = []


def shared_mlp() -> ToyMLP:
    """The same module object on every call, as a factory with a module-level model returns it."""
    if not _SHARED:
        _SHARED.append(ToyMLP())
    return _SHARED[0]
