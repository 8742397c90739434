"""Training recipes for the TensorFlow/Keras fixtures of the zoo.

A Keras fixture (``keras-cnn``) provides ``start``, ``train_step``,
``checkpoint``, ``restore`` and ``evaluate`` like the PyTorch ones; here it
becomes a ``Trainable`` for the training driver, so the fault campaign and
the resume routes run on it unchanged. Its checkpoints hold the Keras
variables and the Keras Adam state mapped onto the torch layout
(``exp_avg``/``exp_avg_sq``/``step``), so they travel through the same
checksummed writers (torch ``.pt`` and safetensors) as the torch fixtures'.

Resuming is deterministic: TensorFlow runs with op determinism on one thread,
the data stream is ``batch_at(step)`` and the checkpoint restores every
variable, both Adam moments and the optimizer's iteration count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from portability.checkpoint import Checkpoint

FRAMEWORK = "tensorflow"
METHODS = ("start", "train_step", "checkpoint", "restore", "evaluate")


class KerasFixtureTrainable:
    """A Keras zoo fixture's own training recipe seen as a ``Trainable``.

    Args:
        fixture: a Keras fixture (its Adam, cosine schedule, data order and metric).
        mid_step: called between the gradient computation and the optimizer update
            with the number of the step being taken (fault injection).
    """

    def __init__(self, fixture: Any, mid_step: Callable[[int], None] | None = None):
        self.fixture = fixture
        self.mid_step = mid_step
        self._attach(fixture.start())

    def _attach(self, run: Any) -> None:
        run.before_update = self.mid_step
        self.run = run

    @property
    def step(self) -> int:
        return self.run.step

    @property
    def model(self) -> Any:
        return self.run.model

    @property
    def optimizer(self) -> Any:
        return self.run.optimizer

    @property
    def output_name(self) -> str:
        return self.fixture.output_names[0]

    def numpy_batch(self, step: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The fixture's batch for ``step``: ``(inputs by name, targets)``."""
        return self.fixture.batch_at(step)

    def train_step(self) -> float:
        """One optimizer step; returns the loss."""
        return self.fixture.train_step(self.run)

    def capture(self) -> Checkpoint:
        """The full training state as a ``Checkpoint``."""
        return self.fixture.checkpoint(self.run)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from ``ckpt``.

        Raises:
            FormatError: the checkpoint lacks optimizer state or does not fit the model.
        """
        self._attach(self.fixture.restore(ckpt))

    def evaluate(self) -> float:
        """The fixture's metric on its eval split (inference mode)."""
        return float(self.fixture.evaluate(self.run.model))


def is_keras_trainable(fixture: Any) -> bool:
    """Whether ``fixture`` is a TensorFlow fixture with the step-wise training methods."""
    return getattr(fixture, "framework", None) == FRAMEWORK and all(hasattr(fixture, m) for m in METHODS)


def keras_fixture_recipe(fixture: Any, steps: int = 30) -> Any:
    """The ``TrainingRecipe`` of a Keras zoo fixture, for a short run of ``steps`` steps.

    Args:
        fixture: a fixture for which ``is_keras_trainable`` holds.
        steps: the campaign's default run length.

    Returns:
        A ``portability.adapters.torch_recipes.TrainingRecipe`` whose ``make`` builds a
        fresh, seeded ``KerasFixtureTrainable``.
    """
    from portability.adapters.torch_recipes import TrainingRecipe

    return TrainingRecipe(fixture.name, fixture.metric, fixture.higher_is_better,
                          lambda mid_step=None: KerasFixtureTrainable(type(fixture)(), mid_step), steps)
