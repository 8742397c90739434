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


def _key(a: np.ndarray) -> tuple[str, tuple[int, ...], int]:
    data = np.ascontiguousarray(a)
    return str(data.dtype), data.shape, xxhash.xxh3_64_intdigest(data.view(np.uint8).reshape(-1).data)


def plan_bindings(initializers: Mapping[str, np.ndarray], tensors: Mapping[str, np.ndarray],
                  aliases: Mapping[str, str], names: Mapping[str, str] | None = None) -> BindingPlan:
    """Bind initializers to checkpoint tensors.

    Args:
        initializers: ONNX initializer name -> value.
        tensors: checkpoint name -> value (canonical names only).
        aliases: tied name -> canonical name.
        names: initializer name -> checkpoint name, when the exporter knows it.

    Returns:
        The plan; every initializer is either bound or a constant.
    """
    plan = BindingPlan()
    by_content: dict[tuple, list[str]] = {}
    for name, value in tensors.items():
        by_content.setdefault(_key(value), []).append(name)
    for init_name, value in initializers.items():
        target = (names or {}).get(init_name, init_name)
        target = aliases.get(target, target)
        if target in tensors:
            if _same(tensors[target], value):
                plan.bound[init_name] = Binding(target)
                continue
            if is_floating(value.dtype):
                plan.frozen.append(target)
        found = _by_dotted_suffix(init_name, value, tensors) or _by_content(value, tensors, by_content)
        if found is not None:
            plan.bound[init_name] = found
        else:
            plan.constants.append(init_name)
    return plan


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    same_bytes = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    return a.dtype == b.dtype and a.shape == b.shape and same_bytes


def _by_dotted_suffix(init_name: str, value: np.ndarray, tensors) -> Binding | None:
    """A checkpoint tensor named like the initializer up to a module prefix
    (``lm.transformer.wte.weight`` <-> ``transformer.wte.weight``), with the same bits."""
    matches = [n for n in tensors
               if (init_name.endswith("." + n) or n.endswith("." + init_name)) and _same(tensors[n], value)]
    return Binding(matches[0]) if len(matches) == 1 else None


def _by_content(value: np.ndarray, tensors, by_content) -> Binding | None:
    """A unique checkpoint tensor with these bits (or whose transpose has them)."""
    if not is_floating(value.dtype) or value.size < 2:
        return None
    candidates = [(n, False) for n in by_content.get(_key(value), [])]
    if value.ndim == 2:
        candidates += [(n, True) for n in by_content.get(_key(value.T), [])]
    matches = [(n, t) for n, t in candidates
               if _same(tensors[n].T if t else tensors[n], value)]
    if len(matches) != 1:
        return None
    return Binding(*matches[0])
