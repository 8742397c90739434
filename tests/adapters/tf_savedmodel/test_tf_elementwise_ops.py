"""The simple ops of the TF translator, one case each, against onnx's reference evaluator.

Elementwise math, comparisons and logic, shape helpers, reductions over sets of
inputs, and the sequence ops that real exporters emit for ``Split`` + ``Concat``.
Each case is a one-node graph with dynamic dims (``onnx_graphs.check``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tensorflow")
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx_graphs import check, make_model, node

from portability.adapters.tf_savedmodel.graph import translate

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
Y = RNG.standard_normal((2, 3, 4)).astype(np.float32)
POS = (np.abs(X) + 0.5).astype(np.float32)
BX = X > 0
BY = Y > 0
INTS = RNG.integers(-8, 8, (2, 3, 4)).astype(np.int64)
POS_INTS = RNG.integers(1, 8, (2, 3, 4)).astype(np.int64)

UNARY = {
    "Abs": X, "Ceil": X * 3, "Cos": X, "Erf": X, "Exp": X, "Floor": X * 3, "Log": POS, "Neg": X,
    "Reciprocal": POS, "Round": np.array([0.5, 1.5, 2.5, -0.5, 1.2, -2.7], np.float32), "Sign": X,
    "Sin": X, "Softplus": X, "Sqrt": POS, "Tanh": X, "Elu": X, "PRelu": None, "Not": BX,
    "IsNaN": np.array([1.0, np.nan, np.inf, -np.inf], np.float32),
    "IsInf": np.array([1.0, np.nan, np.inf, -np.inf], np.float32),
}


@pytest.mark.parametrize("op", [op for op, value in UNARY.items() if value is not None])
def test_unary(op):
    check([node(op, ["x"])], {"x": UNARY[op]})


@pytest.mark.parametrize("op,a,b", [
    ("Add", X, Y), ("Mul", X, Y), ("Pow", POS, Y), ("Equal", INTS, POS_INTS), ("Greater", X, Y),
    ("GreaterOrEqual", INTS, POS_INTS), ("LessOrEqual", INTS, POS_INTS), ("And", BX, BY), ("Or", BX, BY),
    ("Xor", BX, BY), ("BitwiseAnd", INTS, POS_INTS),
])
def test_binary(op, a, b):
    check([node(op, ["a", "b"])], {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Max", "Min", "Mean", "Sum"])
def test_variadic(op):
    check([node(op, ["a", "b", "c"])], {"a": X, "b": Y, "c": X * 0.5})


def test_prelu_slope_broadcasts_per_channel():
    check([node("PRelu", ["x", "slope"])], {"x": X}, {"slope": np.array([[0.1], [0.2], [0.3]], np.float32)})


def test_concat_transpose_flatten_tile():
    check([node("Concat", ["a", "b"], axis=1)], {"a": X, "b": Y})
    check([node("Transpose", ["x"], perm=[2, 0, 1])], {"x": X})
    check([node("Flatten", ["x"], axis=2)], {"x": X})
    check([node("Tile", ["x", "r"])], {"x": X}, {"r": np.array([1, 2, 3], np.int64)})


def test_log_softmax_einsum_and_global_pools():
    check([node("LogSoftmax", ["x"], axis=-1)], {"x": X})
    check([node("Einsum", ["a", "b"], equation="bij,bkj->bik")], {"a": X, "b": Y})
    image = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    check([node("GlobalAveragePool", ["x"])], {"x": image})
    check([node("GlobalMaxPool", ["x"])], {"x": image})


def test_constants_range_size_and_eye_like():
    check([node("Constant", [], value=helper.make_tensor("v", TensorProto.FLOAT, [2], [1.5, -2.0])),
           node("Add", ["x", "y"], ["z"])], {"x": np.ones((3, 2), np.float32)})
    check([node("ConstantOfShape", ["s"], value=helper.make_tensor("v", TensorProto.INT64, [1], [7]))],
          {"s": np.array([2, 3], np.int64)})
    check([node("Range", ["a", "b", "c"])], {}, {"a": np.array(1.0, np.float32), "b": np.array(7.0, np.float32),
                                               "c": np.array(1.5, np.float32)})
    check([node("Size", ["x"])], {"x": X})
    check([node("EyeLike", ["x"], k=1)], {"x": np.zeros((3, 4), np.float32)})


def test_cast_like_takes_the_second_inputs_type():
    check([node("CastLike", ["x", "t"])], {"x": X * 10, "t": np.zeros(1, np.int64)})


def test_split_to_sequence_then_sequence_at():
    nodes = [node("SplitToSequence", ["x"], ["seq"], axis=1, keepdims=1),
             node("SequenceAt", ["seq", "i"], ["y"])]
    check(nodes, {"x": X}, {"i": np.array(-1, np.int64)}, static=True)


def test_legacy_scatter_and_upsample():
    data = np.zeros((3, 3), np.float32)
    indices = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    updates = np.array([[1.0, 1.1, 1.2], [2.0, 2.1, 2.2]], np.float32)
    feeds = {"d": data, "i": indices, "u": updates}
    # onnx's evaluator has no legacy Scatter: it is ScatterElements under its opset-9 name.
    reference = make_model([node("ScatterElements", ["d", "i", "u"], axis=0)], feeds)
    expected = ReferenceEvaluator(reference).run(None, feeds)
    module = translate(make_model([node("Scatter", ["d", "i", "u"], axis=0)], feeds, opset=10))
    np.testing.assert_array_equal(module.serve(*feeds.values())[module.output_names[0]].numpy(), expected[0])
    image = RNG.standard_normal((1, 1, 2, 2)).astype(np.float32)
    check([node("Upsample", ["x", "s"], mode="nearest")], {"x": image},
          {"s": np.array([1, 1, 2, 3], np.float32)}, opset=9)
