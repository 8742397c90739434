"""Canonical dtype names (the safetensors spelling) and their numpy dtypes.

numpy lacks bfloat16 and float8; ml_dtypes supplies them, so every tensor in the
core is a plain ``np.ndarray`` whatever its precision. ml_dtypes is imported only
when one of those names or dtypes is met: its import costs half a second, which a
float32 conversion should not pay.
"""

from __future__ import annotations

import functools

import numpy as np

from portability.errors import FormatError

_STANDARD: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U64": np.dtype(np.uint64),
    "U32": np.dtype(np.uint32),
    "U16": np.dtype(np.uint16),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
    "C64": np.dtype(np.complex64),
}
# Canonical name -> the ml_dtypes type's attribute name.
_NARROW = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
# Widest float first, as readers and reports list them.
_ORDER = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32", "I16", "I8",
          "U64", "U32", "U16", "U8", "BOOL", "C64")
_NAME_BY_STANDARD = {dt: name for name, dt in _STANDARD.items()}


@functools.cache
def _narrow_dtypes() -> dict[str, np.dtype]:
    import ml_dtypes

    return {name: np.dtype(getattr(ml_dtypes, attr)) for name, attr in _NARROW.items()}


def dtype_name(dtype: np.dtype) -> str:
    """Return the canonical name (``"F32"``, ``"BF16"``...) of a numpy dtype.

    Raises:
        FormatError: the dtype has no canonical name.
    """
    dt = np.dtype(dtype)
    name = _NAME_BY_STANDARD.get(dt)
    if name is not None:
        return name
    for narrow, narrow_dt in _narrow_dtypes().items():  # only a dtype numpy lacks gets here
        if narrow_dt == dt:
            return narrow
    raise FormatError(f"dtype {dt} is not supported")


def numpy_dtype(name: str) -> np.dtype:
    """Return the numpy dtype for a canonical name.

    Raises:
        FormatError: the name is unknown; the message lists the known names.
    """
    if name in _STANDARD:
        return _STANDARD[name]
    if name in _NARROW:
        return _narrow_dtypes()[name]
    raise FormatError(f"unknown dtype {name!r} (known: {', '.join(_ORDER)})")


def all_dtype_names() -> list[str]:
    """Every canonical dtype name, widest float first."""
    return list(_ORDER)


def is_floating(dtype: np.dtype) -> bool:
    """numpy's floats plus ml_dtypes' bfloat16 and float8 types (numpy kind ``V``)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype.name == "bfloat16" or dtype.name.startswith("float8")
