"""What each piece of training state is worth to one run.

For each component a resume restores (``rng``, ``data-position``, ``scheduler``,
``optimizer``, ``scaler``, ``model-buffers``), the run is resumed from the same
checkpoint with that one component left as a fresh process would have it, and
finished. Against the uninterrupted run:

- ``bitwise``: every loss over the remaining steps, the final metric and the final
  model and optimizer state are identical bit for bit (losing the component did
  not matter to this run);
- ``loss_deviation``: the largest absolute loss difference over those steps;
- ``R``: the final metric over the uninterrupted run's (inverted for
  lower-is-better metrics, so 1 is perfect either way).

A component the recipe does not have (no scheduler, no scaler, a model without
buffers) is reported as not applicable, with null figures.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from portability.core.checkpoint import Checkpoint, TrainingState
from portability.core.tensors import as_array
from portability.core.training_codec import pack_training
from portability.faults.resume_parity import loss_deviation
from portability.training.driver import TrainConfig, train
from portability.training.recipe import COMPONENTS
from portability.training.task import Task

ABSENT = {"scheduler": "the recipe has no scheduler", "scaler": "the recipe has no scaler",
          "model-buffers": "the model has no buffers"}


@dataclass
class ComponentResult:
    """One component's figures (the JSON ``state_components`` entry)."""

    component: str
    applicable: bool
    bitwise: bool | None = None
    loss_deviation: float | None = None
    R: float | None = None
    resumed_from_step: int | None = None
    final_metric: float | None = None
    reference_metric: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_components(task: Task, total_steps: int, resume_at: int, reference: Any = None,
                     reference_state: Checkpoint | None = None) -> list[ComponentResult]:
    """Resume ``task`` at ``resume_at`` once per component, that component dropped.

    Args:
        task: a task built from a ``TrainingRecipe`` (``task.components`` is not None).
        total_steps: N.
        resume_at: S, the step of the checkpoint every resume starts from (0 < S < N).
        reference / reference_state: the uninterrupted run's ``TrainResult`` and final
            state, if already trained (else trained here).

    Returns:
        One result per component, in ``COMPONENTS`` order; empty for a task that is no recipe.
    """
    from portability.harness.recoverability import recoverability_ratio

    if task.components is None:
        return []
    if reference is None or reference_state is None:
        uninterrupted = task.make()
        reference = train(uninterrupted, TrainConfig(total_steps))
        reference_state = uninterrupted.capture()
    first = task.make()
    train(first, TrainConfig(resume_at))
    saved = first.capture()
    results = []
    for component in COMPONENTS:
        if component not in task.components:
            results.append(ComponentResult(component, False, reason=ABSENT.get(component, "not in this run")))
            continue
        resumed = task.make()
        resumed.restore(copy.deepcopy(saved), drop=(component,))
        run = train(resumed, TrainConfig(total_steps))
        same_losses, deviation, _ = loss_deviation(reference.losses, run.losses)
        same_end = run.final_metric == reference.final_metric and same_state(resumed.capture(), reference_state)
        r = recoverability_ratio(reference.final_metric, run.final_metric, task.higher_is_better)
        results.append(ComponentResult(component, True, same_losses and same_end, deviation, r, resume_at,
                                       run.final_metric, reference.final_metric))
    return results


def same_state(a: Checkpoint, b: Checkpoint) -> bool:
    """The model's tensors and the optimizer's state (hyperparameters included) are identical."""
    if list(a.tensors) != list(b.tensors):
        return False
    if not all(_same_bits(as_array(a.tensors[n]), as_array(b.tensors[n])) for n in a.tensors):
        return False
    opt_a = a.training.optimizer if a.training is not None else None
    opt_b = b.training.optimizer if b.training is not None else None
    if opt_a is None or opt_b is None:
        return opt_a is opt_b
    text_a, arrays_a = pack_training(TrainingState(optimizer=opt_a))
    text_b, arrays_b = pack_training(TrainingState(optimizer=opt_b))
    return text_a == text_b and arrays_a.keys() == arrays_b.keys() and all(
        _same_bits(arrays_a[k], arrays_b[k]) for k in arrays_a)


def _same_bits(x: np.ndarray, y: np.ndarray) -> bool:
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
