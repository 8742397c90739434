"""ONNX op semantics of the TF translators, checked against onnx's reference evaluator.

Each case is a one- or two-node graph with dynamic dims; the translated
module runs it in graph mode (tf.function) and must match the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from portability.adapters.tf_savedmodel.graph import translate
from portability.errors import UnsupportedOpError

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
          np.dtype(np.bool_): TensorProto.BOOL}


def _model(nodes, feeds, constants=None, opset=20, n_out=1, static=False):
    """A graph over ``feeds`` (dims symbolic unless ``static``) with constants as initializers."""
    inputs = [helper.make_tensor_value_info(n, _TYPES[v.dtype], list(v.shape) if static else
                                            [f"d{n}{i}" for i in range(v.ndim)])
              for n, v in feeds.items()]
    outs = [o for node in nodes[-1:] for o in node.output][:n_out]
    outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in (constants or {}).items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(nodes, feeds, constants=None, opset=20, n_out=1, static=False):
    model = _model(nodes, feeds, constants, opset, n_out, static)
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = translate(model)(**feeds)
    for want, value in zip(expected, got.values(), strict=True):
        np.testing.assert_allclose(value.numpy(), want, rtol=1e-6, atol=1e-6)
        assert value.numpy().shape == want.shape


X = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("shape", [[0, -1], [-1, 4], [0, 0, 2, 2], [4, 0, -1]])
def test_reshape_zero_copies_dims_and_minus_one_infers(shape):
    _check([helper.make_node("Reshape", ["x", "s"], ["y"])], {"x": X}, {"s": np.array(shape, np.int64)})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [2**63 - 1], [2], [1]),        # INT64_MAX end is clamped
    ([-3], [-1], [-1], [1]),             # negative indices and axes
    ([-1], [-2**63], [2], [-1]),         # reversed to the start
    ([0, 5], [1, 100], [0, 1], [1, 1]),  # start past the end: empty
    ([3], [0], [2], [-2]),               # negative step
])
def test_slice_clamps_like_onnx(starts, ends, axes, steps):
    consts = {"b": np.array(starts, np.int64), "e": np.array(ends, np.int64),
              "a": np.array(axes, np.int64), "t": np.array(steps, np.int64)}
    _check([helper.make_node("Slice", ["x", "b", "e", "a", "t"], ["y"])], {"x": X}, consts)


def test_slice_with_bounds_computed_from_shape():
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=-1),
             helper.make_node("Sub", ["s", "one"], ["e"]),
             helper.make_node("Slice", ["x", "zero", "e", "ax"], ["y"])]
    consts = {"one": np.array([1], np.int64), "zero": np.array([0], np.int64), "ax": np.array([2], np.int64)}
    _check(nodes, {"x": X}, consts)


def test_gather_negative_indices_and_axis():
    _check([helper.make_node("Gather", ["x", "i"], ["y"], axis=-1)], {"x": X},
           {"i": np.array([[-1, 0], [2, -4]], np.int64)})


def test_gather_elements_and_gather_nd_batch_dims():
    idx = np.array([[[0, -1, 2, 1]], [[1, 1, 0, -3]]], np.int64)
    _check([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)], {"x": X}, {"i": idx})
    nd = np.array([[1, -1], [0, 2]], np.int64)
    _check([helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1)], {"x": X}, {"i": nd})


@pytest.mark.parametrize("axes", [[0], [-1], [1, -1]])
def test_unsqueeze_then_squeeze_negative_axes(axes):
    nodes = [helper.make_node("Unsqueeze", ["x", "a"], ["u"]), helper.make_node("Squeeze", ["u", "a"], ["y"])]
    _check(nodes[:1], {"x": X}, {"a": np.array(axes, np.int64)})
    _check(nodes, {"x": X}, {"a": np.array(axes, np.int64)})


def test_split_num_outputs_uneven_last_chunk_smaller():
    node = helper.make_node("Split", ["x"], ["a", "b"], axis=2, num_outputs=2)
    model = _model([node], {"x": X[:, :, :3]}, n_out=2)
    feeds = {"x": np.ascontiguousarray(X[:, :, :3])}
    translated = translate(model)
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = list(translated(**feeds).values())
    assert [g.shape for g in got] == [e.shape for e in expected] == [(2, 3, 2), (2, 3, 1)]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("opset,axis", [(11, 1), (13, 1), (13, -1)])
def test_softmax_opset_semantics(opset, axis):
    # Before opset 13 Softmax flattens from `axis` on (onnx's reference evaluator
    # applies the opset-13 rule to both, so the spec is spelled out here).
    model = _model([helper.make_node("Softmax", ["x"], ["y"], axis=axis)], {"x": X}, opset=opset)
    got = translate(model)(x=X)["y"].numpy()
    if opset < 13:
        want = _softmax(X.reshape(int(np.prod(X.shape[:axis])), -1), 1).reshape(X.shape)
    else:
        want = _softmax(X, axis)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_expand_is_bidirectional_broadcast():
    _check([helper.make_node("Expand", ["x", "s"], ["y"])], {"x": X[:, :1, :]},
           {"s": np.array([3, 1], np.int64)})


@pytest.mark.parametrize("upper,k", [(1, 0), (0, 0), (1, 1), (0, -1)])
def test_trilu(upper, k):
    _check([helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)], {"x": X}, {"k": np.array(k, np.int64)})


@pytest.mark.parametrize("include", [0, 1])
def test_average_pool_padding_count(include):
    img = np.random.default_rng(1).standard_normal((1, 2, 5, 5)).astype(np.float32)
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 1, 1], count_include_pad=include)
    _check([node], {"x": img})


def test_max_pool_ceil_mode_and_conv_groups():
    img = np.random.default_rng(2).standard_normal((2, 4, 7, 7)).astype(np.float32)
    _check([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
           {"x": img}, static=True)
    w = np.random.default_rng(3).standard_normal((6, 2, 3, 3)).astype(np.float32)
    _check([helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[1, 0, 1, 2], strides=[2, 1])],
           {"x": img}, {"w": w})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_and_layer_norm(approximate):
    nodes = [helper.make_node("Gelu", ["x"], ["g"], approximate=approximate),
             helper.make_node("LayerNormalization", ["g", "w", "b"], ["y"], axis=-1, epsilon=1e-5)]
    _check(nodes, {"x": X}, {"w": np.linspace(0.5, 2, 4, dtype=np.float32), "b": np.ones(4, np.float32)})


def test_integer_div_truncates_and_where_broadcasts():
    a = np.array([[-7, 7], [5, -5]], np.int64)
    _check([helper.make_node("Div", ["a", "b"], ["y"])], {"a": a}, {"b": np.array([2], np.int64)})
    nodes = [helper.make_node("Less", ["x", "z"], ["c"]), helper.make_node("Where", ["c", "z", "x"], ["y"])]
    _check(nodes, {"x": X}, {"z": np.zeros((1, 4), np.float32)})


def test_unknown_op_names_op_and_node():
    node = helper.make_node("Hardmax", ["x"], ["y"], name="head/hardmax_3")
    with pytest.raises(UnsupportedOpError, match=r"Hardmax \(node 'head/hardmax_3'\) has no TensorFlow"):
        translate(_model([node], {"x": X}))


def test_axes_computed_at_run_time_are_honoured():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Slice", ["s", "z", "o"], ["a"]),
             helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="unsq")]
    consts = {"z": np.array([0], np.int64), "o": np.array([1], np.int64)}
    _check(nodes, {"x": X}, consts)


def test_runtime_axes_of_unknown_count_are_refused_with_node_name():
    nodes = [helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")]
    feeds = {"x": X, "axes": np.array([0], np.int64)}
    with pytest.raises(UnsupportedOpError, match="Unsqueeze .node 'unsq'.: axes of unknown length"):
        translate(_model(nodes, feeds))


@pytest.mark.parametrize("dtype,tol", [(TensorProto.FLOAT16, 2e-2), (TensorProto.BFLOAT16, 1e-1)])
def test_half_precision_graph_runs_on_cpu(dtype, tol):
    # Gemm + Gelu + LayerNormalization computed in fp16 / bf16 (TF CPU has these
    # kernels), compared with the same graph in fp32.
    rng = np.random.default_rng(4)
    consts = {"w": rng.standard_normal((4, 6)).astype(np.float32) / 2,
              "g": np.ones(6, np.float32), "b": np.zeros(6, np.float32)}

    def nodes(to):
        cast = [helper.make_node("Cast", [n], [n + "h"], to=to) for n in ("x", "w", "g", "b")]
        return cast + [helper.make_node("Gemm", ["xh", "wh"], ["m"]),
                       helper.make_node("Gelu", ["m"], ["a"]),
                       helper.make_node("LayerNormalization", ["a", "gh", "bh"], ["n"]),
                       helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)]
    feed = {"x": rng.standard_normal((3, 4)).astype(np.float32)}
    reference = translate(_model(nodes(TensorProto.FLOAT), feed, consts))(**feed)["y"].numpy()
    half = translate(_model(nodes(dtype), feed, consts))(**feed)["y"].numpy()
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, reference, atol=tol)


def test_bindings_by_name_prefix_transpose_and_folded():
    from portability.adapters.tf_savedmodel.bindings import Binding, plan_bindings

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    ones = np.ones(3, np.float32)
    tensors = {"fc.weight": w, "ln1.weight": ones, "ln2.weight": ones.copy(), "conv.weight": w + 1}
    initializers = {"model.fc.weight": w, "val_7": np.ascontiguousarray(w.T), "ln1.weight": ones,
                    "val_9": ones, "conv.weight": (w + 1) * 0.5, "shape": np.array([2, 3], np.int64)}
    plan = plan_bindings(initializers, tensors, aliases={})
    assert plan.bound["model.fc.weight"] == Binding("fc.weight")          # module prefix
    assert plan.bound["val_7"] == Binding("fc.weight", transpose=True)   # pre-transposed copy
    assert plan.bound["ln1.weight"] == Binding("ln1.weight")
    # Equal values under two names cannot be told apart: kept as a constant.
    assert "val_9" in plan.constants
    # Same name, other values (e.g. BatchNorm folded into the Conv): reported as frozen.
    assert plan.frozen == ["conv.weight"] and "conv.weight" in plan.constants
    assert "shape" in plan.constants
