"""PyTorch tasks as ``TrainingRecipe`` instances: the zoo's fixtures, the built-ins, a user's.

Every PyTorch fixture of the zoo (``portability.fixtures``) becomes a recipe
through ``fixture_recipe``: its model, Adam over named parameters and cosine
schedule from ``start()``, ``batch_at`` as the data, its loss and its metric.
The built-in ``toy-mlp`` (Adam) and ``toy-sgd`` (SGD with Nesterov momentum and
weight decay, StepLR) need nothing but torch. A user's recipe factory becomes
a task through ``recipe_task``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from portability.training.recipe import TrainingRecipe
from portability.training.recipe_trainable import RecipeTrainable, recipe_components, seed_everything
from portability.training.task import Task


def recipe_task(reference: str, factory: Callable[[], TrainingRecipe], name: str | None = None) -> Task:
    """The campaign's view of a recipe factory (it is called once here to read the settings).

    Args:
        reference: how a worker process finds the factory (a task name or ``MODULE:FUNCTION``).
        factory: the factory itself.
        name: the name reports use (default: ``reference``).

    Raises:
        UsageError: the factory breaks the contract.
    """
    trial = RecipeTrainable(factory, reference=reference)
    trial.check_data_replays()
    probe = trial.recipe
    components = recipe_components(probe)

    def make(mid_step: Callable[[int], None] | None = None) -> RecipeTrainable:
        return RecipeTrainable(factory, mid_step, reference)

    return Task(name or reference, probe.metric, probe.higher_is_better, make, probe.steps, probe.every,
                components)


def blobs(seed: int, n: int, features: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters: ``n`` points in ``features`` dimensions, one centre per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    points = centres[labels] + rng.normal(0.0, 1.5, size=(n, features))
    return torch.tensor(points, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def shuffled(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int) -> Callable[[int], Iterator]:
    """``data(epoch)``: mini-batches in an order seeded by ``(seed, epoch)`` (last partial batch dropped)."""
    def data(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(inputs)))
        for start in range(0, len(inputs) - batch_size + 1, batch_size):
            rows = order[start:start + batch_size]
            yield inputs[rows], targets[rows]

    return data


def _toy(optimizer: str) -> TrainingRecipe:
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(32, 4))
    points, labels = blobs(1, 768, 16, 4)
    eval_x, eval_y = points[512:], labels[512:]
    scheduler: Any = None
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                                     weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=12, gamma=0.5)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(m: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

    def accuracy(m: torch.nn.Module) -> float:
        return float((m(eval_x).argmax(dim=1) == eval_y).float().mean())

    return TrainingRecipe(model=model, optimizer=opt, scheduler=scheduler,
                          data=shuffled(points[:512], labels[:512], 32, seed=3), loss=loss, evaluate=accuracy,
                          steps=30, every=5, metric="accuracy")


def toy_mlp() -> TrainingRecipe:
    """``toy-mlp``: an MLP with dropout on Gaussian clusters, Adam."""
    return _toy("adam")


def toy_sgd() -> TrainingRecipe:
    """``toy-sgd``: the same MLP with SGD (Nesterov momentum, weight decay) and StepLR."""
    return _toy("sgd")


BUILTIN: dict[str, Callable[[], TrainingRecipe]] = {"toy-mlp": toy_mlp, "toy-sgd": toy_sgd}


def fixture_recipe(fixture_type: type) -> TrainingRecipe:
    """A PyTorch zoo fixture's own training (``start``, ``batch_at``, loss, metric) as a recipe.

    Args:
        fixture_type: a ``TorchFixture`` subclass; a fresh instance is made.
    """
    fixture = fixture_type()
    run = fixture.start()
    per_epoch = fixture.batches_per_epoch()

    def data(epoch: int) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        for index in range(per_epoch):
            inputs, targets = fixture.batch_at(epoch * per_epoch + index)
            yield {n: torch.from_numpy(inputs[n]) for n in fixture.input_names}, torch.from_numpy(targets)

    def loss(model: Any, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> Any:
        return fixture.loss_from(fixture.forward(model, batch[0]), batch[1])

    return TrainingRecipe(model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, data=data,
                          loss=loss, evaluate=fixture.evaluate, higher_is_better=fixture.higher_is_better,
                          steps=30, every=5, metric=fixture.metric)


def fixture_task(fixture: Any) -> Task:
    """The task of a PyTorch zoo fixture (a recipe, so its state components are measured too)."""
    fixture_type = type(fixture)
    return recipe_task(fixture.name, lambda: fixture_recipe(fixture_type))


def builtin_task(name: str) -> Task:
    """A built-in task by name (``BUILTIN``)."""
    return recipe_task(name, BUILTIN[name])


def is_torch_trainable(fixture: Any) -> bool:
    """Whether ``fixture`` is a PyTorch fixture with the step-wise training methods."""
    return getattr(fixture, "framework", None) == "torch" and all(
        hasattr(fixture, m) for m in ("start", "batch_at", "batches_per_epoch", "loss_from", "evaluate"))


__all__ = ["BUILTIN", "blobs", "builtin_task", "fixture_recipe", "fixture_task", "is_torch_trainable",
           "recipe_task", "seed_everything", "shuffled", "toy_mlp", "toy_sgd"]
