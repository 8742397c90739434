"""A BatchNormalization after a Conv folds into its kernel and bias when the serving
graph compiles its weights in; the outputs stay onnxruntime's."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tensorflow")
onnx_graphs = pytest.importorskip("onnx_graphs")

from portability.adapters.tf_savedmodel.batchnorm_folding import fold_conv_batchnorm  # noqa: E402
from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402

RNG = np.random.default_rng(11)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _statistics(channels, prefix="bn"):
    return {f"{prefix}_scale": _x(channels), f"{prefix}_shift": _x(channels), f"{prefix}_mean": _x(channels),
            f"{prefix}_var": np.abs(_x(channels)) + 0.1}


def _bn(x, y, prefix="bn", **attrs):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in ("scale", "shift", "mean", "var")],
                            [y], name=f"bn_{y}", epsilon=1e-3, **attrs)


def _model(nodes, constants, outputs=("y",)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 9, 11])
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    inits = [numpy_helper.from_array(v, k) for k, v in constants.items()]
    return helper.make_model(helper.make_graph(nodes, "g", [x], outs, inits),
                             opset_imports=[helper.make_opsetid("", 17)])


def _fold(model, known):
    return fold_conv_batchnorm(model.graph.node, {o.name for o in model.graph.output}, known)


def _ops(function):
    graph = function.get_concrete_function().graph
    return collections.Counter(op.type for op in graph.get_operations())


def _vgg_block():
    """Conv (biased) -> BN -> Relu, then a depthwise Conv without bias -> BN."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             _bn("c1", "n1", "bn1"),
             helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", group=6, pads=[1, 1, 1, 1]),
             _bn("c2", "y", "bn2")]
    constants = {"w1": _x(6, 4, 3, 3), "b1": _x(6), **_statistics(6, "bn1"), "w2": _x(6, 1, 3, 3),
                 **_statistics(6, "bn2")}
    return nodes, constants


def _float64_block(x, c):
    """The block computed in float64 by torch, unfolded: the reference both graphs approach."""
    import torch
    from torch.nn import functional as F

    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in c.items()}

    def bn(y, p):
        return F.batch_norm(y, t[f"{p}_mean"], t[f"{p}_var"], t[f"{p}_scale"], t[f"{p}_shift"],
                            eps=float(np.float32(1e-3)))
    y = torch.relu(bn(F.conv2d(torch.from_numpy(x.astype(np.float64)), t["w1"], t["b1"], padding=1), "bn1"))
    return bn(F.conv2d(y, t["w2"], padding=1, groups=6), "bn2").numpy()


def test_folded_graph_is_as_close_to_float64_as_onnxruntime_and_the_variables_graph():
    import onnxruntime

    nodes, constants = _vgg_block()
    model = _model(nodes, constants)
    feed = {"x": _x(2, 4, 9, 11)}
    truth = _float64_block(feed["x"], constants)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_error = np.abs(session.run(None, feed)[0] - truth).max()  # onnxruntime folds too, in float32
    module = translate(model, compile_kernels=True)
    ops = _ops(module.serve)
    assert ops["FusedBatchNormV3"] == 0 and ops["Conv2D"] == 1 and ops["DepthwiseConv2dNative"] == 1
    assert ops["BiasAdd"] == 2  # each Conv carries its folded bias, so Grappler fuses it (and the Relu)
    served_error = np.abs(module.serve(feed["x"])["y"].numpy() - truth).max()
    variables_error = np.abs(module.serve_from_variables(feed["x"])["y"].numpy() - truth).max()
    scale = np.abs(truth).max()
    assert served_error <= 2 * max(ort_error, variables_error) and served_error < 1e-5 * scale, \
        (served_error, ort_error, variables_error, scale)
    assert _ops(module.serve_from_variables)["FusedBatchNormV3"] == 2
    for init in model.graph.initializer:  # the variables keep the checkpoint's values, bit for bit
        assert module.weights[init.name].numpy().tobytes() == numpy_helper.to_array(init).tobytes()


def test_folded_values_follow_the_batchnorm_formula_in_float64():
    nodes, constants = _vgg_block()
    folded_nodes, values = _fold(_model(nodes, constants), constants)
    assert [n.op_type for n in folded_nodes] == ["Conv", "Relu", "Conv"]
    assert list(folded_nodes[0].output) == ["n1"] and list(folded_nodes[2].output) == ["y"]
    kernel, bias = (values[name] for name in folded_nodes[0].input[1:3])
    factor = constants["bn1_scale"].astype(np.float64) / np.sqrt(constants["bn1_var"].astype(np.float64)
                                                                 + np.float64(np.float32(1e-3)))
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    np.testing.assert_array_equal(kernel, (constants["w1"] * factor[:, None, None, None]).astype(np.float32))
    expected_bias = (constants["b1"].astype(np.float64) - constants["bn1_mean"]) * factor + constants["bn1_shift"]
    np.testing.assert_array_equal(bias, expected_bias.astype(np.float32))
    _, second_bias = (values[name] for name in folded_nodes[2].input[1:3])  # no bias before: one made
    assert second_bias.shape == (6,)


def test_pairs_that_must_stay_apart_are_left_alone():
    nodes, constants = _vgg_block()
    graph = _model(nodes, constants, outputs=("y", "c1")).graph  # the Conv's output is also a graph output
    folded_nodes, _ = fold_conv_batchnorm(graph.node, {o.name for o in graph.output}, constants)
    assert [n.op_type for n in folded_nodes] == ["Conv", "BatchNormalization", "Relu", "Conv"]
    unknown = {k: v for k, v in constants.items() if k != "bn2_var"}  # a statistic read at run time
    assert [n.op_type for n in _fold(_model(nodes, constants), unknown)[0]] == \
        ["Conv", "Relu", "Conv", "BatchNormalization"]
    training = [*nodes[:4], _bn("c2", "y", "bn2", training_mode=1)]
    assert [n.op_type for n in _fold(_model(training, constants), constants)[0]] == \
        ["Conv", "Relu", "Conv", "BatchNormalization"]
    shared = [*nodes, helper.make_node("Add", ["c2", "y"], ["z"], name="add")]  # c2 read twice
    assert [n.op_type for n in _fold(_model(shared, constants, ("z",)), constants)[0]] == \
        ["Conv", "Relu", "Conv", "BatchNormalization", "Add"]
