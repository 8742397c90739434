"""Conv, ConvTranspose, MaxPool and AveragePool: 1-D to 3-D, auto_pad, dilations, ceil_mode, Indices."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs
import spec_oracles

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
@pytest.mark.parametrize("spatial", [1, 2, 3])
def test_conv_auto_pad_in_1_to_3_d(auto_pad, spatial):
    x, w = _x(1, 4, *[7] * spatial), _x(6, 2, *[3] * spatial)
    attrs = {"auto_pad": auto_pad, "strides": [2] * spatial, "group": 2}
    if auto_pad == "NOTSET":
        attrs["pads"] = [1] * spatial + [0] * spatial
    onnx_graphs.check([onnx_graphs.node("Conv", ["x", "w", "b"], **attrs)], {"x": x},
                      {"w": w, "b": _x(6)}, rtol=1e-4, atol=1e-5)


def test_conv_dilated_and_strided():
    onnx_graphs.check([onnx_graphs.node("Conv", ["x", "w"], strides=[2, 3], dilations=[2, 1], pads=[1, 2, 0, 1])],
                      {"x": _x(2, 3, 9, 10)}, {"w": _x(4, 3, 3, 2)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    {"strides": [2, 2], "pads": [1, 0, 1, 0], "output_padding": [1, 1]},
    {"strides": [3, 2], "output_shape": [10, 8]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
    {"strides": [1, 2], "dilations": [2, 2], "group": 2},
])
def test_conv_transpose(attrs):
    x, w, b = _x(2, 4, 3, 3), _x(4, 3, 3, 3), _x(3 * attrs.get("group", 1))
    # onnx's evaluator mishandles grouped ConvTranspose: the spec's definition is the reference there.
    expected = [spec_oracles.conv_transpose_2d(x, w, b, **attrs)] if "group" in attrs else None
    onnx_graphs.check([onnx_graphs.node("ConvTranspose", ["x", "w", "b"], **attrs)], {"x": x},
                      {"w": w, "b": b}, rtol=1e-4, atol=1e-5, expected=expected)


def test_conv_transpose_1d_and_3d():
    onnx_graphs.check([onnx_graphs.node("ConvTranspose", ["x", "w"], strides=[2])], {"x": _x(1, 2, 5)},
                      {"w": _x(2, 3, 3)}, rtol=1e-4, atol=1e-5)
    onnx_graphs.check([onnx_graphs.node("ConvTranspose", ["x", "w"], strides=[1, 2, 2], pads=[0, 1, 1, 0, 0, 1])],
                      {"x": _x(1, 2, 3, 3, 3)}, {"w": _x(2, 2, 2, 3, 3)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_LOWER", "strides": [2, 1]},
    {"kernel_shape": [3, 2], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 0, 1, 0]},
])
def test_2d_pooling_edges(op, attrs):
    if op == "AveragePool" and "pads" in attrs:
        attrs = {**attrs, "count_include_pad": 1}
    x = _x(1, 2, 6, 7)
    # onnx's evaluator pads strided SAME_LOWER pooling wrongly: the spec's definition is the
    # reference for auto_pad.
    expected = [spec_oracles.pool_auto_pad(x, op, **attrs)] if "auto_pad" in attrs else None
    onnx_graphs.check([onnx_graphs.node(op, ["x"], **attrs)], {"x": x}, expected=expected)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_3d_and_1d_pooling(op):
    onnx_graphs.check([onnx_graphs.node(op, ["x"], kernel_shape=[2, 3, 2], strides=[1, 2, 2], pads=[0, 1, 0, 1, 1, 0])],
                      {"x": _x(1, 2, 4, 5, 6)})
    onnx_graphs.check([onnx_graphs.node(op, ["x"], kernel_shape=[3], strides=[2], ceil_mode=1)], {"x": _x(2, 3, 8)})


@pytest.mark.parametrize("storage_order", [0, 1])
def test_max_pool_indices(storage_order):
    nodes = [onnx_graphs.node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 1, 0, 0],
                              storage_order=storage_order)]
    onnx_graphs.check(nodes, {"x": _x(2, 3, 5, 6)}, outputs=2)
