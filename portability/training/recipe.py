"""The training recipe contract: how a user hands their own run to the fault campaign.

A recipe factory is a module-level function with no arguments that returns a
fresh ``TrainingRecipe``::

    def recipe() -> portability.TrainingRecipe:
        torch.manual_seed(0)
        model = ResNet()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        return portability.TrainingRecipe(
            model=model, optimizer=optimizer,
            scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=20),
            data=lambda epoch: loader,                      # that epoch's batches
            loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
            evaluate=lambda model: accuracy(model, held_out),
            steps=60, every=10)

The campaign calls the factory once for every run it trains, in its own
process and in each worker process it starts (``portability faults --recipe
mypkg.train:recipe``), after seeding Python's, numpy's and torch's global
generators with 0, on one thread with deterministic algorithms.

One training step takes the next batch, computes ``loss(model, batch)`` in
train mode, back-propagates (through ``scaler`` when given), steps the optimizer
(``scaler.step`` + ``scaler.update``) and then the scheduler, once.

The data contract. ``data(epoch)`` returns an iterable of batches (a
``DataLoader`` is fine). The run takes batches from it until it is exhausted,
then calls ``data(epoch + 1)``. Just before each ``data(epoch)`` call the
global RNG states are recorded, and a checkpoint stores them with the epoch and
the number of batches consumed. A resume sets the generators back to the
states recorded at that epoch's start, calls ``data(epoch)`` again, skips the
batches already consumed, and then restores the generators to the checkpoint's
own states. So a resumed run replays the same order if ``data(epoch)`` depends
only on ``epoch`` and the global generators: a ``DataLoader(shuffle=True)``
without its own ``generator`` (it draws its seed from torch's global generator
when iterated), or one whose generator is seeded from the epoch inside
``data`` (``torch.Generator().manual_seed(1000 + epoch)``). A generator created
once in the factory and shared by every epoch is not replayed: it has drawn
epoch 0's order again after a restart. The campaign checks this before it runs
(``data(0)`` twice from the same generator states must give the same first
batch) and refuses such a recipe with the reason. Random augmentation drawn
from the global generators (in the dataset, the collate function or ``loss``)
replays too; with ``num_workers > 0`` each worker seeds itself from the same
global draw.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portability.errors import UsageError

# The pieces of training state a faithful resume restores (what ``state_components`` drops one by one).
COMPONENTS = ("rng", "data-position", "scheduler", "optimizer", "scaler", "model-buffers")
SEED = 0


@dataclass(kw_only=True)
class TrainingRecipe:
    """A user's training run, as the campaign rebuilds it in every process.

    Attributes:
        model: the ``torch.nn.Module`` to train (its buffers, e.g. BatchNorm
            statistics, are part of the saved state).
        optimizer: a ``torch.optim.Optimizer`` over ``model``'s parameters.
        data: ``data(epoch) -> iterable of batches`` (see the module docstring for
            what must hold so a resume replays the same order).
        loss: ``loss(model, batch) -> scalar tensor``, called in train mode.
        evaluate: ``evaluate(model) -> float``, the task metric P (called in eval
            mode without gradients; the generators are restored afterwards).
        scheduler: an LR scheduler stepped once per optimizer step, or None.
        scaler: a ``torch.amp.GradScaler``, or None.
        higher_is_better: the metric's direction (R is inverted for lower-is-better).
        steps: optimizer steps in a run.
        every: K, a checkpoint after every K-th step (``steps`` must exceed 4K).
        metric: the metric's name in reports.
    """

    model: Any
    optimizer: Any
    data: Callable[[int], Iterable[Any]]
    loss: Callable[[Any, Any], Any]
    evaluate: Callable[[Any], float]
    scheduler: Any = None
    scaler: Any = None
    higher_is_better: bool = True
    steps: int = 60
    every: int = 10
    metric: str = "metric"

    def __post_init__(self) -> None:
        for name in ("data", "loss", "evaluate"):
            if not callable(getattr(self, name)):
                raise UsageError(f"TrainingRecipe: {name} must be callable "
                                 f"(got {type(getattr(self, name)).__name__})")
        if not isinstance(self.steps, int) or not isinstance(self.every, int) or self.steps < 1 or self.every < 1:
            raise UsageError(f"TrainingRecipe: steps ({self.steps!r}) and every ({self.every!r}) "
                             "must be positive integers")


def factory_reference(recipe: str | Callable[[], TrainingRecipe]) -> str:
    """The importable name of a recipe factory, for worker processes.

    Args:
        recipe: ``"pkg.module:function"``, ``"path/to/file.py:function"``, or the
            function itself (module-level, so another process can import it).

    Raises:
        UsageError: a lambda, a nested function, or a string that is not ``MODULE:NAME``.
    """
    if isinstance(recipe, str):
        module, sep, name = recipe.rpartition(":")
        if not sep or not module or not name.isidentifier():
            raise UsageError(f"--recipe {recipe!r}: expected MODULE:FUNCTION (mypkg.train:recipe) "
                             "or FILE.py:FUNCTION")
        return recipe
    qualname = getattr(recipe, "__qualname__", "")
    if not callable(recipe) or not qualname.isidentifier():
        raise UsageError(f"recipe {recipe!r}: pass a module-level function (not a lambda or a nested "
                         "function): the campaign calls it again in fresh processes")
    module = recipe.__module__
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if main_file is None:
            raise UsageError(f"recipe {qualname}: defined in an interactive session; put it in a module "
                             "or a file so worker processes can import it")
        return f"{Path(main_file).resolve()}:{qualname}"
    return f"{module}:{qualname}"


def load_factory(reference: str) -> Callable[[], TrainingRecipe]:
    """Import the factory a ``factory_reference`` names (a MODULE from the current
    directory or the installed packages; a FILE.py with its folder on the import path).

    Raises:
        UsageError: the module or file cannot be imported, or lacks the function.
    """
    reference = factory_reference(reference)
    target, _, name = reference.rpartition(":")
    cwd = os.getcwd()
    if not target.endswith(".py") and cwd not in sys.path:
        sys.path.insert(0, cwd)  # MODULE is found in the current directory, as ``python -m`` finds it
    try:
        module = _import_file(Path(target)) if target.endswith(".py") else importlib.import_module(target)
    except UsageError:
        raise
    except Exception as exc:  # the user's module may raise anything on import
        raise UsageError(f"--recipe {reference}: cannot import {target} ({type(exc).__name__}: {exc})") from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"--recipe {reference}: {target} has no function {name!r}")
    return factory


def build_recipe(factory: Callable[[], TrainingRecipe], reference: str) -> TrainingRecipe:
    """Call the factory and check that it kept the contract.

    Raises:
        UsageError: it raised, or returned something other than a ``TrainingRecipe``.
    """
    try:
        recipe = factory()
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"recipe {reference} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(recipe, TrainingRecipe):
        raise UsageError(f"recipe {reference} returned a {type(recipe).__name__}, not a "
                         "portability.TrainingRecipe")
    return recipe


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"--recipe: {path} not found")
    resolved = path.resolve()
    module_name = "portability_recipe_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise UsageError(f"--recipe: {path} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    if str(resolved.parent) not in sys.path:
        sys.path.insert(0, str(resolved.parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
