"""torch side of the training driver: a ``Trainable`` from a model, loss, optimizer and data.

This is the documented interface for user models::

    trainable = TorchTrainable(model, loss_fn, optimizer, batches, evaluate=metric_fn)
    train(trainable, TrainConfig(total_steps=100, checkpoint_every=10, directory=out))

``batches`` is a ``BatchSource``: batch number -> batch, with no hidden state,
so the data position is one integer. Captured state holds the weights, the
optimizer state, the step, the data position and the python/numpy/torch RNG
states; restoring it and continuing is bitwise identical to not stopping on CPU
with deterministic algorithms.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from portability.adapters.torch.state_dict import checkpoint_from_object, object_from_checkpoint
from portability.core.checkpoint import Checkpoint
from portability.errors import FormatError


class BatchSource(Protocol):
    """Deterministic data: the same batch number always gives the same batch."""

    def batch(self, number: int) -> tuple[Any, Any]:
        """``(inputs, targets)`` of batch ``number`` (0-based, over all epochs)."""


class ShuffledBatches:
    """Mini-batches of in-memory tensors, reshuffled every epoch from ``(seed, epoch)``.

    Args:
        inputs / targets: the training split.
        batch_size: examples per batch (the last partial batch of an epoch is dropped).
        seed: shuffling seed.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int = 0):
        self.inputs, self.targets, self.batch_size, self.seed = inputs, targets, batch_size, seed
        self.per_epoch = max(1, len(inputs) // batch_size)

    def batch(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = divmod(number, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.inputs))
        rows = torch.from_numpy(order[index * self.batch_size:(index + 1) * self.batch_size])
        return self.inputs[rows], self.targets[rows]


def set_deterministic(threads: int = 1) -> None:
    """Deterministic CPU kernels and a fixed thread count (reduction order depends on it)."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def rng_states() -> dict[str, Any]:
    """The python, numpy and torch global RNG states in portable form."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": np.asarray(keys).copy(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state().numpy().copy(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of ``rng_states``.

    Raises:
        FormatError: a generator's state is missing.
    """
    try:
        py, npy, tch = states["python"], states["numpy"], states["torch"]
    except (KeyError, TypeError) as exc:
        raise FormatError(f"checkpoint RNG states lack {exc}: cannot resume exactly") from exc
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    np.random.set_state((npy["kind"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(torch.from_numpy(np.ascontiguousarray(np.asarray(tch, dtype=np.uint8))))


class TorchTrainable:
    """A torch model, loss, optimizer and data source that the driver can train and checkpoint.

    Args:
        model: the module to train.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar tensor``.
        optimizer: built over ``model.parameters()``.
        batches: a ``BatchSource``.
        evaluate: ``evaluate(model) -> float`` task metric (called in eval mode, no grad).
        mid_step: called between backward and the optimizer update (fault injection).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                 batches: BatchSource, evaluate: Callable[[torch.nn.Module], float],
                 mid_step: Callable[[int], None] | None = None):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.batches, self._evaluate, self.mid_step = batches, evaluate, mid_step
        self._step = 0
        self.data_position = 0

    @property
    def step(self) -> int:
        return self._step

    def train_step(self) -> float:
        self.model.train()
        inputs, targets = self.batches.batch(self.data_position)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(inputs), targets)
        loss.backward()
        if self.mid_step is not None:
            self.mid_step(self._step + 1)
        self.optimizer.step()
        self.data_position += 1
        self._step += 1
        return float(loss.detach())

    def capture(self) -> Checkpoint:
        obj = {
            "model_state_dict": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer_state_dict": copy.deepcopy(self.optimizer.state_dict()),
            "global_step": self._step,
            "data_position": self.data_position,
            "rng": rng_states(),
        }
        return checkpoint_from_object(obj, "training state")

    def restore(self, ckpt: Checkpoint) -> None:
        ts = ckpt.training
        if ts is None or ts.optimizer is None or ts.global_step is None:
            raise FormatError("checkpoint lacks optimizer state or step: cannot resume training")
        weights = object_from_checkpoint(Checkpoint(tensors=ckpt.tensors, aliases=ckpt.aliases))
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict({"state": _to_torch(ts.optimizer.state),
                                        "param_groups": _to_torch(ts.optimizer.param_groups)})
        self._step = int(ts.global_step)
        self.data_position = int(ts.data_position if ts.data_position is not None else ts.global_step)
        set_rng_states(ts.rng)

    output_name = "output"

    def numpy_batch(self, position: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Batch ``position`` as numpy: ``({"input": x}, targets)``."""
        inputs, targets = self.batches.batch(position)
        return {"input": inputs.numpy()}, targets.numpy()

    def loss_of(self, inputs: dict[str, np.ndarray], targets: np.ndarray) -> torch.Tensor:
        """The training loss on a numpy batch (train mode, graph kept for backward)."""
        self.model.train()
        return self.loss_fn(self.model(torch.from_numpy(inputs["input"])), torch.from_numpy(targets))

    def evaluate(self) -> float:
        self.model.eval()
        with torch.no_grad():
            return float(self._evaluate(self.model))


def _to_torch(obj: Any) -> Any:
    from portability.adapters.torch.numpy_bridge import to_torch

    return to_torch(copy.deepcopy(obj))
