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

from typing import Any

from portability.training.task import Task
from portability.training.zoo_trainable import ZooTrainable

FRAMEWORK = "tensorflow"
METHODS = ("start", "train_step", "checkpoint", "restore", "evaluate")


class KerasFixtureTrainable(ZooTrainable):
    """A Keras zoo fixture's own training recipe seen as a ``Trainable``; the fixture's
    ``train_step`` calls ``run.before_update(step)`` between gradient and update."""

    def _attach(self, run: Any) -> None:
        run.before_update = self.mid_step
        self.run = run


def is_keras_trainable(fixture: Any) -> bool:
    """Whether ``fixture`` is a TensorFlow fixture with the step-wise training methods."""
    return getattr(fixture, "framework", None) == FRAMEWORK and all(hasattr(fixture, m) for m in METHODS)


def keras_fixture_task(fixture: Any, steps: int = 30) -> Task:
    """The task of a Keras zoo fixture, for a short run of ``steps`` steps.

    It stays a ``Trainable`` of its own (TensorFlow has no ``torch.nn.Module`` to put in
    a ``TrainingRecipe``), so its state is not dropped piece by piece (``components`` is None).

    Args:
        fixture: a fixture for which ``is_keras_trainable`` holds.
        steps: the campaign's default run length.

    Returns:
        A ``Task`` whose ``make`` builds a fresh, seeded ``KerasFixtureTrainable``.
    """
    return Task(fixture.name, fixture.metric, fixture.higher_is_better,
                lambda mid_step=None: KerasFixtureTrainable(type(fixture)(), mid_step), steps)
