"""ONNX ``TensorProto`` -> numpy with identical bits.

``onnx.numpy_helper.to_array`` is avoided on purpose: decoding the raw bytes
ourselves keeps bfloat16 and float8 as ml_dtypes arrays with the stored bits,
whatever the onnx release does with them.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto

from portability.errors import FormatError

NUMPY_BY_ONNX: dict[int, np.dtype] = {
    TensorProto.FLOAT: np.dtype(np.float32),
    TensorProto.DOUBLE: np.dtype(np.float64),
    TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    TensorProto.FLOAT8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    TensorProto.FLOAT8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    TensorProto.INT64: np.dtype(np.int64),
    TensorProto.INT32: np.dtype(np.int32),
    TensorProto.INT16: np.dtype(np.int16),
    TensorProto.INT8: np.dtype(np.int8),
    TensorProto.UINT64: np.dtype(np.uint64),
    TensorProto.UINT32: np.dtype(np.uint32),
    TensorProto.UINT16: np.dtype(np.uint16),
    TensorProto.UINT8: np.dtype(np.uint8),
    TensorProto.BOOL: np.dtype(np.bool_),
    TensorProto.COMPLEX64: np.dtype(np.complex64),
}
# Element types whose typed field is int32_data holding the raw bits.
_BITS_IN_INT32 = {TensorProto.FLOAT16: np.uint16, TensorProto.BFLOAT16: np.uint16,
                  TensorProto.FLOAT8E4M3FN: np.uint8, TensorProto.FLOAT8E5M2: np.uint8,
                  TensorProto.INT16: np.int16, TensorProto.INT8: np.int8,
                  TensorProto.UINT16: np.uint16, TensorProto.UINT8: np.uint8,
                  TensorProto.BOOL: np.uint8, TensorProto.INT32: np.int32}


def numpy_dtype(data_type: int, name: str = "tensor") -> np.dtype:
    """The numpy dtype of an ONNX element type.

    Raises:
        FormatError: a type with no numpy counterpart (names the tensor).
    """
    if data_type not in NUMPY_BY_ONNX:
        type_name = TensorProto.DataType.Name(data_type) if data_type in TensorProto.DataType.values() \
            else str(data_type)
        raise FormatError(f"tensor {name!r} has ONNX type {type_name}, which has no numpy counterpart")
    return NUMPY_BY_ONNX[data_type]


def tensor_to_numpy(tensor: TensorProto) -> np.ndarray:
    """Decode a tensor whose data is in the proto (load external data first).

    Raises:
        FormatError: unknown type, external data not loaded, or a byte count
            that does not match the shape.
    """
    dtype = numpy_dtype(tensor.data_type, tensor.name)
    shape = tuple(int(d) for d in tensor.dims)
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.data_location == TensorProto.EXTERNAL:
        raise FormatError(f"tensor {tensor.name!r}: external data was not loaded")
    if tensor.HasField("raw_data"):
        raw = tensor.raw_data
        if len(raw) != count * dtype.itemsize:
            raise FormatError(f"tensor {tensor.name!r}: {len(raw)} bytes for shape {list(shape)} "
                              f"of {dtype} (expected {count * dtype.itemsize})")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if tensor.data_type in _BITS_IN_INT32:
        bits = np.asarray(tensor.int32_data, dtype=np.int64).astype(_BITS_IN_INT32[tensor.data_type])
        values = bits.view(dtype) if bits.dtype.itemsize == dtype.itemsize else bits.astype(dtype)
    else:
        field = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data",
                 TensorProto.INT64: "int64_data", TensorProto.UINT64: "uint64_data",
                 TensorProto.UINT32: "uint64_data", TensorProto.COMPLEX64: "float_data"}[tensor.data_type]
        values = np.asarray(getattr(tensor, field)).astype(dtype) if tensor.data_type != TensorProto.COMPLEX64 \
            else np.asarray(tensor.float_data, dtype=np.float32).view(np.complex64)
    if values.size != count:
        raise FormatError(f"tensor {tensor.name!r}: {values.size} values for shape {list(shape)}")
    return values.reshape(shape)


def onnx_type_name(data_type: int) -> str:
    """``FLOAT``, ``BFLOAT16``... for messages."""
    return onnx.TensorProto.DataType.Name(data_type)
