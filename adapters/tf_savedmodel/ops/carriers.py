"""The translated module's boundary for ONNX types TF holds in a carrier.

Inside the graph a FLOAT8E4M3FNUZ, FLOAT4E2M1, INT4... value is a uint8/int8
tensor (``ops.dtypes.CARRIERS``). Callers pass and get numpy arrays of the
ml_dtypes type ONNX uses for it; these helpers convert at the boundary and find
which graph values are carried.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from portability.adapters.tf_savedmodel.ops.dtypes import BIT_PATTERNS, CARRIERS


def numpy_type(elem_type: int) -> np.dtype:
    """The numpy (ml_dtypes) dtype onnx uses for an ONNX element type."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


_CARRIED_BY_NUMPY = {numpy_type(t): t for t in CARRIERS}


def is_carried(dtype: np.dtype) -> bool:
    """Whether arrays of this numpy dtype travel in a carrier inside the graph."""
    return dtype in _CARRIED_BY_NUMPY


def to_carrier_array(value):
    """An array of a carried ml_dtypes type as its carrier array (bit patterns viewed as
    uint8, narrow integers' values as int8/uint8), element-wise for a sequence (a list);
    anything else unchanged."""
    if isinstance(value, list):
        return [to_carrier_array(item) for item in value]
    dtype = getattr(value, "dtype", None)
    elem_type = _CARRIED_BY_NUMPY.get(dtype) if isinstance(dtype, np.dtype) else None
    if elem_type is None:
        return value
    array = np.asarray(value)
    carrier = CARRIERS[elem_type].as_numpy_dtype
    return array.view(carrier) if elem_type in BIT_PATTERNS else array.astype(carrier)


def from_carrier_array(array: np.ndarray, elem_type: int) -> np.ndarray:
    """A carrier array back as the ml_dtypes array of ONNX type ``elem_type``."""
    array = np.asarray(array)
    if elem_type in BIT_PATTERNS:
        return array.astype(np.uint8).view(numpy_type(elem_type))
    return array.astype(numpy_type(elem_type))


def carried_types(model: onnx.ModelProto) -> dict[str, int]:
    """Value name -> ONNX element type, for every value of the graph held in a carrier.

    Declared types (inputs, outputs, value_info, initializers, Constant values)
    and Cast targets come first; when any carried type appears, ONNX shape inference types the
    values in between (an INT4 input reshaped before its Cast, say).
    """
    graph = model.graph
    types = _declared_types(graph)
    if any(t in CARRIERS for t in types.values()):
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # inference is a best effort: the declared types still hold
            inferred = None
        if inferred is not None:
            types = {**_declared_types(inferred.graph), **types}
    return {name: t for name, t in types.items() if t in CARRIERS}


def _declared_types(graph: onnx.GraphProto) -> dict[str, int]:
    types = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.WhichOneof("value") == "tensor_type" and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    types.update({init.name: init.data_type for init in graph.initializer})
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or not node.output:
            continue
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Cast" and "to" in attrs:
            types[node.output[0]] = attrs["to"].i
        elif node.op_type == "Constant" and "value" in attrs:
            types[node.output[0]] = attrs["value"].t.data_type
    return types
