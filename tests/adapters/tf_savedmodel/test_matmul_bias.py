"""A Linear layer's MatMul + Add(bias) becomes one MatMul with a bias in the compiled
serving graph; outputs stay the Add's."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tensorflow")
onnx_graphs = pytest.importorskip("onnx_graphs")

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402
from portability.adapters.tf_savedmodel.matmul_bias import fuse_matmul_bias  # noqa: E402

RNG = np.random.default_rng(5)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _model(nodes, constants, x_shape, outputs=("y",)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *x_shape[1:]])
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    inits = [numpy_helper.from_array(v, k) for k, v in constants.items()]
    return helper.make_model(helper.make_graph(nodes, "g", [x], outs, inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _linear(x, y, prefix, bias_first=False):
    inputs = [f"{prefix}_b", f"{prefix}_mm"] if bias_first else [f"{prefix}_mm", f"{prefix}_b"]
    return [helper.make_node("MatMul", [x, f"{prefix}_w"], [f"{prefix}_mm"], name=f"{prefix}_matmul"),
            helper.make_node("Add", inputs, [y], name=f"{prefix}_add")]


def _fused(model):
    return [n.op_type for n in fuse_matmul_bias(model.graph.node, {o.name for o in model.graph.output})]


def test_two_linear_layers_fuse_and_give_the_unfused_graphs_values_bit_for_bit():
    nodes = [*_linear("x", "h", "l1"), helper.make_node("Relu", ["h"], ["r"], name="relu"),
             *_linear("r", "y", "l2", bias_first=True)]
    constants = {"l1_w": _x(16, 32), "l1_b": _x(32), "l2_w": _x(32, 8), "l2_b": _x(8)}
    model = _model(nodes, constants, (2, 5, 16))
    assert _fused(model) == ["MatMul", "Relu", "MatMul"]
    module = translate(model, compile_kernels=True)
    graph = module.serve.get_concrete_function().graph
    ops = collections.Counter(op.type for op in graph.get_operations())
    assert ops["MatMul"] == 2 and ops["BiasAdd"] == 2 and ops["AddV2"] == 0
    # The same graph with both products also graph outputs: nothing fuses.
    apart = translate(_model(nodes, constants, (2, 5, 16), ("y", "l1_mm", "l2_mm")), compile_kernels=True)
    graph = apart.serve.get_concrete_function().graph
    assert collections.Counter(op.type for op in graph.get_operations())["BiasAdd"] == 0
    for batch in (1, 3):
        x = _x(batch, 5, 16)
        served = module.serve(x)["y"].numpy()
        assert served.shape == (batch, 5, 8)
        assert served.tobytes() == apart.serve(x)["y"].numpy().tobytes()
        assert served.tobytes() == module.serve_from_variables(x)["y"].numpy().tobytes()
        want = np.maximum(x @ constants["l1_w"] + constants["l1_b"], 0) @ constants["l2_w"] + constants["l2_b"]
        np.testing.assert_allclose(served, want, rtol=1e-5, atol=1e-5)


def test_a_bias_that_widens_the_rank_is_added_as_onnx_broadcasts_it():
    nodes = _linear("x", "y", "l")
    constants = {"l_w": _x(4, 3), "l_b": _x(1, 1, 3)}  # [2, 4] @ [4, 3] + [1, 1, 3] -> [1, 2, 3]
    onnx_graphs.check(nodes, {"x": _x(2, 4)}, constants, opset=17)
    model = _model(nodes, constants, (2, 4))
    got = translate(model, compile_kernels=True).serve(_x(2, 4))["y"].numpy()
    assert got.shape == (1, 2, 3)


def test_pairs_that_must_stay_apart_are_left_alone():
    nodes = _linear("x", "y", "l")
    constants = {"l_w": _x(4, 3), "l_b": _x(3)}
    shared = [*nodes, helper.make_node("Mul", ["l_mm", "y"], ["z"], name="mul")]  # product read twice
    assert _fused(_model(shared, constants, (2, 4), ("z",))) == ["MatMul", "Add", "Mul"]
    as_output = _model(nodes, constants, (2, 4), ("y", "l_mm"))  # the product is a graph output
    assert _fused(as_output) == ["MatMul", "Add"]


@pytest.mark.parametrize("bias", [np.float32(0.5) * np.ones([2, 3], np.float32), "input"])
def test_an_add_of_anything_else_is_added_after_the_product(bias):
    """A matrix, or a bias known only at run time, is fused structurally and added
    after the product, broadcast as ONNX's Add does."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="matmul"),
             helper.make_node("Add", ["mm", "b"], ["y"], name="add")]
    feeds = {"x": _x(2, 4)}
    constants = {"w": _x(4, 3)}
    if isinstance(bias, str):
        feeds["b"] = _x(3)
    else:
        constants["b"] = bias
    onnx_graphs.check(nodes, feeds, constants, opset=17)
