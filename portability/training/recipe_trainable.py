"""A ``TrainingRecipe`` run as the training driver's ``Trainable``: one step, capture, restore.

The checkpoint is the seed's dict layout plus what an exact resume needs::

    {"model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "scaler_state_dict",
     "epoch", "global_step", "loss", "data_position": {"epoch", "batch"},
     "rng": {"python", "numpy", "torch", "epoch_start": {...}}}

``restore`` also takes checkpoints other tools wrote (a Trainer directory, a
Lightning ``.ckpt``, the tutorial dict): whatever of the above they hold is put
back; without a recorded data position the batches are skipped from epoch 0 up
to the step, as the Trainer does. ``restore(drop=...)`` leaves chosen pieces of
state fresh, which is how ``state_components`` measures what each is worth.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch

from portability.adapters.torch.numpy_bridge import numpy_to_tensor, to_torch
from portability.adapters.torch.state_dict import checkpoint_from_object
from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.errors import FormatError, UsageError
from portability.training.recipe import COMPONENTS, SEED, TrainingRecipe, build_recipe
from portability.training.rng_forms import rng_states, set_rng_states
from portability.training.torch_backend import set_deterministic, tied_names

SCALER_KEY = "scaler_state_dict"


def seed_everything(seed: int = SEED) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def recipe_components(recipe: TrainingRecipe) -> tuple[str, ...]:
    """The pieces of state this recipe has (no scheduler, scaler or buffers: not applicable)."""
    present = {"rng": True, "data-position": True, "optimizer": True,
               "scheduler": recipe.scheduler is not None, "scaler": recipe.scaler is not None,
               "model-buffers": bool(buffer_names(recipe.model))}
    return tuple(c for c in COMPONENTS if present[c])


def buffer_names(model: torch.nn.Module) -> list[str]:
    """state_dict names of the module's persistent buffers."""
    params = {n for n, _ in model.named_parameters()}
    return [n for n in model.state_dict() if n not in params]

_EPOCH_END = object()  # what next() gives back when an epoch's batches run out


class RecipeTrainable:
    """One run of a recipe: seeded, deterministic, checkpointable.

    Args:
        factory: the recipe factory (called once, after seeding every generator).
        mid_step: called with the step number between backward and the update.
        reference: the factory's name, for messages.
    """

    def __init__(self, factory: Callable[[], TrainingRecipe], mid_step: Callable[[int], None] | None = None,
                 reference: str = "recipe"):
        set_deterministic()
        seed_everything()
        self.recipe = build_recipe(factory, reference)
        self.reference, self.mid_step = reference, mid_step
        self.model, self.optimizer = self.recipe.model, self.recipe.optimizer
        if not isinstance(self.model, torch.nn.Module) or not isinstance(self.optimizer, torch.optim.Optimizer):
            raise UsageError(f"recipe {reference}: model must be a torch.nn.Module and optimizer a "
                             f"torch.optim.Optimizer (got {type(self.model).__name__}, "
                             f"{type(self.optimizer).__name__})")
        self._step, self.epoch, self.batch = 0, 0, 0
        self.loss_value: float | None = None
        self.epoch_rng: dict[str, Any] | None = None
        self._batches: Iterator[Any] | None = None
        self.last_batch: Any = None

    @property
    def step(self) -> int:
        return self._step

    def _next_batch(self) -> Any:
        while True:
            if self._batches is None:
                self.epoch_rng = rng_states()
                self._batches = iter(self.recipe.data(self.epoch))
            batch = next(self._batches, _EPOCH_END)
            if batch is _EPOCH_END:
                if self.batch == 0:
                    raise UsageError(f"recipe {self.reference}: data({self.epoch}) gave no batches")
                self.epoch, self.batch, self._batches = self.epoch + 1, 0, None
                continue
            self.batch += 1
            return batch

    def train_step(self) -> float:
        """Next batch, loss, backward, optimizer (and scaler) step, scheduler step; returns the loss."""
        r = self.recipe
        self.model.train()
        batch = self._next_batch()
        self.last_batch = batch
        self.optimizer.zero_grad(set_to_none=True)
        loss = r.loss(self.model, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise UsageError(f"recipe {self.reference}: loss(model, batch) must return a scalar tensor "
                             f"(got {type(loss).__name__})")
        (r.scaler.scale(loss) if r.scaler is not None else loss).backward()
        if self.mid_step is not None:
            self.mid_step(self._step + 1)
        if r.scaler is not None:
            r.scaler.step(self.optimizer)
            r.scaler.update()
        else:
            self.optimizer.step()
        if r.scheduler is not None:
            r.scheduler.step()
        self._step += 1
        self.loss_value = float(loss.detach())
        return self.loss_value

    def capture(self) -> Checkpoint:
        """The whole training state, copied (training may go on). The RNG states are the
        process's global generators': capture before building another run, which seeds them."""
        r = self.recipe
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        for alias, target in tied_names(self.model).items():
            weights[alias] = weights[target]  # clone() broke the tie; store it once
        rng = rng_states()
        if self.epoch_rng is not None:
            rng["epoch_start"] = self.epoch_rng
        obj: dict[str, Any] = {"model_state_dict": weights,
                               "optimizer_state_dict": copy.deepcopy(self.optimizer.state_dict())}
        if r.scheduler is not None:
            obj["scheduler_state_dict"] = copy.deepcopy(r.scheduler.state_dict())
        if r.scaler is not None:
            obj[SCALER_KEY] = copy.deepcopy(r.scaler.state_dict())
        obj.update({"epoch": self.epoch, "global_step": self._step, "loss": self.loss_value,
                    "data_position": {"epoch": self.epoch, "batch": self.batch}, "rng": rng})
        return checkpoint_from_object(obj, f"recipe {self.reference}")

    def restore(self, ckpt: Checkpoint, drop: tuple[str, ...] = ()) -> None:
        """Continue from ``ckpt``, leaving the pieces named in ``drop`` as the factory made them.

        Raises:
            FormatError: no optimizer state or step, or weights that do not fit the model.
            UsageError: ``drop`` names an unknown component.
        """
        unknown = [c for c in drop if c not in COMPONENTS]
        if unknown:
            raise UsageError(f"unknown state component(s) {unknown} (known: {', '.join(COMPONENTS)})")
        ts = ckpt.training
        if ts is None or ts.optimizer is None:
            raise FormatError("checkpoint lacks optimizer state: cannot resume training")
        step, position = self._where(ts)
        self._load_weights(ckpt, keep_buffers="model-buffers" in drop)
        if "optimizer" not in drop:
            self.optimizer.load_state_dict({"state": _torch(ts.optimizer.state),
                                            "param_groups": _torch(ts.optimizer.param_groups)})
        r = self.recipe
        if r.scheduler is not None and ts.scheduler is not None and "scheduler" not in drop:
            r.scheduler.load_state_dict(_torch(ts.scheduler))
        scaler_state = ts.extra.get(SCALER_KEY)
        if r.scaler is not None and scaler_state is not None and "scaler" not in drop:
            r.scaler.load_state_dict(_torch(scaler_state))
        self._step = step
        rng = {} if "rng" in drop else dict(ts.rng or {})
        epoch_start = rng.pop("epoch_start", None)
        self._seek(position if "data-position" not in drop else {"epoch": 0, "batch": 0}, epoch_start)
        if rng:
            set_rng_states(rng)
        self.loss_value = None if ts.loss is None else float(as_array(ts.loss))

    def _where(self, ts: Any) -> tuple[int, Any]:
        """``(steps taken, data position)`` of a checkpoint. Without a step counter: Adam's own
        step count, else the start of the epoch after the saved one (the tutorial layout saves
        ``epoch`` when it ends).

        Raises:
            FormatError: no step counter, no Adam step count and no epoch.
        """
        if ts.global_step is not None:
            return int(as_array(ts.global_step)), ts.data_position
        counts = [as_array(s["step"]) for s in ts.optimizer.state.values() if isinstance(s, dict) and "step" in s]
        if counts:
            return int(max(float(c) for c in counts)), None
        if ts.epoch is not None:
            epoch = int(as_array(ts.epoch)) + 1
            return sum(_count(self.recipe.data(e)) for e in range(epoch)), {"epoch": epoch, "batch": 0}
        raise FormatError("checkpoint has no step counter, no epoch and no Adam step count: cannot tell where "
                          "the run stood")

    def _seek(self, position: Any, epoch_start: dict[str, Any] | None) -> None:
        """Call ``data(epoch)`` again and skip the batches the checkpoint had consumed."""
        self.epoch, self.batch, self._batches = 0, 0, None
        if isinstance(position, dict) and "epoch" in position and "batch" in position:
            epoch, skip = int(position["epoch"]), int(position["batch"])
            self.epoch = epoch
            if epoch_start:
                set_rng_states(epoch_start)
        else:  # no recorded position (a Trainer or Lightning checkpoint): skip from the start
            skip = self._step
        for _ in range(skip):
            self._next_batch()

    def _load_weights(self, ckpt: Checkpoint, keep_buffers: bool) -> None:
        expected = self.model.state_dict()
        state = _fit_prefix({n: numpy_to_tensor(as_array(t)) for n, t in ckpt.tensors.items()}, expected)
        buffers = set(buffer_names(self.model))
        if keep_buffers:
            state = {n: t for n, t in state.items() if n not in buffers}
        ties = tied_names(self.model)
        missing = [n for n in expected if n not in state and n not in ties
                   and not (keep_buffers and n in buffers)]
        unexpected = [n for n in state if n not in expected]
        if missing or unexpected:
            raise FormatError(f"checkpoint does not fit recipe {self.reference}'s model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
        self.model.load_state_dict(state, strict=False)

    def check_data_replays(self) -> None:
        """``data(0)`` twice from the same generator states must give the same first batch.

        Raises:
            UsageError: it does not (a generator made once and shared by every epoch).
        """
        saved = rng_states()
        try:
            first = next(iter(self.recipe.data(0)), None)
            set_rng_states(saved)
            second = next(iter(self.recipe.data(0)), None)
        finally:
            set_rng_states(saved)
        if first is None:
            raise UsageError(f"recipe {self.reference}: data(0) gave no batches")
        if not same_batch(first, second):
            raise UsageError(f"recipe {self.reference}: data(0) gave a different first batch when called again "
                             "from the same RNG states, so a resumed run cannot replay the data order; a "
                             "DataLoader generator made once is advanced by every epoch: seed it inside "
                             "data(epoch) (torch.Generator().manual_seed(seed + epoch)) or leave it out")

    def evaluate(self) -> float:
        """The recipe's metric in eval mode, without gradients; generators and mode are restored."""
        saved = rng_states()
        self.model.eval()
        try:
            with torch.no_grad():
                return float(self.recipe.evaluate(self.model))
        finally:
            self.model.train()
            set_rng_states(saved)


def _count(batches: Any) -> int:
    """How many batches an epoch has (``len`` where the iterable tells, else by iterating)."""
    try:
        return len(batches)
    except TypeError:
        return sum(1 for _ in batches)


def _fit_prefix(state: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """Names as the model has them: a first segment every name shares (Lightning's ``model.``,
    DDP's ``module.``) is dropped when the model's names lack it."""
    if not state or set(state) & set(expected):
        return state
    prefix = next(iter(state)).split(".", 1)[0] + "."
    if all(n.startswith(prefix) for n in state):
        return {n[len(prefix):]: t for n, t in state.items()}
    return state


def same_batch(a: Any, b: Any) -> bool:
    """Two batches (tensors, arrays, numbers, nested in tuples, lists or dicts) are identical."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and bool(torch.equal(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_batch(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_batch(x, y) for x, y in zip(a, b, strict=True))
    try:
        import numpy as np

        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _torch(obj: Any) -> Any:
    return to_torch(copy.deepcopy(obj))
