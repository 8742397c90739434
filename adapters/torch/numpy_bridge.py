"""torch <-> numpy conversions shared by every adapter that touches torch.

numpy has no bfloat16/float8, so those travel as same-width integer views and
are reinterpreted with ml_dtypes: the bits never change.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import torch

from portability.core.tensors import LazyTensor, as_array
from portability.errors import FormatError

# torch dtype -> (integer view dtype or None, numpy dtype)
_BIT_VIEWS: dict[torch.dtype, tuple[torch.dtype, np.dtype]] = {
    torch.bfloat16: (torch.int16, np.dtype(ml_dtypes.bfloat16)),
    torch.float8_e4m3fn: (torch.uint8, np.dtype(ml_dtypes.float8_e4m3fn)),
    torch.float8_e5m2: (torch.uint8, np.dtype(ml_dtypes.float8_e5m2)),
}
_TORCH_BY_NUMPY = {npdt: tdt for tdt, (_, npdt) in _BIT_VIEWS.items()}
_PLAIN = {
    torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool, torch.complex64,
    torch.uint16, torch.uint32, torch.uint64,
}


def tensor_to_numpy(t: torch.Tensor, name: str = "tensor") -> np.ndarray:
    """Return the tensor's values as a numpy array with identical bits.

    Raises:
        FormatError: the dtype has no numpy counterpart (names the tensor).
    """
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype in _BIT_VIEWS:
        view_dtype, np_dtype = _BIT_VIEWS[t.dtype]
        return t.view(view_dtype).numpy().view(np_dtype)
    if t.dtype in _PLAIN:
        return t.numpy()
    raise FormatError(f"tensor {name!r} has dtype {t.dtype}, which cannot be converted")


def numpy_to_tensor(a: Any) -> torch.Tensor:
    """Return a torch tensor with the same bits as a numpy array (or LazyTensor)."""
    a = as_array(a) if isinstance(a, LazyTensor) else a
    if not a.flags.writeable:
        a = a.copy()
    if a.dtype in _TORCH_BY_NUMPY:
        torch_dtype = _TORCH_BY_NUMPY[a.dtype]
        view = np.int16 if a.dtype.itemsize == 2 else np.uint8
        return torch.from_numpy(a.view(view)).view(torch_dtype)
    if a.ndim == 0:
        return torch.from_numpy(a.reshape(1)).reshape(())
    return torch.from_numpy(a)


def to_neutral(obj: Any, where: str) -> Any:
    """Recursively replace tensors by arrays; keep JSON-like values.

    Raises:
        FormatError: an object that is neither (names where it sits).
    """
    if isinstance(obj, torch.Tensor):
        return tensor_to_numpy(obj, where)
    if isinstance(obj, dict):
        return {k: to_neutral(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_neutral(v, f"{where}.{i}") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str, np.ndarray, np.generic)):
        return obj
    raise FormatError(
        f"entry {where!r} holds a {type(obj).__module__}.{type(obj).__qualname__} object, "
        "which has no portable form"
    )


def to_torch(obj: Any) -> Any:
    """Inverse of ``to_neutral``: arrays become tensors."""
    if isinstance(obj, (np.ndarray, LazyTensor)):
        return numpy_to_tensor(obj)
    if isinstance(obj, dict):
        return {k: to_torch(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_torch(v) for v in obj)
    if isinstance(obj, list):
        return [to_torch(v) for v in obj]
    return obj


def numpy_paths(obj: Any, prefix: list) -> list[list]:
    """Paths (lists of keys and indices) to the numpy arrays inside ``obj``.

    A checkpoint may hold numpy arrays next to tensors (``np.random.get_state()``
    is the common case); recording where they stood lets a writer give them
    back as numpy arrays instead of tensors.
    """
    if isinstance(obj, np.ndarray):
        return [list(prefix)]
    found: list[list] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += numpy_paths(v, prefix + [k])
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += numpy_paths(v, prefix + [i])
    return found


def restore_numpy(obj: Any, paths: list[list]) -> Any:
    """Turn the tensors at ``paths`` back into numpy arrays; returns the new ``obj``.

    Paths that no longer lead to a tensor are skipped.
    """
    for path in paths:
        obj = _replace_at(obj, list(path))
    return obj


def _replace_at(obj: Any, path: list) -> Any:
    if not path:
        return tensor_to_numpy(obj).copy() if isinstance(obj, torch.Tensor) else obj
    key, rest = path[0], path[1:]
    if isinstance(obj, dict) and key in obj:
        obj[key] = _replace_at(obj[key], rest)
    elif isinstance(obj, list) and isinstance(key, int) and 0 <= key < len(obj):
        obj[key] = _replace_at(obj[key], rest)
    elif isinstance(obj, tuple) and isinstance(key, int) and 0 <= key < len(obj):
        obj = obj[:key] + (_replace_at(obj[key], rest),) + obj[key + 1:]
    return obj
