"""Activations, normalizations, training-mode ops, casts, and errors that name op, node and reason."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
import onnx_graphs

from portability.adapters.tf_savedmodel.graph import translate

TensorProto = onnx.TensorProto

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) * 3


@pytest.mark.parametrize("op,attrs", [("Selu", {}), ("Selu", {"alpha": 2.0, "gamma": 3.0}), ("HardSwish", {})])
def test_activations(op, attrs):
    onnx_graphs.check([onnx_graphs.node(op, ["x"], **attrs)], {"x": X})


def test_instance_normalization():
    onnx_graphs.check([onnx_graphs.node("InstanceNormalization", ["x", "s", "b"], epsilon=1e-3)], {"x": X},
                      {"s": RNG.standard_normal(3).astype(np.float32), "b": RNG.standard_normal(3).astype(np.float32)})


def test_batch_norm_training_mode_outputs_running_statistics():
    stats = {n: RNG.random(3).astype(np.float32) for n in ("s", "b", "m", "v")}
    nodes = [onnx_graphs.node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                              training_mode=1, momentum=0.8)]
    onnx_graphs.check(nodes, {"x": X}, stats, opset=15, outputs=3, rtol=1e-4)


def _dropout_module(ratio, training, seed=3):
    nodes = [onnx_graphs.node("Dropout", ["x", "r", "t"], ["y", "mask"], seed=seed)]
    constants = {"r": np.array(ratio, np.float32), "t": np.array(training)}
    return translate(onnx_graphs.make_model(nodes, {"x": X}, constants, opset=13, outputs=2))


def test_dropout_training_mode_scales_kept_values_and_returns_the_mask():
    module = _dropout_module(0.25, True)
    out = module.serve(tf.constant(X))
    y, mask = (out[k].numpy() for k in module.output_names)
    assert mask.dtype == bool and 0.6 < mask.mean() < 0.9
    np.testing.assert_allclose(y, np.where(mask, X / 0.75, 0), rtol=1e-6)
    again = module.serve(tf.constant(X))
    np.testing.assert_array_equal(again[module.output_names[1]].numpy(), mask)  # seeded: repeatable


@pytest.mark.parametrize("shape", [(3, 4, 5), (7, 311)])
def test_seeded_training_dropout_draws_the_reference_mask(shape):
    """ONNX's reference draws the mask from numpy's RandomState(seed): the translation
    reproduces it exactly, with ratio and training flag known only at run time."""
    x = RNG.standard_normal(shape).astype(np.float32)
    nodes = [onnx_graphs.node("Dropout", ["x", "r", "t"], ["y", "mask"], seed=11)]
    feeds = {"x": x, "r": np.array(0.3, np.float32), "t": np.array(True)}
    expected, got = onnx_graphs.run_both(nodes, feeds, opset=13, outputs=2)
    for value, want in zip(got, expected, strict=True):
        assert value.dtype == want.dtype
        np.testing.assert_array_equal(value, want)


def test_dropout_inference_mode_is_the_identity_with_an_all_true_mask():
    module = _dropout_module(0.5, False)
    out = module.serve(tf.constant(X))
    y, mask = (out[k].numpy() for k in module.output_names)
    np.testing.assert_array_equal(y, X)
    assert mask.all()


@pytest.mark.parametrize("to,saturate,expected", [
    (TensorProto.FLOAT8E4M3FN, 1, [448, -448, 448, 1.25]),
    (TensorProto.FLOAT8E4M3FN, 0, [np.nan, np.nan, np.nan, 1.25]),
    (TensorProto.FLOAT8E5M2, 1, [57344, -57344, 512, 1.25]),
    (TensorProto.FLOAT8E5M2, 0, [np.inf, -np.inf, 512, 1.25]),
])
def test_float8_casts_saturate_unless_told_not_to(to, saturate, expected):
    x = np.array([np.inf, -1e6, 500, 1.3], np.float32)
    nodes = [onnx_graphs.node("Cast", ["x"], to=to, saturate=saturate)]
    module = translate(onnx_graphs.make_model(nodes, {"x": x}, opset=19))
    got = module.serve(tf.constant(x))[module.output_names[0]].numpy().astype(np.float32)
    np.testing.assert_array_equal(got, np.array(expected, np.float32))


def test_half_precision_mod():
    a, b = np.array([5.5, -5.5, 3], np.float16), np.array([2, 2, -2], np.float16)
    onnx_graphs.check([onnx_graphs.node("Mod", ["a", "b"], fmod=1)], {"a": a, "b": b})
