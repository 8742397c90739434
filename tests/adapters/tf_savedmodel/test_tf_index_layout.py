"""Scatter*, TopK, NonZero, CumSum, Pad, DepthToSpace and SpaceToDepth translations."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs
import spec_oracles

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_reductions(reduction):
    indices = np.array([[0, 1], [2, -1], [0, 1]] if reduction != "none" else [[0, 1], [2, -1]], np.int64)
    updates = RNG.standard_normal((len(indices), 5)).astype(np.float32)
    onnx_graphs.check([onnx_graphs.node("ScatterND", ["x", "i", "u"], reduction=reduction)],
                      {"x": X, "i": indices, "u": updates})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    indices = np.array([[[0, 2, 1, -1, 0]]] if axis == 0 else [[[1, 4, -1]]], np.int64)
    updates = RNG.standard_normal(indices.shape).astype(np.float32)
    onnx_graphs.check([onnx_graphs.node("ScatterElements", ["x", "i", "u"], axis=axis, reduction=reduction)],
                      {"x": X, "i": indices, "u": updates})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_top_k_with_ties_keeps_index_order(largest, axis):
    x = np.round(X * 2) / 2  # many ties
    onnx_graphs.check([onnx_graphs.node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)],
                      {"x": x, "k": np.array([2], np.int64)}, outputs=2)


def test_non_zero_row_major():
    x = (X > 0.3).astype(np.int64) * 3
    onnx_graphs.check([onnx_graphs.node("NonZero", ["x"])], {"x": x})


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cum_sum_with_runtime_axis(exclusive, reverse):
    onnx_graphs.check([onnx_graphs.node("CumSum", ["x", "axis"], exclusive=exclusive, reverse=reverse)],
                      {"x": X, "axis": np.array(-2, np.int64)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("runtime", [False, True])
def test_pad_modes_with_constant_or_runtime_pads(mode, runtime):
    pads = np.array([0, 2, 1, 1, -1, 3], np.int64)  # a negative pad crops
    feeds = {"x": X}
    constants = {"value": np.array(1.5, np.float32)}
    (feeds if runtime else constants)["pads"] = pads
    # onnx's evaluator rejects negative pads: the spec's definition is the reference.
    onnx_graphs.check([onnx_graphs.node("Pad", ["x", "pads", "value"], mode=mode)], feeds, constants,
                      expected=[spec_oracles.pad(X, pads, mode, np.float32(1.5))])


def test_pad_with_axes_input_and_opset_2_attributes():
    onnx_graphs.check([onnx_graphs.node("Pad", ["x", "pads", "", "axes"])],
                      {"x": X, "axes": np.array([-1, 0], np.int64)}, {"pads": np.array([1, 2, 0, 1], np.int64)})
    onnx_graphs.check([onnx_graphs.node("Pad", ["x"], pads=[1, 0, 0, 0, 2, 1], mode="edge")], {"x": X}, opset=10)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(mode):
    x = RNG.standard_normal((2, 8, 3, 2)).astype(np.float32)
    onnx_graphs.check([onnx_graphs.node("DepthToSpace", ["x"], blocksize=2, mode=mode)], {"x": x})
    y = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
    onnx_graphs.check([onnx_graphs.node("SpaceToDepth", ["x"], blocksize=2)], {"x": y})
