"""Canonical dtype names (the safetensors spelling) and their numpy dtypes.

numpy lacks bfloat16 and float8; ml_dtypes supplies them, so every tensor in the
core is a plain ``np.ndarray`` whatever its precision.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from portability.errors import FormatError

_NUMPY_BY_NAME: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
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
_NAME_BY_NUMPY = {dt: name for name, dt in _NUMPY_BY_NAME.items()}


def dtype_name(dtype: np.dtype) -> str:
    """Return the canonical name (``"F32"``, ``"BF16"``...) of a numpy dtype.

    Raises:
        FormatError: the dtype has no canonical name.
    """
    try:
        return _NAME_BY_NUMPY[np.dtype(dtype)]
    except KeyError as exc:
        raise FormatError(f"dtype {np.dtype(dtype)} is not supported") from exc


def numpy_dtype(name: str) -> np.dtype:
    """Return the numpy dtype for a canonical name.

    Raises:
        FormatError: the name is unknown; the message lists the known names.
    """
    try:
        return _NUMPY_BY_NAME[name]
    except KeyError as exc:
        known = ", ".join(_NUMPY_BY_NAME)
        raise FormatError(f"unknown dtype {name!r} (known: {known})") from exc


def all_dtype_names() -> list[str]:
    """Every canonical dtype name, widest float first."""
    return list(_NUMPY_BY_NAME)
