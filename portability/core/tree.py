"""Encode nested training state as JSON plus a flat set of named arrays.

safetensors holds tensors and string metadata only, so training state is split:
arrays become tensors named ``<prefix><path>`` and everything else becomes JSON,
with ``{"__tensor__": name}`` where an array stood. Dicts with non-string keys,
tuples and non-finite floats get tagged forms so decoding gives back the exact
Python values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from portability.core.dtypes import dtype_name
from portability.errors import FormatError


def encode(obj: Any, prefix: str, tensors: dict[str, np.ndarray]) -> Any:
    """Return a JSON-able form of ``obj``; arrays are moved into ``tensors``.

    Args:
        obj: nested dicts/lists/tuples of scalars, strings, None and arrays.
        prefix: name prefix for arrays found inside ``obj``.
        tensors: receives ``name -> array`` for every array.

    Raises:
        FormatError: a value has a type that cannot be stored.
    """
    if isinstance(obj, np.ndarray):
        try:
            dtype_name(obj.dtype)
        except FormatError as exc:
            raise FormatError(f"cannot store an array of dtype {obj.dtype} at {prefix!r}") from exc
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: encode(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            items.append([encode(k, f"{prefix}.key", {}), encode(v, f"{prefix}.{k}", tensors)])
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    raise FormatError(f"cannot store a value of type {type(obj).__name__} at {prefix!r}")


def decode(obj: Any, tensors: dict[str, Any]) -> Any:
    """Invert ``encode``; ``tensors`` maps names back to arrays.

    Raises:
        FormatError: a referenced tensor is missing.
    """
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        name = obj["__tensor__"]
        if name not in tensors:
            raise FormatError(f"training state refers to tensor {name!r}, which is missing")
        return tensors[name]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(decode(v, tensors) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {decode(k, tensors): decode(v, tensors) for k, v in obj["__dict__"]}
    return {k: decode(v, tensors) for k, v in obj.items()}
