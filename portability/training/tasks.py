"""Every task the campaign can run, by name or reference: the one registry.

- ``MODULE:FUNCTION`` or ``FILE.py:FUNCTION``: a user's recipe factory
  (``portability.TrainingRecipe``);
- a PyTorch zoo fixture (``mlp``, ``cnn``...): its training as a recipe;
- the Keras fixture (``keras-cnn``): its own ``Trainable``;
- the built-ins ``toy-mlp`` and ``toy-sgd`` (torch only, no zoo needed).

The framework modules (``torch_recipes``, ``keras_recipes``) build tasks and
import only ``task``; this module imports them lazily, so none imports another.
"""

from __future__ import annotations

from typing import Any

from portability.errors import UsageError
from portability.training.task import Task

BUILTIN_NAMES = ("toy-mlp", "toy-sgd")
STEP_METHODS = ("start", "train_step", "checkpoint", "restore", "evaluate")


def is_reference(ref: str) -> bool:
    """Whether ``ref`` names a recipe factory (``MODULE:FUNCTION``) rather than a task name."""
    return ":" in ref


def get_task(ref: str) -> Task:
    """The task a name or recipe reference stands for.

    Raises:
        UsageError: unknown name (lists the known ones), or a recipe that cannot be
            imported or breaks the contract.
    """
    if is_reference(ref):
        from portability.training.recipe import load_factory
        from portability.training.torch_recipes import recipe_task

        return recipe_task(ref, load_factory(ref))
    if ref in BUILTIN_NAMES:
        from portability.training.torch_recipes import builtin_task

        return builtin_task(ref)
    fixture = _fixture(ref)
    if fixture is not None and trainable(fixture):
        if fixture.framework == "tensorflow":
            from portability.training.keras_recipes import keras_fixture_task

            return keras_fixture_task(fixture)
        from portability.training.torch_recipes import fixture_task

        return fixture_task(fixture)
    reason = " (a fixture without a training recipe)" if fixture is not None else ""
    raise UsageError(f"no training recipe for {ref!r}{reason} (known: {', '.join(task_names())}; "
                     "or pass your own as MODULE:FUNCTION)")


def task_names() -> list[str]:
    """Every named task: the trainable zoo fixtures, then the built-ins."""
    names: list[str] = []
    try:
        from portability.fixtures.registry import all_fixtures

        names = [f.name for f in all_fixtures() if trainable(f)]
    except ImportError:  # the zoo is optional
        pass
    return names + [n for n in BUILTIN_NAMES if n not in names]


def trainable(fixture: Any) -> bool:
    """Whether a zoo fixture trains step by step (a torch or Keras fixture with the methods)."""
    framework = getattr(fixture, "framework", None)
    return framework in ("torch", "tensorflow") and all(hasattr(fixture, m) for m in STEP_METHODS)


def _fixture(name: str) -> Any:
    try:
        from portability.fixtures.registry import get_fixture

        return get_fixture(name)
    except (ImportError, UsageError):
        return None
