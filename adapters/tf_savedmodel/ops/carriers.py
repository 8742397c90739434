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
from portability.errors import FormatError

# Initializers with more elements than this go into shape inference without their data:
# types and shapes come from the declaration, and only small tensors (shapes, axes) are
# ever read as values. This also keeps a model past protobuf's 2 GB limit inferable.
_INFERENCE_DATA_ELEMENTS = 4096


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
    values in between (an INT4 input reshaped before its Cast, say), on any model size.

    Raises:
        FormatError: shape inference rejects the model (without it, a carried value could
            pass for a plain uint8/int8 one and be computed on as codes).
    """
    graph = model.graph
    types = _declared_types(graph)
    if any(t in CARRIERS for t in types.values()):
        types = {**_declared_types(_inferred(model).graph), **types}
    return {name: t for name, t in types.items() if t in CARRIERS}


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference on ``model`` with the data of its large initializers left out.

    Raises:
        FormatError: inference fails (the message names the graph and onnx's reason).
    """
    try:
        return onnx.shape_inference.infer_shapes(_without_large_data(model))
    except Exception as exc:  # onnx raises InferenceError, ValidationError, protobuf errors...
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise FormatError(f"ONNX graph {model.graph.name!r}: shape inference fails ({type(exc).__name__}: "
                          f"{first}); it is needed to find the values held in carriers for narrow types "
                          "(int4, float8...)") from exc


def _without_large_data(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` for inference: initializers past ``_INFERENCE_DATA_ELEMENTS``
    keep their name, type and dims and become external references to nothing (inference
    reads no external data); everything else is copied as it is."""
    skeleton = onnx.ModelProto(ir_version=model.ir_version)
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    graph = skeleton.graph
    graph.name = model.graph.name
    for part in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(graph, part).extend(getattr(model.graph, part))
    for tensor in model.graph.initializer:
        kept = graph.initializer.add()
        if int(np.prod(tensor.dims, dtype=np.int64)) <= _INFERENCE_DATA_ELEMENTS:
            kept.CopyFrom(tensor)
            continue
        kept.name, kept.data_type = tensor.name, tensor.data_type
        kept.dims.extend(tensor.dims)
        kept.data_location = onnx.TensorProto.EXTERNAL
        kept.external_data.add(key="location", value="(left out of shape inference)")
    return skeleton


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
