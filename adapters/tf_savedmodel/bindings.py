"""Which ONNX initializers are the checkpoint's tensors, found by name or by content.

Exporters rename or pre-transpose weights (``val_92`` = ``query.weight``.T
after constant folding). An initializer is bound to a checkpoint tensor when
its name maps to one with the same bits (exactly, or up to a module prefix
such as a wrapper's ``model.``), or when its bits equal a unique
tensor's bits (or, for matrices, its transpose's). Anything else stays a graph
constant and is reported, since training cannot reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import xxhash

from portability.core.tensors import Tensor, as_array, iter_bytes


@dataclass(frozen=True)
class Binding:
    """An initializer read from a variable: ``transpose`` for pre-transposed matrices."""

    name: str
    transpose: bool = False


@dataclass
class BindingPlan:
    """Result of matching initializers to checkpoint tensors.

    Attributes:
        bound: initializer name -> Binding of a checkpoint tensor.
        constants: initializer names kept as graph constants.
        frozen: checkpoint names whose graph copy differs from the checkpoint
            (e.g. BatchNorm folded into a Conv), so the graph uses a constant.
    """

    bound: dict[str, Binding] = field(default_factory=dict)
    constants: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)


def is_floating(dtype: np.dtype) -> bool:
    """numpy floats plus ml_dtypes' bfloat16 / float8 (numpy kind 'V')."""
    return dtype.kind == "f" or dtype.name == "bfloat16" or dtype.name.startswith("float8")


def _key(a: Tensor) -> tuple[str, tuple[int, ...], str]:
    """dtype, shape and a 128-bit digest of the C-order bytes (streamed for a lazy tensor)."""
    h = xxhash.xxh3_128()
    for piece in iter_bytes(a):
        h.update(piece)
    return str(np.dtype(a.dtype)), tuple(a.shape), h.hexdigest()


def _transposed_key(a: Tensor) -> tuple[str, tuple[int, ...], str]:
    return _key(np.ascontiguousarray(as_array(a).T))


def plan_bindings(initializers: Mapping[str, Tensor], tensors: Mapping[str, Tensor],
                  aliases: Mapping[str, str], names: Mapping[str, str] | None = None) -> BindingPlan:
    """Bind initializers to checkpoint tensors.

    Values are compared by their digests (dtype, shape and a 128-bit hash of the
    bytes), each tensor read once, so neither side is held whole in memory.

    Args:
        initializers: ONNX initializer name -> value (an array or a lazy tensor).
        tensors: checkpoint name -> value (canonical names only).
        aliases: tied name -> canonical name.
        names: initializer name -> checkpoint name, when the exporter knows it.

    Returns:
        The plan; every initializer is either bound or a constant.
    """
    plan = BindingPlan()
    keys = {name: _key(value) for name, value in tensors.items()}
    by_content: dict[tuple, list[str]] = {}
    for name, key in keys.items():
        by_content.setdefault(key, []).append(name)
    for init_name, value in initializers.items():
        key = _key(value)
        target = (names or {}).get(init_name, init_name)
        target = aliases.get(target, target)
        if target in tensors:
            if keys[target] == key:
                plan.bound[init_name] = Binding(target)
                continue
            if is_floating(np.dtype(value.dtype)):
                plan.frozen.append(target)
        found = _by_dotted_suffix(init_name, key, keys) or _by_content(value, key, by_content)
        if found is not None:
            plan.bound[init_name] = found
        else:
            plan.constants.append(init_name)
    return plan


def _by_dotted_suffix(init_name: str, key: tuple, keys: Mapping[str, tuple]) -> Binding | None:
    """A checkpoint tensor named like the initializer up to a module prefix
    (``lm.transformer.wte.weight`` <-> ``transformer.wte.weight``), with the same bits."""
    matches = [n for n, k in keys.items()
               if (init_name.endswith("." + n) or n.endswith("." + init_name)) and k == key]
    return Binding(matches[0]) if len(matches) == 1 else None


def _by_content(value: Tensor, key: tuple, by_content: Mapping[tuple, list[str]]) -> Binding | None:
    """A unique checkpoint tensor with these bits (or whose transpose has them)."""
    if not is_floating(np.dtype(value.dtype)) or value.size < 2:
        return None
    matches = [(n, False) for n in by_content.get(key, [])]
    if value.ndim == 2:
        matches += [(n, True) for n in by_content.get(_transposed_key(value), [])]
    if len(matches) != 1:
        return None
    return Binding(*matches[0])
