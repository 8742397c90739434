"""ONNX element types <-> TensorFlow dtypes."""

from __future__ import annotations

import onnx
import tensorflow as tf

from portability.errors import UnsupportedOpError

TF_BY_ONNX: dict[int, tf.DType] = {
    onnx.TensorProto.FLOAT: tf.float32,
    onnx.TensorProto.DOUBLE: tf.float64,
    onnx.TensorProto.FLOAT16: tf.float16,
    onnx.TensorProto.BFLOAT16: tf.bfloat16,
    onnx.TensorProto.INT64: tf.int64,
    onnx.TensorProto.INT32: tf.int32,
    onnx.TensorProto.INT16: tf.int16,
    onnx.TensorProto.INT8: tf.int8,
    onnx.TensorProto.UINT8: tf.uint8,
    onnx.TensorProto.UINT16: tf.uint16,
    onnx.TensorProto.UINT32: tf.uint32,
    onnx.TensorProto.UINT64: tf.uint64,
    onnx.TensorProto.BOOL: tf.bool,
    onnx.TensorProto.STRING: tf.string,
    onnx.TensorProto.FLOAT8E4M3FN: tf.dtypes.experimental.float8_e4m3fn,
    onnx.TensorProto.FLOAT8E5M2: tf.dtypes.experimental.float8_e5m2,
}
# ONNX types TF cannot compute with (it has dtypes for most but no kernels, not even
# Cast; FLOAT8E8M0 has no dtype). A graph value of one travels in a carrier: the float
# types as their bit patterns in uint8, the integer types as their values in int8/uint8.
# Only Cast (``narrow_dtypes``) and the module's boundary read or write carriers, and a
# saved serving signature takes and returns the carrier dtype.
CARRIERS: dict[int, tf.DType] = {
    onnx.TensorProto.FLOAT8E4M3FNUZ: tf.uint8,
    onnx.TensorProto.FLOAT8E5M2FNUZ: tf.uint8,
    onnx.TensorProto.FLOAT8E8M0: tf.uint8,
    onnx.TensorProto.FLOAT4E2M1: tf.uint8,
    onnx.TensorProto.INT4: tf.int8,
    onnx.TensorProto.INT2: tf.int8,
    onnx.TensorProto.UINT4: tf.uint8,
    onnx.TensorProto.UINT2: tf.uint8,
}
# The carried types whose carrier holds bit patterns rather than values.
BIT_PATTERNS = (onnx.TensorProto.FLOAT8E4M3FNUZ, onnx.TensorProto.FLOAT8E5M2FNUZ,
                onnx.TensorProto.FLOAT8E8M0, onnx.TensorProto.FLOAT4E2M1)
# The largest finite value of each float8 type (Cast saturates to it).
FLOAT8_MAX = {tf.dtypes.experimental.float8_e4m3fn: 448.0, tf.dtypes.experimental.float8_e5m2: 57344.0}


def tf_dtype(elem_type: int, where: str) -> tf.DType:
    """The TF dtype of an ONNX element type, for ops that compute with it.

    Raises:
        UnsupportedOpError: a type TF cannot compute with (names ``where``).
    """
    if elem_type not in TF_BY_ONNX:
        known = elem_type in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(elem_type) if known else elem_type
        why = ("TensorFlow cannot compute with it (only Cast and the graph's inputs and outputs "
               "carry it)" if elem_type in CARRIERS else "it has no TensorFlow equivalent")
        raise UnsupportedOpError(f"{where}: ONNX element type {name}: {why}")
    return TF_BY_ONNX[elem_type]


def held_dtype(elem_type: int, where: str) -> tf.DType:
    """The TF dtype a graph value of an ONNX type is held in: its own, or its carrier."""
    return CARRIERS[elem_type] if elem_type in CARRIERS else tf_dtype(elem_type, where)
