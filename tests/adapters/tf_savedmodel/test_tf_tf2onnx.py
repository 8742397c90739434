"""The optional TF-native -> ONNX route (tf2onnx), judged by onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

from portability.adapters.tf_savedmodel.tf2onnx_route import savedmodel_to_onnx
from portability.errors import UnsupportedOpError


def _dense_savedmodel(path, activation):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation=activation),
                              keras.layers.Dense(2)])
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model


@pytest.mark.slow
def test_relu_model_converts_and_matches_keras(tmp_path):
    model = _dense_savedmodel(tmp_path / "relu", "relu")
    out = savedmodel_to_onnx(tmp_path / "relu", tmp_path / "relu.onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert float(np.abs(got - model(x).numpy()).max()) <= 1e-5


@pytest.mark.slow
def test_gelu_model_invalid_onnx_is_reported_and_removed(tmp_path):
    # tf2onnx 1.17 exits 0 on a Keras 3 GELU but emits Erfc, which onnxruntime cannot load.
    _dense_savedmodel(tmp_path / "gelu", "gelu")
    with pytest.raises(UnsupportedOpError, match="tf2onnx reported success but onnxruntime cannot load"):
        savedmodel_to_onnx(tmp_path / "gelu", tmp_path / "gelu.onnx")
    assert not (tmp_path / "gelu.onnx").exists()
