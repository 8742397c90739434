"""Training recipes: how to build a fresh, seeded ``TorchTrainable`` for a named task.

A recipe fixes the model, loss, optimizer, data and metric, so the fault
campaign and the resume checks can rebuild the same run in any process. Every
PyTorch fixture of the zoo (``portability.fixtures``: ``start``, ``train_step``,
``checkpoint``, ``restore``, ``evaluate``) becomes a recipe through
``FixtureTrainable``; the built-in ``toy-mlp`` task needs nothing but torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from portability.errors import UsageError
from portability.training.torch_backend import ShuffledBatches, TorchTrainable, set_deterministic
from portability.training.zoo_trainable import ZooTrainable


@dataclass(frozen=True)
class TrainingRecipe:
    """A named, reproducible training setup.

    Attributes:
        name: task name (a fixture name where it comes from the zoo).
        metric: name of the final metric.
        higher_is_better: direction of the metric.
        make: ``make(mid_step) -> TorchTrainable``, fresh and seeded; ``mid_step``
            is passed through to the trainable (fault injection).
        steps: a short campaign length that still moves the metric.
    """

    name: str
    metric: str
    higher_is_better: bool
    make: Callable[..., TorchTrainable]
    steps: int = 30


def _blobs(seed: int, n: int, features: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    points = centres[labels] + rng.normal(0.0, 1.5, size=(n, features))
    return torch.tensor(points, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def _mlp(mid_step=None, lr: float = 1e-2) -> TorchTrainable:
    set_deterministic()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(32, 4))
    points, labels = _blobs(1, 768, 16, 4)
    train_x, train_y, eval_x, eval_y = points[:512], labels[:512], points[512:], labels[512:]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def accuracy(m: torch.nn.Module) -> float:
        return float((m(eval_x).argmax(dim=1) == eval_y).float().mean())

    return TorchTrainable(model, torch.nn.functional.cross_entropy, optimizer,
                          ShuffledBatches(train_x, train_y, 32, seed=3), accuracy, mid_step)


class FixtureTrainable(ZooTrainable):
    """A PyTorch zoo fixture's own training recipe seen as a ``Trainable``.

    Args:
        fixture: a ``TorchFixture`` (its Adam, cosine schedule, data order and metric).
        mid_step: called between backward and the optimizer update (fault injection).
    """

    def __init__(self, fixture: Any, mid_step: Callable[[int], None] | None = None):
        set_deterministic()
        super().__init__(fixture, mid_step)

    def _attach(self, run: Any) -> None:
        self.run = run
        if self.mid_step is not None:
            run.optimizer.register_step_pre_hook(lambda *_: self.mid_step(self.run.step + 1))

    def loss_of(self, inputs: dict[str, np.ndarray], targets: np.ndarray) -> Any:
        """The fixture's training loss on a numpy batch (train mode)."""
        self.run.model.train()
        feed = {n: torch.from_numpy(inputs[n]) for n in self.fixture.input_names}
        return self.fixture.loss_from(self.fixture.forward(self.run.model, feed), torch.from_numpy(targets))

    def evaluate(self) -> float:
        value = super().evaluate()
        self.run.model.train()
        return value


def fixture_recipe(fixture: Any, steps: int = 30) -> TrainingRecipe:
    """The recipe of a PyTorch zoo fixture, for a short run of ``steps`` steps."""
    return TrainingRecipe(fixture.name, fixture.metric, fixture.higher_is_better,
                          lambda mid_step=None: FixtureTrainable(type(fixture)(), mid_step), steps)


BUILTIN: dict[str, TrainingRecipe] = {
    "toy-mlp": TrainingRecipe("toy-mlp", "accuracy", True, _mlp, steps=30),
}


def training_recipe(name: str) -> TrainingRecipe:
    """The recipe for a task: a PyTorch zoo fixture's, else a built-in one.

    Raises:
        UsageError: no recipe by that name (lists the known ones).
    """
    if name in BUILTIN:
        return BUILTIN[name]
    fixture = _fixture(name)
    if fixture is not None and _trainable(fixture):
        if fixture.framework != "torch":
            from portability.training.keras_recipes import keras_fixture_recipe

            return keras_fixture_recipe(fixture)
        return fixture_recipe(fixture)
    reason = " (a fixture without a training recipe)" if fixture is not None else ""
    raise UsageError(f"no training recipe for {name!r}{reason} (known: {', '.join(recipe_names())})")


def recipe_names() -> list[str]:
    """Every task with a recipe: the trainable zoo fixtures, then the built-ins."""
    names = []
    try:
        from portability.fixtures.registry import all_fixtures

        names = [f.name for f in all_fixtures() if _trainable(f)]
    except ImportError:  # the zoo is optional
        pass
    return names + [n for n in BUILTIN if n not in names]


def _trainable(fixture: Any) -> bool:
    if getattr(fixture, "framework", None) == "tensorflow":  # Keras fixtures: adapters/keras_recipes.py
        from portability.training.keras_recipes import is_keras_trainable

        return is_keras_trainable(fixture)
    return getattr(fixture, "framework", None) == "torch" and all(
        hasattr(fixture, m) for m in ("start", "train_step", "checkpoint", "restore", "evaluate"))


def _fixture(name: str) -> Any:
    try:
        from portability.fixtures.registry import get_fixture

        return get_fixture(name)
    except (ImportError, UsageError):
        return None
