"""Axes, sizes and split lengths given as runtime graph inputs, and the opset-11 forms exporters emit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs

X = np.random.default_rng(0).standard_normal((3, 1, 4, 1)).astype(np.float32)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions_with_runtime_axes(op, keepdims):
    onnx_graphs.check([onnx_graphs.node(op, ["x", "axes"], keepdims=keepdims)],
                      {"x": X, "axes": np.array([0, -2], np.int64)}, opset=18, static=True)


def test_empty_runtime_axes_reduce_everything_or_nothing():
    feeds = {"x": X, "axes": np.zeros([0], np.int64)}
    onnx_graphs.check([onnx_graphs.node("ReduceSum", ["x", "axes"])], feeds, opset=13, static=True)
    onnx_graphs.check([onnx_graphs.node("ReduceSum", ["x", "axes"], noop_with_empty_axes=1)], feeds, opset=13)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceL2", "ReduceMax"])
def test_opset_11_axes_attribute(op):
    onnx_graphs.check([onnx_graphs.node(op, ["x"], axes=[1, 2], keepdims=0)], {"x": X}, opset=11)


def test_slice_with_runtime_starts_ends_axes_steps():
    feeds = {"x": X, "s": np.array([3, 0], np.int64), "e": np.array([0, -10], np.int64),
             "a": np.array([2, -4], np.int64), "t": np.array([-2, 1], np.int64)}
    onnx_graphs.check([onnx_graphs.node("Slice", ["x", "s", "e", "a", "t"])], feeds, opset=13, static=True)


def test_squeeze_and_unsqueeze_with_runtime_axes():
    onnx_graphs.check([onnx_graphs.node("Squeeze", ["x", "axes"])], {"x": X, "axes": np.array([-1, 1], np.int64)},
                      static=True)
    onnx_graphs.check([onnx_graphs.node("Unsqueeze", ["x", "axes"])], {"x": X, "axes": np.array([5, 0], np.int64)},
                      static=True)  # the output rank needs the number of axes


def test_opset_11_squeeze_unsqueeze_attributes():
    onnx_graphs.check([onnx_graphs.node("Squeeze", ["x"], axes=[3])], {"x": X}, opset=11, static=True)
    onnx_graphs.check([onnx_graphs.node("Unsqueeze", ["x"], axes=[0, 4])], {"x": X}, opset=11)


def test_split_with_runtime_sizes_attribute_and_num_outputs():
    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    outs = ["a", "b", "c"]
    feeds = {"x": x, "sizes": np.array([2, 0, 5], np.int64)}
    onnx_graphs.check([onnx_graphs.node("Split", ["x", "sizes"], outs)], feeds, opset=13, outputs=3)
    onnx_graphs.check([onnx_graphs.node("Split", ["x"], outs, split=[1, 4, 2])], {"x": x}, opset=11, outputs=3)
    onnx_graphs.check([onnx_graphs.node("Split", ["x"], outs, num_outputs=3)], {"x": x}, opset=18, outputs=3)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_reductions_select_last_index(op, last):
    x = np.array([[1, 3, 3, 0], [2, 2, 0, 0]], np.float32)
    onnx_graphs.check([onnx_graphs.node(op, ["x"], axis=1, select_last_index=last, keepdims=0)], {"x": x})
