"""The spec oracles agree with the operator docs' own examples, and with onnx's reference
evaluator wherever the evaluator follows the spec, so they can stand in for it elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("tensorflow")  # onnx_graphs imports the translator
import spec_oracles
from onnx import helper
from onnx.reference import ReferenceEvaluator
from onnx_graphs import make_model

RNG = np.random.default_rng(7)
DOC_DATA = np.array([[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]], np.float32)


def _evaluate(nodes, feeds, constants=None, opset=21, outputs=1):
    return ReferenceEvaluator(make_model(nodes, feeds, constants, opset, outputs)).run(None, feeds)


@pytest.mark.parametrize("mode, pads, want", [
    ("constant", [0, 2, 0, 0], [[0, 0, 1.0, 1.2], [0, 0, 2.3, 3.4], [0, 0, 4.5, 5.7]]),
    ("reflect", [0, 2, 0, 0], [[1.0, 1.2, 1.0, 1.2], [2.3, 3.4, 2.3, 3.4], [4.5, 5.7, 4.5, 5.7]]),
    ("edge", [0, 2, 0, 0], [[1.0, 1.0, 1.0, 1.2], [2.3, 2.3, 2.3, 3.4], [4.5, 4.5, 4.5, 5.7]]),
    ("wrap", [2, 1, 1, 1], [[3.4, 2.3, 3.4, 2.3], [5.7, 4.5, 5.7, 4.5], [1.2, 1.0, 1.2, 1.0],
                            [3.4, 2.3, 3.4, 2.3], [5.7, 4.5, 5.7, 4.5], [1.2, 1.0, 1.2, 1.0]]),
])
def test_pad_gives_the_docs_examples(mode, pads, want):
    np.testing.assert_array_equal(spec_oracles.pad(DOC_DATA, pads, mode), np.array(want, np.float32))


def test_pad_removes_with_negative_pads():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(spec_oracles.pad(x, [-1, 0, 0, -2], "constant"), x[1:, :2])


def test_conv_transpose_agrees_with_the_evaluator_without_groups():
    x, w, b = RNG.standard_normal((2, 4, 3, 3)), RNG.standard_normal((4, 3, 3, 3)), RNG.standard_normal(3)
    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    attrs = {"strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 0]}
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], **attrs)
    (want,) = _evaluate([node], {"x": x}, {"w": w, "b": b})
    got = spec_oracles.conv_transpose_2d(x, w, b, strides=(2, 1), dilations=(1, 2), pads=(1, 0, 0, 1),
                                         output_padding=(1, 0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_grouped_conv_transpose_is_one_ungrouped_per_group():
    x = RNG.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 2, 2)).astype(np.float32)
    grouped = spec_oracles.conv_transpose_2d(x, w, group=2, strides=(2, 2))
    halves = [spec_oracles.conv_transpose_2d(x[:, 2 * g:2 * g + 2], w[2 * g:2 * g + 2], strides=(2, 2))
              for g in range(2)]
    np.testing.assert_array_equal(grouped, np.concatenate(halves, axis=1))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_same_upper_pooling_agrees_with_the_evaluator(op):
    x = RNG.standard_normal((1, 2, 6, 7)).astype(np.float32)
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    (want,) = _evaluate([node], {"x": x})
    got = spec_oracles.pool_auto_pad(x, op, kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_softmax_before_13_is_softmax_13_on_the_last_axis_and_flattens_otherwise():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    (last,) = _evaluate([helper.make_node("Softmax", ["x"], ["y"], axis=2)], {"x": x}, opset=13)
    np.testing.assert_allclose(spec_oracles.softmax_before_13(x, axis=2), last, rtol=1e-6)
    flat = spec_oracles.softmax_before_13(x, axis=1)
    np.testing.assert_allclose(flat.reshape(2, -1).sum(axis=1), [1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_recurrences_agree_with_the_evaluator_on_what_it_implements(op):
    """Forward direction, default activations, no sequence_lens or clip: where the evaluator
    follows the spec."""
    gates, hidden = {"LSTM": 4, "GRU": 3, "RNN": 1}[op], 3
    x = RNG.standard_normal((4, 2, 5)).astype(np.float32)
    w = (RNG.standard_normal((1, gates * hidden, 5)) * 0.5).astype(np.float32)
    r = (RNG.standard_normal((1, gates * hidden, hidden)) * 0.5).astype(np.float32)
    b = (RNG.standard_normal((1, 2 * gates * hidden)) * 0.1).astype(np.float32)
    node = helper.make_node(op, ["x", "w", "r", "b"], ["y", "y_h"], hidden_size=hidden)
    want = _evaluate([node], {"x": x}, {"w": w, "r": r, "b": b}, opset=14, outputs=2)
    got = spec_oracles.recurrence(op, x, w, r, b, hidden_size=hidden)[:2]
    for a, e in zip(got, want, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
