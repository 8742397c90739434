"""The layout pass: channels-last inside, ONNX layout at the edges, same values."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tensorflow")
onnx_graphs = pytest.importorskip("onnx_graphs")

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402

RNG = np.random.default_rng(3)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _ops(module) -> collections.Counter:
    graph = module.serve.get_concrete_function().graph
    return collections.Counter(op.type for op in graph.get_operations())


def n(op, inputs, outputs, **attrs):
    """A node named after its first output (names must be unique in a graph)."""
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op}_{outputs[0]}", **attrs)


def _detector_nodes():
    """Conv -> PRelu -> ceil-mode MaxPool -> depthwise Conv (+ a constant) -> Concat with
    a Conv on channels -> BatchNorm -> bilinear Resize -> Softmax over channels, plus a
    flattened global pool."""
    return [
        n("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        n("PRelu", ["c1", "slope"], ["p1"]),
        n("MaxPool", ["p1"], ["m1"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        n("Conv", ["m1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        n("Add", ["c2", "shift"], ["a2"]),
        n("Conv", ["m1", "w3", "b3"], ["c3"]),
        n("Concat", ["a2", "c3"], ["cat"], axis=1),
        n("BatchNormalization", ["cat", "scale", "bias", "mean", "var"], ["bn"]),
        n("Relu", ["bn"], ["r"]),
        n("Constant", [], ["scales"], value=numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32))),
        n("Resize", ["r", "", "scales"], ["up"], mode="linear"),
        n("Softmax", ["up"], ["probs"], axis=1),
        n("GlobalAveragePool", ["r"], ["g"]),
        n("Flatten", ["g"], ["flat"]),
    ]


def _detector_model():
    constants = {"w1": _x(8, 3, 3, 3), "b1": _x(8), "slope": np.abs(_x(8, 1, 1)), "w2": _x(8, 1, 3, 3),
                 "shift": _x(8, 1, 1), "w3": _x(4, 8, 1, 1), "b3": _x(4), "scale": _x(12), "bias": _x(12),
                 "mean": _x(12), "var": np.abs(_x(12)) + 0.5}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 11, 13])
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("probs", "flat")]
    inits = [numpy_helper.from_array(v, k) for k, v in constants.items()]
    graph = helper.make_graph(_detector_nodes(), "g", [x], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_detector_runs_channels_last_with_transposes_only_at_the_edges():
    import onnxruntime

    model = _detector_model()
    feed = {"x": _x(2, 3, 11, 13)}
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feed)
    module = translate(model, compile_kernels=True)
    got = module(**feed)
    for want, key in zip(expected, ["probs", "flat"], strict=True):
        assert got[key].shape == want.shape  # outputs keep the ONNX layout
        np.testing.assert_allclose(got[key].numpy(), want, rtol=1e-4, atol=1e-5)
    ops = _ops(module)
    # One transpose in (the image), one out (probs); the pooled [N, 1, 1, C] map is reshaped.
    assert ops["Transpose"] == 2
    assert ops["Conv2D"] == 2 and ops["DepthwiseConv2dNative"] == 1
    assert ops["FusedBatchNormV3"] == 1 and ops["MaxPool"] == 1
    assert ops["ResizeBilinear"] == 1


def test_axis_ops_on_channels_last_values_remap_their_axes():
    nodes = [n("Conv", ["x", "w"], ["c"]),
             n("ReduceMean", ["c"], ["mean"], axes=[1], keepdims=1),
             n("Sub", ["c", "mean"], ["centred"]),
             n("Split", ["centred"], ["s0", "s1"], axis=1),
             n("Slice", ["s0", "starts", "ends", "axes"], ["sl"]),
             n("ReduceMax", ["sl"], ["red"], axes=[2, 3], keepdims=0),
             n("Transpose", ["s1"], ["t"], perm=[0, 2, 3, 1]),
             n("Shape", ["t"], ["shape"]),
             n("Cast", ["shape"], ["shape_f"], to=TensorProto.FLOAT),
             n("ArgMax", ["sl"], ["arg"], axis=1, keepdims=1),
             n("Cast", ["arg"], ["arg_f"], to=TensorProto.FLOAT),
             n("ReduceSum", ["arg_f"], ["arg_sum"], keepdims=0),
             n("ReduceSum", ["shape_f"], ["shape_sum"], keepdims=0),
             n("Add", ["arg_sum", "shape_sum"], ["scalar"]),
             n("Mul", ["red", "scalar"], ["y"])]
    constants = {"w": _x(6, 3, 3, 3), "starts": np.array([1, 0], np.int64), "ends": np.array([3, 4], np.int64),
                 "axes": np.array([1, 3], np.int64)}
    onnx_graphs.check(nodes, {"x": _x(2, 3, 7, 9)}, constants, opset=13, rtol=1e-4, atol=1e-4)


def test_a_transpose_after_a_conv_folds_into_one():
    nodes = [n("Conv", ["x", "w"], ["c"]), n("Transpose", ["c"], ["y"], perm=[0, 3, 2, 1])]
    model = onnx_graphs.make_model(nodes, {"x": _x(1, 3, 6, 5)}, {"w": _x(4, 3, 1, 1)})
    module = translate(model, compile_kernels=True)
    assert _ops(module)["Transpose"] == 2  # the input's, and one for the Conv's output
    onnx_graphs.check(nodes, {"x": _x(1, 3, 6, 5)}, {"w": _x(4, 3, 1, 1)}, rtol=1e-5, atol=1e-5)


def test_compiled_weights_give_the_variables_outputs_and_keep_their_values():
    model = _detector_model()
    graph = model.graph
    module = translate(model, compile_kernels=True)
    assert set(module.compiled_weights) == {i.name for i in graph.initializer}
    serving = module.serve.get_concrete_function().graph
    assert not [op for op in serving.get_operations() if op.type == "ReadVariableOp"]
    feed = {"x": _x(1, 3, 11, 13)}
    served = module.serve(feed["x"])
    from_variables = module.serve_from_variables(feed["x"])
    for key in served:  # Grappler folds constant factors (a BatchNorm's) in its own order
        np.testing.assert_allclose(served[key].numpy(), from_variables[key].numpy(), rtol=1e-5, atol=1e-6)
    for init in graph.initializer:  # the variables keep the ONNX layout, bit for bit
        assert module.weights[init.name].numpy().tobytes() == numpy_helper.to_array(init).tobytes()


def test_the_plain_translation_is_kept_for_ops_without_a_channels_last_form():
    # MaxPool with an Indices output has no TF kernel channels-last: it runs channels-first.
    nodes = [n("Conv", ["x", "w"], ["c"]), n("Identity", ["c"], ["conv"]),
             n("MaxPool", ["c"], ["y", "i"], kernel_shape=[2, 2])]
    model = onnx_graphs.make_model(nodes, {"x": _x(1, 2, 6, 6)}, {"w": _x(3, 2, 3, 3)}, outputs=2)
    model.graph.output.extend([helper.make_tensor_value_info("conv", TensorProto.FLOAT, None)])
    got = translate(model)(x=_x(1, 2, 6, 6))
    values, indices, conv = got["y"].numpy(), got["i"].numpy(), got["conv"].numpy()
    assert indices.dtype == np.int64
    # (onnx's reference evaluator picks wrong indices here; the taps themselves are the truth)
    np.testing.assert_array_equal(np.take(conv.ravel(), indices), values)
    windows = np.lib.stride_tricks.sliding_window_view(conv, (2, 2), axis=(2, 3))
    np.testing.assert_array_equal(values, windows.max(axis=(-2, -1)))


def test_kernels_read_from_variables_are_transposed_in_the_graph():
    # Without compiled kernels each Conv kernel is transposed from its variable per call
    # (three here); the per-channel slope and shift only gain leading ones (reshapes).
    ops = _ops(translate(_detector_model()))
    assert ops["Transpose"] == 2 + 3
