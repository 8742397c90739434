"""Port Keras variables onto a PyTorch twin's state_dict.

Layers are matched in order, by kind and shape: a Keras Dense
(``kernel`` [in, out], ``bias``) feeds a torch Linear (``weight`` [out, in]),
Conv2D ``kernel`` HWIO feeds Conv2d ``weight`` OIHW, BatchNormalization
``gamma``/``beta``/``moving_mean``/``moving_variance`` feed
``weight``/``bias``/``running_mean``/``running_var``, LayerNormalization
``gamma``/``beta`` feed ``weight``/``bias``, Embedding ``embeddings`` feeds
``weight``, PReLU ``alpha`` ((1, 1, C) with shared axes, or (C,)) feeds PReLU
``weight`` (C,). Variables with no counterpart are reported, never dropped silently.

Layers are matched in order: a Keras layer takes the next unused torch module
with the same leaves when the shapes fit; when they do not, the one unused
module anywhere whose shapes fit. Two or more such modules are an
``AmbiguousMappingError`` listing them, never a guess.

Semantic differences the weights cannot carry are listed in ``notes``: Keras'
BatchNormalization epsilon defaults to 1e-3 (PyTorch: 1e-5) and its momentum
0.99 is PyTorch's momentum 0.01. A Dense after Flatten sees features in HWC
order, a torch Linear after ``flatten`` of NCHW in CHW order: with
``flatten="chw"`` the kernel's rows are permuted for such a Linear, with
``"hwc"`` they are kept (a twin that flattens channels-last); the caller
compares outputs to tell which twin it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from portability.core.checkpoint import Checkpoint
from portability.core.tensors import as_array
from portability.errors import UsageError

BN_EPSILON_NOTE = ("BatchNormalization epsilon is not stored with the weights: Keras defaults to "
                   "1e-3, PyTorch to 1e-5; build the twin with the Keras layer's epsilon "
                   "(momentum: Keras 0.99 = PyTorch 0.01)")


class AmbiguousMappingError(UsageError):
    """A Keras layer fits several torch modules and layer order cannot decide."""


@dataclass
class KerasMapping:
    """The result of a port.

    Attributes:
        checkpoint: the twin's state_dict names and layouts, filled from Keras.
        pairs: torch name -> Keras name it came from.
        unmapped: Keras variables with no counterpart in the twin.
        missing: twin tensors that no Keras variable fills (kept from the twin).
        notes: semantic differences to act on.
        flattened: torch Linear modules that read a flattened feature map (their
            kernels depend on the flatten order).
    """

    checkpoint: Checkpoint
    pairs: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flattened: list[str] = field(default_factory=list)


# Keras layer kind -> (variable leaf names, torch leaf names, layout converter per leaf)
_KERAS_KINDS = {
    "batchnorm": (("gamma", "beta", "moving_mean", "moving_variance"),
                  ("weight", "bias", "running_mean", "running_var")),
    "layernorm": (("gamma", "beta"), ("weight", "bias")),
    "embedding": (("embeddings",), ("weight",)),
    "prelu": (("alpha",), ("weight",)),
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
    if set(leaves) == {"alpha"}:
        return "prelu"
    if "kernel" in leaves:
        rank = values[leaves["kernel"]].ndim
        return {2: "dense", 4: "conv2d", 3: "conv1d"}.get(rank)
    return None


def _convert(kind: str, leaf: str, value: np.ndarray, target_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Keras layout -> torch layout for one variable (``target_shape``: the torch tensor's,
    for PReLU, whose alpha keeps singleton axes Keras shares)."""
    if kind == "prelu":
        squeezed = value.reshape(-1) if value.size == int(np.prod(value.shape[-1:])) else value
        if target_shape is not None and squeezed.size == int(np.prod(target_shape)):
            return np.asarray(squeezed.reshape(target_shape), order="C")
        return squeezed
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
        return [(k, t) for k, t in zip(k_names, t_names, strict=False) if k in keras_leaves]
    return [(k, t) for k, t in (("kernel", "weight"), ("bias", "bias")) if k in keras_leaves]


def map_keras_to_torch(keras: Mapping[str, np.ndarray], twin: Mapping[str, np.ndarray],
                       flatten: str = "chw") -> KerasMapping:
    """Fill a PyTorch twin's state_dict from Keras variables.

    Args:
        keras: Keras variable path -> value, in layer order (as ``read`` gives them).
        twin: the twin's state_dict (name -> array), in module order.
        flatten: ``"chw"``: a Linear after a feature map flattens NCHW (the kernel's
            rows are permuted from Keras' HWC order); ``"hwc"``: it flattens channels-last.

    Returns:
        The mapping; ``checkpoint`` holds every twin name (missing ones keep the
        twin's values, e.g. ``num_batches_tracked``).

    Raises:
        AmbiguousMappingError: a layer fits several modules (the message lists them).
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
        match = _find_group(torch_groups, used, cursor, pairs, kind, leaves, keras, twin, prefix) if pairs else None
        if match is None:
            mapping.unmapped.extend(leaves.values())
            continue
        used.add(match)
        cursor = match + 1
        t_prefix, t_leaves = torch_groups[match]
        channels = _spatial_channels(torch_groups, match, twin) if kind == "dense" else None
        for k_leaf, t_leaf in pairs:
            target = twin[t_leaves[t_leaf]]
            converted = _convert(kind, k_leaf, keras[leaves[k_leaf]], target.shape)
            if channels and k_leaf == "kernel" and flatten == "chw":
                converted = _hwc_rows_to_chw(converted, channels)
            result[t_leaves[t_leaf]] = converted.astype(target.dtype, copy=False)
            mapping.pairs[t_leaves[t_leaf]] = leaves[k_leaf]
        if kind == "batchnorm" and BN_EPSILON_NOTE not in mapping.notes:
            mapping.notes.append(BN_EPSILON_NOTE)
        if channels:
            mapping.flattened.append(t_prefix)
            mapping.notes.append(f"{t_prefix}: reads a flattened {channels}-channel feature map; kernel "
                                 + ("permuted from Keras' HWC order to CHW (torch flatten of NCHW)"
                                    if flatten == "chw" else "kept in Keras' HWC order (channels-last flatten)"))
    mapping.missing = [n for n in twin if n not in mapping.pairs]
    mapping.checkpoint = Checkpoint(tensors=result, metadata={"portability.source": "keras"})
    return mapping


def _hwc_rows_to_chw(weight: np.ndarray, channels: int) -> np.ndarray:
    """A Linear weight (out, S*C) over HWC-ordered features -> over CHW-ordered ones."""
    out, features = weight.shape
    spatial = features // channels
    return np.ascontiguousarray(weight.reshape(out, spatial, channels).transpose(0, 2, 1).reshape(out, features))


def _fits(kind, pairs, leaves, keras, t_leaves, twin) -> bool:
    if kind == "layernorm" and "running_mean" in t_leaves:
        return False
    return all(t in t_leaves and _convert(kind, k, keras[leaves[k]], twin[t_leaves[t]].shape).shape
               == twin[t_leaves[t]].shape for k, t in pairs)


def _find_group(torch_groups, used, cursor, pairs, kind, leaves, keras, twin, prefix) -> int | None:
    """The next unused module with this layer's leaves, if its shapes fit; else the one
    unused module whose shapes fit.

    Raises:
        AmbiguousMappingError: several unused modules fit and order does not pick one.
    """
    wanted = {t for _, t in pairs}
    for index in range(cursor, len(torch_groups)):
        if index not in used and wanted <= set(torch_groups[index][1]):
            if _fits(kind, pairs, leaves, keras, torch_groups[index][1], twin):
                return index
            break
    fitting = [i for i in range(len(torch_groups))
               if i not in used and _fits(kind, pairs, leaves, keras, torch_groups[i][1], twin)]
    if len(fitting) > 1:
        shapes = ", ".join(f"{k} {list(keras[leaves[k]].shape)}" for k, _ in pairs)
        raise AmbiguousMappingError(
            f"Keras layer {prefix!r} ({kind}: {shapes}) fits {len(fitting)} torch modules out of layer "
            f"order: {', '.join(torch_groups[i][0] or '<root>' for i in fitting)}; give the twin its "
            "modules in the Keras model's layer order")
    return fitting[0] if fitting else None


def _spatial_channels(torch_groups, index: int, twin) -> int | None:
    """Channels of the feature map a Linear at ``index`` flattens (None: it reads no feature map)."""
    for prev in range(index - 1, -1, -1):
        weight = twin.get(torch_groups[prev][1].get("weight", ""))
        if weight is not None and weight.ndim == 4:
            linear = twin[torch_groups[index][1]["weight"]]
            channels = weight.shape[0]
            features = linear.shape[1]
            return channels if features != channels and features % channels == 0 else None
    return None
