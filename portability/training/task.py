"""A named, reproducible training task: what the campaign, the resume routes and the
TF continuation run, whatever built it (a user's recipe, a zoo fixture, a built-in).

Framework-free, so that every module that builds tasks can import it without
importing the others (``tasks`` is the one registry that knows them all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """How to rebuild one training run in any process.

    Attributes:
        name: what reports call it: a fixture's or built-in's name, or the recipe
            reference (``mypkg.train:recipe``) a worker process imports.
        metric: name of the final metric.
        higher_is_better: direction of the metric.
        make: ``make(mid_step=None) -> Trainable``, fresh and seeded; ``mid_step``
            is called between backward and the optimizer update (fault injection).
        steps: a campaign's run length.
        every: a campaign's checkpoint interval K.
        components: the pieces of state a resume restores that this run has
            (``portability.training.recipe.COMPONENTS``), or None when the task is
            no ``TrainingRecipe`` and its state cannot be dropped piece by piece.
    """

    name: str
    metric: str
    higher_is_better: bool
    make: Callable[..., Any]
    steps: int = 30
    every: int = 5
    components: tuple[str, ...] | None = None
