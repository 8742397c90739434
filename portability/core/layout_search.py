"""The search for weights, optimizer state, scheduler state and counters in a
loaded checkpoint object (nested dicts and lists), framework-neutral: the
caller says what a tensor is.

- weights: a dict of tensors (string names, at least one floating tensor) at
  any depth, outside optimizer and RNG state; the top level's own tensors
  count too.
- optimizer state: the first value shaped like torch's ``{'state', 'param_groups'}``.
- scheduler state: the first dict with ``last_epoch``/``base_lrs`` or under a
  key that names a scheduler (a Lightning list of one counts as its item).
- ``epoch``, ``step``/``global_step``, ``loss``: at the top level, else one level down.

Several weight candidates (``model`` and ``model_ema``): the documented default
is the first by (1) a name that does not say EMA or average, (2) the most
elements, (3) the shallowest, (4) the first in the file. ``--weights-key``
overrides it; the harness picks the one the model spec fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.core.layout import (
    KeyPath,
    Layout,
    children,
    get_path,
    layout_for,
    parse_layout,
    path_text,
    resolve_key,
)
from portability.core.tensors import LazyTensor

TensorInfo = Callable[[Any], "tuple[bool, int] | None"]

SCHEDULER_NAMES = frozenset({"scheduler", "lr_scheduler", "scheduler_state_dict", "lr_schedulers",
                             "scheduler_state", "schedulers"})
# Keys whose dicts of tensors are random-number-generator states, never weights.
RNG_NAMES = frozenset({"rng", "rng_state", "rng_states", "rng_tracker_states"})
_EMA_NAME = re.compile(r"(^|[_.\-])(ema|swa|average[sd]?|avg|shadow)($|[_.\-])", re.IGNORECASE)
MAX_DEPTH = 8


def is_optimizer_state(value: Any) -> bool:
    """Shaped like ``torch.optim.Optimizer.state_dict()``."""
    return isinstance(value, dict) and "state" in value and "param_groups" in value


def _is_scheduler_state(key: Any, value: Any) -> bool:
    if not isinstance(value, dict) or is_optimizer_state(value):
        return False
    return "last_epoch" in value or "base_lrs" in value or key in SCHEDULER_NAMES


def _walk(obj: Any) -> list[tuple[KeyPath, Any, Any]]:
    """Every (path, key, value) below ``obj``, breadth first, not entering optimizer
    states or RNG states."""
    found: list[tuple[KeyPath, Any, Any]] = []
    frontier: list[tuple[KeyPath, Any]] = [((), obj)]
    for _depth in range(MAX_DEPTH):
        nxt: list[tuple[KeyPath, Any]] = []
        for path, value in frontier:
            for key, child in children(value):
                found.append((path + (key,), key, child))
                if not is_optimizer_state(child) and key not in RNG_NAMES:
                    nxt.append((path + (key,), child))
        frontier = nxt
    return found


def weight_dicts(obj: Any, tensor_info: TensorInfo) -> list[tuple[KeyPath, int]]:
    """Every candidate weights dict in ``obj`` with its element count, in file order.

    Args:
        obj: the loaded checkpoint object (nested dicts and lists).
        tensor_info: ``(is_floating, elements)`` for a tensor, None for anything else.

    Returns:
        ``(path, elements)`` per candidate; the top level's own tensors are the
        candidate ``()`` when there are any.
    """
    def candidate(d: dict, mixed: bool) -> int | None:
        infos = [tensor_info(v) for v in d.values()]
        if not mixed and (not d or any(i is None for i in infos) or not all(isinstance(k, str) for k in d)):
            return None
        known = [i for i in infos if i is not None]
        return sum(n for _, n in known) if any(f for f, _ in known) else None

    found: list[tuple[KeyPath, int]] = []
    if isinstance(obj, dict) and (size := candidate(obj, mixed=True)) is not None:
        found.append(((), size))
    for path, key, value in _walk(obj):
        if isinstance(value, dict) and key not in RNG_NAMES and (size := candidate(value, mixed=False)) is not None:
            found.append((path, size))
    return found


def default_weights(candidates: list[tuple[KeyPath, int]]) -> KeyPath | None:
    """The documented default among candidates (see the module docstring)."""
    if not candidates:
        return None
    ranked = sorted(enumerate(candidates), key=lambda item: (
        _says_ema(item[1][0]), -item[1][1], len(item[1][0]), item[0]))
    return ranked[0][1][0]


def _says_ema(path: KeyPath) -> bool:
    return any(_EMA_NAME.search(str(k)) for k in path)


def optimizer_path(obj: Any) -> KeyPath | None:
    """Path of the first optimizer state."""
    return next((p for p, _k, v in _walk(obj) if is_optimizer_state(v)), None)


def scheduler_path(obj: Any) -> KeyPath | None:
    """Path of the first scheduler state (a list of one, as Lightning saves, counts as its item)."""
    for path, key, value in _walk(obj):
        if isinstance(value, list) and key in SCHEDULER_NAMES and len(value) == 1 \
                and isinstance(value[0], dict):
            return path + (0,)
        if _is_scheduler_state(key, value):
            return path
    return None


SCALAR_FIELDS = {"epoch": "epoch", "global_step": "global_step", "step": "global_step",
                 "loss": "loss", "rng": "rng", "rng_states": "rng", "data_position": "data_position"}
_NESTED_FIELDS = ("epoch", "global_step", "step", "loss")


@dataclass
class Found:
    """What ``locate`` found in a loaded checkpoint object.

    Attributes:
        weights: path of the weights (``()``: the top level's tensors).
        optimizer / scheduler: path of their state, or None.
        candidates: every weights candidate ``(path, elements)``, in file order.
        fields: TrainingState field -> path (``epoch``, ``global_step``, ``loss``...).
    """

    weights: KeyPath
    optimizer: KeyPath | None
    scheduler: KeyPath | None
    candidates: list[tuple[KeyPath, int]]
    fields: dict[str, KeyPath]

    @property
    def layout(self) -> Layout:
        """The named layout these paths match, else a ``nested`` one."""
        return layout_for(self.weights, self.optimizer, self.scheduler)


def locate(obj: dict, tensor_info: TensorInfo,
           weights_key: str | KeyPath | None = None) -> Found:
    """Find the weights, optimizer, scheduler and counters in a checkpoint dict.

    Args:
        obj: the loaded checkpoint (a dict).
        tensor_info: see ``weight_dicts``.
        weights_key: ``KEY[.SUB]`` naming the weights, overriding the default choice,
            or the path itself (a file we wrote records where its weights are).

    Raises:
        UsageError: ``weights_key`` names nothing in ``obj``.
    """
    candidates = weight_dicts(obj, tensor_info)
    weights: KeyPath | None
    if isinstance(weights_key, tuple):
        weights = weights_key
    elif weights_key:
        weights = resolve_key(obj, weights_key)
    else:
        weights = default_weights(candidates)
        weights = () if weights is None else weights
    optimizer, scheduler = optimizer_path(obj), scheduler_path(obj)
    claimed = [p for p in (weights, optimizer, scheduler) if p]
    fields: dict[str, KeyPath] = {}
    for key, field in SCALAR_FIELDS.items():
        if key in obj and field not in fields and (key,) not in claimed and not (weights == () and
                                                                                tensor_info(obj[key])):
            fields[field] = (key,)
    for path, key, value in _walk(obj):
        nested = SCALAR_FIELDS.get(key)
        if (nested is not None and len(path) == 2 and key in _NESTED_FIELDS and nested not in fields
                and _is_scalar(value, tensor_info) and not any(path[:len(c)] == c for c in claimed)):
            fields[nested] = path
    return Found(weights, optimizer, scheduler, candidates, fields)


def _is_scalar(value: Any, tensor_info: TensorInfo) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    info = tensor_info(value)
    return info is not None and info[1] == 1


def claimed_paths(found: Found) -> list[KeyPath]:
    """Every path ``found`` takes out of the object (the weights first)."""
    return [p for p in (found.weights, found.optimizer, found.scheduler, *found.fields.values())
            if p is not None]


def array_info(value: Any) -> tuple[bool, int] | None:
    """``tensor_info`` for the arrays of a read ``Checkpoint`` (numpy or lazy)."""
    if not isinstance(value, (np.ndarray, LazyTensor)):
        return None
    return np.dtype(value.dtype).kind in "fcV", int(value.size)


def candidates_in(ckpt: Checkpoint) -> list[tuple[str, dict[str, Any]]]:
    """The weight candidates of a read checkpoint, as ``(key, {name: array})``.

    The checkpoint's own tensors come first (under the key they were found at);
    then every other dict of arrays kept in the training state's extras
    (``model_ema`` next to ``model``), in file order.
    """
    found = [(path_text(parse_layout(ckpt.layout).weights), dict(ckpt.tensors))]
    if ckpt.training is not None:
        extras = {k: v for k, v in ckpt.training.extra.items() if not str(k).startswith("__")}
        found += [(path_text(path), get_path(extras, path)) for path, _ in weight_dicts(extras, array_info) if path]
    return found
