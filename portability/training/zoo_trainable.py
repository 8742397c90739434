"""What every zoo fixture's training recipe shares, whatever its framework.

A fixture trains itself step by step (``start``, ``train_step``, ``checkpoint``,
``restore``, ``evaluate``, ``batch_at``); ``ZooTrainable`` presents that as the
training driver's ``Trainable``. Subclasses only say how fault injection hooks
in between the gradient and the update (``_attach``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from portability.core.checkpoint import Checkpoint


class ZooTrainable:
    """A zoo fixture's own training recipe seen as a ``Trainable``.

    Args:
        fixture: the fixture (its optimizer, schedule, data order and metric).
        mid_step: called between the gradient computation and the optimizer
            update with the number of the step being taken (fault injection).
    """

    def __init__(self, fixture: Any, mid_step: Callable[[int], None] | None = None):
        self.fixture = fixture
        self.mid_step = mid_step
        self._attach(fixture.start())

    def _attach(self, run: Any) -> None:
        """Adopt a fixture run and hook ``mid_step`` into it."""
        raise NotImplementedError

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
        """The fixture's metric on its eval split."""
        return float(self.fixture.evaluate(self.run.model))
