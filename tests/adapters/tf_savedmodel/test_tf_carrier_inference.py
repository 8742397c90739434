"""Finding the values held in carriers needs ONNX shape inference: it runs on models of any
size (past protobuf's 2 GB too), and when it fails the translation fails with the reason
instead of going on with carried values unrecognised."""

from __future__ import annotations

import gc

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tensorflow")
from onnx import TensorProto, helper, numpy_helper

from portability.adapters.tf_savedmodel.ops.carriers import carried_types
from portability.errors import FormatError


def _int4_reshaped_before_its_cast(initializers=(), extra_nodes=(), extra_outputs=()):
    """An INT4 input reshaped (untyped in between) before its Cast to FLOAT: only shape
    inference says that ``r`` is INT4."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT), *extra_nodes]
    graph = helper.make_graph(nodes, "int4_reshape", [helper.make_tensor_value_info("x", TensorProto.INT4, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), *extra_outputs],
                              [numpy_helper.from_array(np.array([2, 2], np.int64), "shape"), *initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_large_initializers_leave_inference_and_the_model_unchanged():
    weight = numpy_helper.from_array(np.arange(10_000, dtype=np.float32), "weight")
    model = _int4_reshaped_before_its_cast(
        [weight], [helper.make_node("ReduceSum", ["weight"], ["total"])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, None)])
    before = model.SerializeToString()
    assert carried_types(model) == {"x": TensorProto.INT4, "r": TensorProto.INT4}
    assert model.SerializeToString() == before


@pytest.mark.slow
def test_a_model_past_2_gb_still_gets_its_carried_values_found():
    """``onnx.shape_inference.infer_shapes`` cannot serialise a model past 2 GB; the
    inference runs without the large initializer's data."""
    model = _int4_reshaped_before_its_cast(
        extra_nodes=[helper.make_node("Size", ["big"], ["count"])],
        extra_outputs=[helper.make_tensor_value_info("count", TensorProto.INT64, [])])
    size = 2**31 + 2**20
    big = model.graph.initializer.add()  # added in place: extend() would serialise it, past the limit
    big.name, big.data_type = "big", TensorProto.UINT8
    big.dims.append(size)
    big.raw_data = bytes(size)
    try:
        with pytest.raises(Exception, match="serialize"):  # what the unaided inference meets
            onnx.shape_inference.infer_shapes(model)
        assert carried_types(model) == {"x": TensorProto.INT4, "r": TensorProto.INT4}
    finally:
        del big, model
        gc.collect()


def test_a_failing_shape_inference_is_an_error_naming_its_reason():
    model = _int4_reshaped_before_its_cast(
        extra_nodes=[helper.make_node("Foo", ["y"], ["z"], domain="com.example.unimported")],
        extra_outputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    with pytest.raises(FormatError, match=r"ONNX graph 'int4_reshape': shape inference fails \(InferenceError: "
                                          r".*No opset import for domain com.example.unimported"):
        carried_types(model)
