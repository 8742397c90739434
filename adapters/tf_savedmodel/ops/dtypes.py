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
# ONNX types TF has a dtype for but no kernels to compute with (not even Cast).
NO_KERNELS = ("FLOAT8E4M3FNUZ", "FLOAT8E5M2FNUZ", "FLOAT8E8M0", "FLOAT4E2M1",
              "INT4", "UINT4", "INT2", "UINT2")
# The largest finite value of each float8 type (Cast saturates to it).
FLOAT8_MAX = {tf.dtypes.experimental.float8_e4m3fn: 448.0, tf.dtypes.experimental.float8_e5m2: 57344.0}


def tf_dtype(elem_type: int, where: str) -> tf.DType:
    """The TF dtype of an ONNX element type.

    Raises:
        UnsupportedOpError: a type TF cannot hold (names ``where``).
    """
    if elem_type not in TF_BY_ONNX:
        known = elem_type in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(elem_type) if known else elem_type
        why = ("TensorFlow has no kernels for it, not even Cast" if name in NO_KERNELS
               else "it has no TensorFlow equivalent")
        raise UnsupportedOpError(f"{where}: ONNX element type {name}: {why}")
    return TF_BY_ONNX[elem_type]
