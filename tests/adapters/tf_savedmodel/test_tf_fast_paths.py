"""The forms the translator picks for speed compute what ONNX defines, and are the ones used.

Each test translates with the weights compiled in (as an export does), checks the
values against onnx's reference evaluator (or numpy), and checks which TF ops
the serving graph holds, so a fast path that silently stopped applying fails.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

pytest.importorskip("tensorflow")
onnx_graphs = pytest.importorskip("onnx_graphs")

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402

RNG = np.random.default_rng(11)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _served(nodes, feeds, constants, opset=17, static=False):
    """(reference outputs, served outputs, op counts of the serving graph)."""
    model = onnx_graphs.make_model(nodes, feeds, constants, opset=opset, static=static)
    module = translate(model, compile_kernels=True)
    got = module.serve(*feeds.values())
    ops = collections.Counter(op.type for op in module.serve.get_concrete_function().graph.get_operations())
    expected = ReferenceEvaluator(model).run(None, feeds)
    return expected, [got[k].numpy() for k in module.output_names], ops


@pytest.mark.parametrize("slopes", [np.array([0.25, -0.5, 1.0], np.float32),
                                    np.array([0.0, 1.5, -0.5], np.float32)])
def test_prelu_with_known_slopes_is_exact_including_inf_and_nan(slopes):
    x = _x(2, 3, 4, 4)
    x[0, :, 0, :3] = [np.inf, -np.inf, np.nan]
    x[1, :, 1, 0] = -0.0
    nodes = [onnx_graphs.node("PRelu", ["x", "slope"])]
    _, (got,), ops = _served(nodes, {"x": x}, {"slope": slopes.reshape(3, 1, 1)})
    with np.errstate(invalid="ignore"):  # -inf * 0 is NaN, as ONNX defines it
        want = np.where(x < 0, x * slopes.reshape(1, 3, 1, 1), x)
    np.testing.assert_array_equal(got, want)  # NaN where NaN, inf where inf
    assert ops["Relu"] == 1 and ops["SelectV2"] == 0 and ops["Maximum"] == 0


def test_prelu_with_runtime_slopes_keeps_the_select():
    nodes = [onnx_graphs.node("PRelu", ["x", "slope"])]
    feeds = {"x": _x(2, 3), "slope": np.array([0.5, 2.0, 0.0], np.float32)}
    model = onnx_graphs.make_model(nodes, feeds)
    got = translate(model).serve(*feeds.values())["y"].numpy()
    np.testing.assert_array_equal(got, np.where(feeds["x"] < 0, feeds["x"] * feeds["slope"], feeds["x"]))


def test_ceil_mode_max_pool_of_known_size_pads_inside_the_kernel():
    nodes = [onnx_graphs.node("Conv", ["x", "w"], ["c"]),
             onnx_graphs.node("MaxPool", ["c"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, pads=[1, 0, 0, 1])]
    expected, got, ops = _served(nodes, {"x": -np.abs(_x(2, 3, 10, 9))}, {"w": np.abs(_x(4, 3, 1, 1))}, static=True)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    assert ops["MaxPool"] == 1 and ops["PadV2"] == 0 and ops["Pad"] == 0


def test_matmul_of_a_batch_by_a_weight_is_one_2d_matmul():
    nodes = [onnx_graphs.node("Transpose", ["w"], ["wt"], perm=[1, 0]), onnx_graphs.node("MatMul", ["x", "wt"])]
    expected, got, ops = _served(nodes, {"x": _x(2, 5, 6)}, {"w": _x(7, 6)})
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-5)
    assert ops["MatMul"] == 1 and ops["BatchMatMulV2"] == 0
    assert ops["Transpose"] == 0 and ops["ReadVariableOp"] == 0  # the weight's transpose was folded


@pytest.mark.parametrize(("ctm", "rounding"), [
    ("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil"),
    ("asymmetric", "round_prefer_floor"),  # not a repeat: the general path
])
def test_nearest_upsampling_by_integer_factors_repeats_pixels(ctm, rounding):
    nodes = [onnx_graphs.node("Conv", ["x", "w"], ["c"]),
             onnx_graphs.node("Resize", ["c", "", "scales"], mode="nearest",
                              coordinate_transformation_mode=ctm, nearest_mode=rounding)]
    constants = {"w": _x(2, 3, 1, 1), "scales": np.array([1, 1, 3, 2], np.float32)}
    expected, got, ops = _served(nodes, {"x": _x(2, 3, 4, 5)}, constants, opset=13)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    repeats = (ctm, rounding) != ("asymmetric", "round_prefer_floor")
    assert (ops["BroadcastTo"] == 1 and ops["GatherV2"] == 0) if repeats else ops["GatherV2"] >= 1


@pytest.mark.parametrize("attrs", [{"strides": [2, 2], "kernel_shape": [2, 2]},
                                   {"strides": [2, 3], "pads": [1, 0, 0, 2]}])
def test_conv_transpose_with_one_group_is_tf_kernel(attrs):
    nodes = [onnx_graphs.node("Conv", ["x", "k"], ["c"]), onnx_graphs.node("ConvTranspose", ["c", "w", "b"], **attrs)]
    size = attrs.get("kernel_shape", [3, 3])
    constants = {"k": _x(4, 3, 1, 1), "w": _x(4, 5, *size), "b": _x(5)}
    expected, got, ops = _served(nodes, {"x": _x(2, 3, 4, 5)}, constants)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)
    assert ops["Conv2DBackpropInput"] == 1


def test_lstm_weights_are_transposed_once_not_per_step():
    hidden, inputs = 4, 3
    nodes = [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=hidden, direction="bidirectional")]
    constants = {"w": _x(2, 4 * hidden, inputs), "r": _x(2, 4 * hidden, hidden), "b": _x(2, 8 * hidden)}
    expected, got, ops = _served(nodes, {"x": _x(5, 2, inputs)}, constants)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)
    assert ops["Einsum"] == 0 and ops["Transpose"] == 0
