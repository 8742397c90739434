"""Read a DCP directory into a ``Checkpoint``: weights lazily, one tensor at a time.

The flattened names in the metadata are put back into the saved tree with
``planner_data``. Weights are the ``model`` subtree (or, without one, the
top-level tensors); each becomes a ``LazyTensor`` that loads only its own
bytes when used, so converting never holds more than one tensor. The rest
(optimizer, scheduler, counters) is the training state: the optimizer's
state may be keyed by parameter ids (``optimizer.state_dict()``) or by
parameter names (``get_state_dict``), and maps to ``OptimizerState`` either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

from portability.adapters.dcp import safe_io
from portability.adapters.torch import state_dict as torch_state_dict
from portability.adapters.torch.numpy_bridge import tensor_to_numpy
from portability.core.checkpoint import Checkpoint
from portability.core.layout_search import SCALAR_FIELDS, Found
from portability.core.options import ReadOptions
from portability.core.tensors import LazyTensor
from portability.errors import FormatError

RECORD_KEY = "portability"  # our bytes entry: aliases, metadata, layout, tensor order
WEIGHT_KEYS = ("model", "model_state_dict", "state_dict")
OPTIMIZER_KEYS = ("optimizer", "optim", "optimizer_state_dict")


class _Pending:
    """A tensor entry not read yet."""

    def __init__(self, key: str, meta: TensorStorageMetadata) -> None:
        self.key, self.meta = key, meta


def read(path: Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read a DCP directory.

    Raises:
        FormatError: unreadable metadata or data, or values with no portable form.
        UnsafeCheckpointError: the metadata or a bytes entry needs globals that could run code.
    """
    metadata = safe_io.load_metadata(path)
    entries = metadata.state_dict_metadata
    paths = metadata.planner_data or {}
    loaded = safe_io.load_entries(path, metadata, {k: None for k, m in entries.items()
                                                   if isinstance(m, BytesStorageMetadata)})
    tree: dict[Any, Any] = {}
    for key, meta in entries.items():
        value = loaded[key] if isinstance(meta, BytesStorageMetadata) else _Pending(key, meta)
        _place(tree, tuple(paths.get(key, (key,))), value)
    tree = _lists(tree)
    record = tree.pop(RECORD_KEY, None)
    record = record if isinstance(record, dict) else {}
    weight_key = next((k for k in WEIGHT_KEYS if isinstance(tree.get(k), dict)), None)
    if weight_key is not None:
        weights = _flatten(tree.pop(weight_key))
    else:
        weights = {k: v for k, v in tree.items() if isinstance(v, _Pending)}
        tree = {k: v for k, v in tree.items() if k not in weights}
    if not all(isinstance(v, _Pending) for v in weights.values()):
        bad = next(k for k, v in weights.items() if not isinstance(v, _Pending))
        raise FormatError(f"{path}: model entry {bad!r} is not a tensor")
    tensors = {name: _lazy(path, metadata, pending) for name, pending in weights.items()}
    order = [n for n in record.get("order", []) if n in tensors or n in record.get("aliases", {})]
    aliases = {a: t for a, t in record.get("aliases", {}).items() if t in tensors}
    ordered = {name: tensors[aliases.get(name, name)] for name in order}
    ordered.update({n: t for n, t in tensors.items() if n not in ordered})
    ckpt = Checkpoint(tensors=ordered, aliases=aliases, metadata=dict(record.get("metadata", {})),
                      layout=record.get("layout", "model-key" if weight_key else "state_dict"))
    if tree:
        ckpt.training = _training(path, metadata, tree)
    return ckpt


def _place(tree: dict, where: tuple, value: Any) -> None:
    node = tree
    for part in where[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise FormatError(f"entry {'.'.join(map(str, where))!r} sits under a value, not a container")
    node[where[-1]] = value


def _lists(node: Any) -> Any:
    """Turn dicts keyed 0..n-1 by ints (DCP's list indices) back into lists."""
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(type(k) is int for k in node) and sorted(node) == list(range(len(node))):
        return [node[i] for i in range(len(node))]
    return node


def _flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _empty(meta: TensorStorageMetadata) -> torch.Tensor:
    return torch.empty(tuple(meta.size), dtype=meta.properties.dtype)


def _lazy(path: Path, metadata: Any, pending: _Pending) -> LazyTensor:
    probe = tensor_to_numpy(torch.empty(0, dtype=pending.meta.properties.dtype), pending.key)

    def load() -> np.ndarray:
        tensor = safe_io.load_entries(path, metadata, {pending.key: _empty(pending.meta)})[pending.key]
        array = tensor_to_numpy(tensor, pending.key)
        return array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d arrays 0-d

    def read_chunks(chunk: int) -> Iterator[bytes]:
        flat = load().reshape(-1).view(np.uint8)
        for start in range(0, flat.size, chunk):
            yield flat[start:start + chunk].tobytes()
        if flat.size == 0:
            yield b""

    def read_into(buffer: memoryview) -> None:
        buffer[:] = load().reshape(-1).view(np.uint8).data

    return LazyTensor(probe.dtype, tuple(pending.meta.size), read_chunks, read_into,
                      label=f"tensor {pending.key!r} in {path}")


def _training(path: Path, metadata: Any, tree: dict) -> Any:
    pending: dict[str, _Pending] = {}
    _collect(tree, pending)
    loaded = safe_io.load_entries(path, metadata, {k: _empty(p.meta) for k, p in pending.items()})
    rest = _resolve(tree, loaded)
    opt_key = next((k for k in OPTIMIZER_KEYS if isinstance(rest.get(k), dict)), None)
    names: dict[int, str] = {}
    if opt_key is not None:
        rest[opt_key], names = _optimizer_by_id(rest[opt_key])
    fields: dict[str, tuple] = {}
    for key, field in SCALAR_FIELDS.items():
        if key in rest and field not in fields:
            fields[field] = (key,)
    found = Found(("model",), (opt_key,) if opt_key else None,
                  ("scheduler",) if isinstance(rest.get("scheduler"), dict) else None, [], fields)
    training = torch_state_dict._training_from(rest, found, str(path))
    if names and training is not None and training.optimizer is not None:
        training.optimizer.param_names = names
    return training


def _collect(node: Any, pending: dict) -> None:
    if isinstance(node, _Pending):
        pending[node.key] = node
    elif isinstance(node, dict):
        for value in node.values():
            _collect(value, pending)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _collect(value, pending)


def _resolve(node: Any, loaded: dict) -> Any:
    if isinstance(node, _Pending):
        return loaded[node.key]
    if isinstance(node, dict):
        return {k: _resolve(v, loaded) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, loaded) for v in node]
    return node


def _optimizer_by_id(opt: dict) -> tuple[dict, dict[int, str]]:
    """Re-key an optimizer state by parameter id; returns it and id -> name (if keyed by name).

    DCP turns every dict key into a string, so ids come back as ``"0"``; a
    ``get_state_dict`` optimizer lists parameter names in ``params`` instead.
    """
    groups = opt.get("param_groups", [])
    state = opt.get("state", {})
    params = [p for g in groups for p in g.get("params", [])]
    if params and all(isinstance(p, str) for p in params):
        ids = {name: i for i, name in enumerate(params)}
        new_groups = [{**group, "params": [ids[p] for p in group["params"]]} for group in groups]
        return ({"state": {ids[k]: v for k, v in state.items() if k in ids}, "param_groups": new_groups},
                {i: name for name, i in ids.items()})
    return {"state": {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in state.items()},
            "param_groups": groups}, {}
