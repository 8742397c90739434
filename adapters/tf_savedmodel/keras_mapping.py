"""Port Keras variables onto a PyTorch twin's state_dict.

Layers are matched in order, by kind and shape: a Keras Dense
(``kernel`` [in, out], ``bias``) feeds a torch Linear (``weight`` [out, in]),
Conv2D ``kernel`` HWIO feeds Conv2d ``weight`` OIHW, BatchNormalization
``gamma``/``beta``/``moving_mean``/``moving_variance`` feed
``weight``/``bias``/``running_mean``/``running_var``, LayerNormalization
``gamma``/``beta`` feed ``weight``/``bias``, Embedding ``embeddings`` feeds
``weight``. Variables with no counterpart are reported, never dropped silently.

Semantic differences the weights cannot carry are listed in ``notes``: Keras'
BatchNormalization epsilon defaults to 1e-3 (PyTorch: 1e-5) and its momentum
0.99 is PyTorch's momentum 0.01; a Dense after Flatten sees features in HWC
order, a torch Linear after flatten in CHW order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array

BN_EPSILON_NOTE = ("BatchNormalization epsilon is not stored with the weights: Keras defaults to "
                   "1e-3, PyTorch to 1e-5; build the twin with the Keras layer's epsilon "
                   "(momentum: Keras 0.99 = PyTorch 0.01)")


@dataclass
class KerasMapping:
    """The result of a port.

    Attributes:
        checkpoint: the twin's state_dict names and layouts, filled from Keras.
        pairs: torch name -> Keras name it came from.
        unmapped: Keras variables with no counterpart in the twin.
        missing: twin tensors that no Keras variable fills (kept from the twin).
        notes: semantic differences to act on.
    """

    checkpoint: Checkpoint
    pairs: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# Keras layer kind -> (variable leaf names, torch leaf names, layout converter per leaf)
_KERAS_KINDS = {
    "batchnorm": (("gamma", "beta", "moving_mean", "moving_variance"),
                  ("weight", "bias", "running_mean", "running_var")),
    "layernorm": (("gamma", "beta"), ("weight", "bias")),
    "embedding": (("embeddings",), ("weight",)),
}


def _groups(names: list[str], sep: str) -> list[tuple[str, dict[str, str]]]:
    """Consecutive variables of one layer/module: (prefix, {leaf: full name})."""
    groups: list[tuple[str, dict[str, str]]] = []
    for name in names:
        prefix, _, leaf = name.rpartition(sep)
        if not groups or groups[-1][0] != prefix or leaf in groups[-1][1]:
            groups.append((prefix, {}))
        groups[-1][1][leaf] = name
    return groups


def _keras_kind(leaves: Mapping[str, str], values: Mapping[str, np.ndarray]) -> str | None:
    if {"gamma", "beta", "moving_mean", "moving_variance"} <= set(leaves):
        return "batchnorm"
    if {"gamma", "beta"} <= set(leaves) or set(leaves) == {"gamma"}:
        return "layernorm"
    if "embeddings" in leaves:
        return "embedding"
    if "kernel" in leaves:
        rank = values[leaves["kernel"]].ndim
        return {2: "dense", 4: "conv2d", 3: "conv1d"}.get(rank)
    return None


def _convert(kind: str, leaf: str, value: np.ndarray) -> np.ndarray:
    """Keras layout -> torch layout for one variable."""
    if leaf == "kernel" and kind == "dense":
        return np.ascontiguousarray(value.T)
    if leaf == "kernel" and kind == "conv2d":
        return np.ascontiguousarray(value.transpose(3, 2, 0, 1))
    if leaf == "kernel" and kind == "conv1d":
        return np.ascontiguousarray(value.transpose(2, 1, 0))
    return value


def _torch_leaves(kind: str, keras_leaves: Mapping[str, str]) -> list[tuple[str, str]]:
    """(keras leaf, torch leaf) pairs for a Keras layer of ``kind``."""
    if kind in _KERAS_KINDS:
        k_names, t_names = _KERAS_KINDS[kind]
        return [(k, t) for k, t in zip(k_names, t_names) if k in keras_leaves]
    return [(k, t) for k, t in (("kernel", "weight"), ("bias", "bias")) if k in keras_leaves]


def map_keras_to_torch(keras: Mapping[str, np.ndarray], twin: Mapping[str, np.ndarray]) -> KerasMapping:
    """Fill a PyTorch twin's state_dict from Keras variables.

    Args:
        keras: Keras variable path -> value, in layer order (as ``read`` gives them).
        twin: the twin's state_dict (name -> array), in module order.

    Returns:
        The mapping; ``checkpoint`` holds every twin name (missing ones keep the
        twin's values, e.g. ``num_batches_tracked``).
    """
    keras = {n: as_array(v) for n, v in keras.items()}
    twin = {n: as_array(v) for n, v in twin.items()}
    torch_groups = _groups(list(twin), ".")
    used: set[int] = set()
    result = dict(twin)
    mapping = KerasMapping(Checkpoint())
    cursor = 0
    for prefix, leaves in _groups(list(keras), "/"):
        kind = _keras_kind(leaves, keras)
        pairs = _torch_leaves(kind, leaves) if kind else []
        match = _find_group(torch_groups, used, cursor, pairs, kind, leaves, keras, twin) if pairs else None
        if match is None:
            mapping.unmapped.extend(leaves.values())
            continue
        used.add(match)
        cursor = match + 1
        t_prefix, t_leaves = torch_groups[match]
        for k_leaf, t_leaf in pairs:
            converted = _convert(kind, k_leaf, keras[leaves[k_leaf]])
            result[t_leaves[t_leaf]] = converted.astype(twin[t_leaves[t_leaf]].dtype, copy=False)
            mapping.pairs[t_leaves[t_leaf]] = leaves[k_leaf]
        if kind == "batchnorm" and BN_EPSILON_NOTE not in mapping.notes:
            mapping.notes.append(BN_EPSILON_NOTE)
        if kind == "dense" and _after_spatial(torch_groups, match, twin):
            mapping.notes.append(f"{t_prefix}: a Dense after Flatten reads features in HWC order, a "
                                 "torch Linear after flatten(NCHW) in CHW order; the twin must "
                                 "flatten channels-last (permute to NHWC first)")
    mapping.missing = [n for n in twin if n not in mapping.pairs]
    mapping.checkpoint = Checkpoint(tensors=result, metadata={"portability.source": "keras"})
    return mapping


def _find_group(torch_groups, used, cursor, pairs, kind, leaves, keras, twin) -> int | None:
    """The first unused torch module at or after ``cursor`` whose tensors fit this layer."""
    for index in range(cursor, len(torch_groups)):
        if index in used:
            continue
        _, t_leaves = torch_groups[index]
        if all(t in t_leaves and _convert(kind, k, keras[leaves[k]]).shape == twin[t_leaves[t]].shape
               for k, t in pairs):
            if kind == "layernorm" and "running_mean" in t_leaves:
                continue
            return index
    return None


def _after_spatial(torch_groups, index: int, twin) -> bool:
    """Whether the Linear at ``index`` consumes more features than the previous conv has channels."""
    for prev in range(index - 1, -1, -1):
        _, leaves = torch_groups[prev]
        weight = twin.get(leaves.get("weight", ""))
        if weight is not None and weight.ndim == 4:
            linear = twin[torch_groups[index][1]["weight"]]
            return linear.shape[1] != weight.shape[0]
    return False
