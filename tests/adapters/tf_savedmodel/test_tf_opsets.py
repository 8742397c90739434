"""The same ops in the forms opsets 11 to 21 define (attributes that became inputs, new attributes)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs
import spec_oracles

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32)
I64 = np.int64
OPSETS = range(11, 22)


def _reduce(opset):
    if opset >= 18:
        return [onnx_graphs.node("ReduceMean", ["x", "axes"], keepdims=0)], {"axes": np.array([1, -1], I64)}
    return [onnx_graphs.node("ReduceMean", ["x"], axes=[1, -1], keepdims=0)], {}


def _reduce_sum(opset):
    if opset >= 13:
        return [onnx_graphs.node("ReduceSum", ["x", "axes"])], {"axes": np.array([2], I64)}
    return [onnx_graphs.node("ReduceSum", ["x"], axes=[2])], {}


def _squeeze(opset):
    nodes = [onnx_graphs.node("Unsqueeze", ["x", "a"] if opset >= 13 else ["x"], ["u"],
                              **({} if opset >= 13 else {"axes": [0]})),
             onnx_graphs.node("Squeeze", ["u", "a"] if opset >= 13 else ["u"], ["y"],
                              **({} if opset >= 13 else {"axes": [0]}))]
    return nodes, ({"a": np.array([0], I64)} if opset >= 13 else {})


def _split(opset):
    outs = ["a", "b"]
    if opset >= 13:
        return [onnx_graphs.node("Split", ["x", "s"], outs, axis=2)], {"s": np.array([1, 3], I64)}
    return [onnx_graphs.node("Split", ["x"], outs, axis=2, split=[1, 3])], {}


def _pad(opset):
    return [onnx_graphs.node("Pad", ["x", "p", "v"], mode="reflect")], {
        "p": np.array([0, 0, 1, 2, 0, 0, 2, 1], I64), "v": np.array(0.0, np.float32)}


def _resize(opset):
    roi, scales = np.zeros([0], np.float32), np.array([1, 1, 1.5, 0.75], np.float32)
    return [onnx_graphs.node("Resize", ["x", "roi", "scales"], mode="linear")], {"roi": roi, "scales": scales}


def _clip(opset):
    return [onnx_graphs.node("Clip", ["x", "lo", "hi"])], {"lo": np.array(-0.5, np.float32),
                                                         "hi": np.array(0.7, np.float32)}


def _softmax(opset):
    return [onnx_graphs.node("Softmax", ["x"], axis=1)], {}


def _topk(opset):
    return [onnx_graphs.node("TopK", ["x", "k"], ["v", "i"], axis=1)], {"k": np.array([2], I64)}


def _cumsum(opset):
    return [onnx_graphs.node("CumSum", ["x", "ax"], reverse=1)], {"ax": np.array(3, I64)}


def _scatter(opset):
    idx = np.zeros((2, 3, 1, 4), I64)
    return [onnx_graphs.node("ScatterElements", ["x", "i", "u"], axis=2)], {
        "i": idx, "u": np.ones((2, 3, 1, 4), np.float32)}


def _argmax(opset):
    attrs = {"axis": 3, "keepdims": 0}
    if opset >= 12:
        attrs["select_last_index"] = 1
    return [onnx_graphs.node("ArgMax", ["x"], **attrs)], {}


def _conv_transpose(opset):
    return [onnx_graphs.node("ConvTranspose", ["x", "w"], strides=[2, 2], output_padding=[1, 0])], {
        "w": RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)}


def _maxpool(opset):
    return [onnx_graphs.node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                             auto_pad="NOTSET", pads=[1, 1, 0, 0])], {}


BUILDERS = {f.__name__.strip("_"): f for f in (_reduce, _reduce_sum, _squeeze, _split, _pad, _resize, _clip,
                                              _softmax, _topk, _cumsum, _scatter, _argmax, _conv_transpose,
                                              _maxpool)}


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_op_at_opset(name, opset):
    nodes, constants = BUILDERS[name](opset)
    outputs = len([o for o in nodes[-1].output if o])
    # onnx's evaluator gives Softmax-11 the axis-only semantics of opset 13; opsets before 13
    # define a softmax over the input flattened to 2-D at the axis.
    expected = [spec_oracles.softmax_before_13(X, axis=1)] if name == "softmax" and opset < 13 else None
    onnx_graphs.check(nodes, {"x": X}, constants, opset=opset, outputs=outputs, rtol=1e-4, expected=expected)
