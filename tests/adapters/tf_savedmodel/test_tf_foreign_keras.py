"""Keras 3 models this project did not build: SavedModel -> ONNX (tf2onnx, checked by
onnxruntime against TensorFlow) and Keras weights onto a user's torch twin."""

from __future__ import annotations

import numpy as np
import pytest
from foreign_graphs import functional_twin, keras_dense_gelu, keras_functional, keras_subclassed

import portability
from portability.errors import ToleranceError, UnsupportedOpError, UsageError

keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
@pytest.mark.parametrize("build, feed_shape", [(keras_functional, (3, 8, 8, 3)), (keras_subclassed, (3, 6))])
def test_keras3_savedmodel_to_onnx_matches_tensorflow(tmp_path, build, feed_shape):
    model = build(tmp_path / "sm")
    result = portability.convert(str(tmp_path / "sm"), str(tmp_path / "model.onnx"))
    assert result.destination_format == "onnx"
    session = _session(tmp_path / "model.onnx")
    (spec,) = session.get_inputs()
    assert not isinstance(spec.shape[0], int) or spec.shape[0] < 1  # the batch stays dynamic
    x = np.random.default_rng(5).standard_normal(feed_shape).astype(np.float32)
    got = session.run(None, {spec.name: x})[0]
    assert float(np.abs(got - np.asarray(model(x, training=False))).max()) <= 1e-5
    if build is keras_functional:
        assert spec.name == "image"


@pytest.mark.slow
def test_gelu_becomes_erfc_and_fails_with_the_reason_leaving_no_file(tmp_path):
    keras_dense_gelu(tmp_path / "sm")
    with pytest.raises(UnsupportedOpError, match=r"onnxruntime cannot load.*Erfc"):
        portability.convert(str(tmp_path / "sm"), str(tmp_path / "gelu.onnx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]


@pytest.mark.slow
def test_a_tf2onnx_file_that_drifts_from_tensorflow_is_refused(tmp_path):
    from portability.adapters.tf_savedmodel import tf2onnx_route

    keras_functional(tmp_path / "a", seed=0)
    keras_functional(tmp_path / "b", seed=1)
    tf2onnx_route.savedmodel_to_onnx(tmp_path / "a", tmp_path / "a.onnx")
    # a's graph judged against b's SavedModel: same signature, other weights
    with pytest.raises(UnsupportedOpError, match=r"drifts from TensorFlow on output 'output_0': max abs diff"):
        tf2onnx_route._check_agreement(_session(tmp_path / "a.onnx"), tmp_path / "b", None, 1e-4, 1e-4)


@pytest.mark.slow
def test_keras_weights_port_onto_a_torch_twin_and_outputs_agree(tmp_path):
    import torch

    model = keras_functional(tmp_path / "sm")
    result = portability.convert(str(tmp_path / "sm"), str(tmp_path / "twin.pt"),
                                 model="foreign_graphs:functional_twin")
    assert any("permuted from Keras' HWC order to CHW" in n for n in result.notes)
    assert any(n.startswith("twin outputs agree with the SavedModel") for n in result.notes)
    twin = functional_twin().eval()
    state = torch.load(tmp_path / "twin.pt", weights_only=True)
    twin.load_state_dict(state)
    assert tuple(state["1.weight"].shape) == (4,)  # PReLU alpha (1, 1, 4) -> (4,)
    x = np.random.default_rng(3).standard_normal((2, 8, 8, 3)).astype(np.float32)
    with torch.no_grad():
        got = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert float(np.abs(got - np.asarray(model(x, training=False))).max()) <= 1e-5


@pytest.mark.slow
def test_a_twin_that_cannot_reproduce_the_keras_model_writes_nothing(tmp_path):
    keras_functional(tmp_path / "sm")
    with pytest.raises(ToleranceError, match="does not reproduce the SavedModel's outputs"):
        portability.convert(str(tmp_path / "sm"), str(tmp_path / "twin.pt"),
                            model="foreign_graphs:functional_twin_wrong_eps")
    assert not (tmp_path / "twin.pt").exists()


def test_ambiguous_layer_match_is_an_error_listing_the_candidates():
    from portability.adapters.tf_savedmodel.keras_mapping import AmbiguousMappingError, map_keras_to_torch

    keras_vars = {"m/dense/kernel": np.zeros((4, 3), np.float32), "m/dense/bias": np.zeros(3, np.float32)}
    twin = {"a.weight": np.ones((7, 2), np.float32), "a.bias": np.ones(7, np.float32),
            "b.weight": np.ones((3, 4), np.float32), "b.bias": np.ones(3, np.float32),
            "c.weight": np.ones((3, 4), np.float32), "c.bias": np.ones(3, np.float32)}
    with pytest.raises(AmbiguousMappingError, match=r"Keras layer 'm/dense' .* fits 2 torch modules .*: b, c"):
        map_keras_to_torch(keras_vars, twin)
    assert issubclass(AmbiguousMappingError, UsageError)


def test_prelu_alpha_and_flatten_order_layouts():
    from portability.adapters.tf_savedmodel.keras_mapping import map_keras_to_torch

    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    alpha = rng.standard_normal((1, 1, 4)).astype(np.float32)
    dense = rng.standard_normal((2 * 2 * 4, 5)).astype(np.float32)  # HWC-ordered rows
    keras_vars = {"m/conv/kernel": kernel, "m/conv/bias": np.zeros(4, np.float32), "m/prelu/alpha": alpha,
                  "m/fc/kernel": dense, "m/fc/bias": np.zeros(5, np.float32)}
    twin = {"0.weight": np.zeros((4, 2, 3, 3), np.float32), "0.bias": np.zeros(4, np.float32),
            "1.weight": np.zeros(4, np.float32), "3.weight": np.zeros((5, 16), np.float32),
            "3.bias": np.zeros(5, np.float32)}
    mapping = map_keras_to_torch(keras_vars, twin)
    out = mapping.checkpoint.tensors
    assert np.array_equal(out["0.weight"], kernel.transpose(3, 2, 0, 1))
    assert np.array_equal(out["1.weight"], alpha.reshape(4))
    # feature (c, h, w) of an NCHW flatten is row (h, w, c) of the Keras kernel
    expected = dense.reshape(2, 2, 4, 5).transpose(2, 0, 1, 3).reshape(16, 5).T
    assert np.array_equal(out["3.weight"], expected)
    assert mapping.flattened == ["3"]
    kept = map_keras_to_torch(keras_vars, twin, flatten="hwc").checkpoint.tensors["3.weight"]
    assert np.array_equal(kept, dense.T)


@pytest.mark.slow
def test_subclassed_model_variables_sharing_a_name_are_all_read(tmp_path):
    # Keras 3 names both Dense kernels of a subclassed model 'two_layer/kernel' in the SavedModel.
    model = keras_subclassed(tmp_path / "sm")
    ckpt = portability.load(str(tmp_path / "sm"))
    prefix = next(iter(ckpt.tensors)).rpartition("/")[0]  # two_layer, or two_layer_N after others
    assert prefix.startswith("two_layer")
    assert list(ckpt.tensors) == [f"{prefix}/kernel", f"{prefix}/bias", f"{prefix}/1/kernel", f"{prefix}/1/bias"]
    assert [np.asarray(v).tobytes() for v in ckpt.tensors.values()] == [v.numpy().tobytes() for v in model.variables]


@pytest.mark.slow
def test_keras_file_goes_through_model_export_then_tf2onnx(tmp_path):
    from portability.adapters.tf_savedmodel.tf2onnx_route import keras_file_to_onnx

    model = keras_functional(tmp_path / "unused_sm")
    model.save(tmp_path / "detector.keras")
    keras_file_to_onnx(tmp_path / "detector.keras", tmp_path / "detector.onnx")
    session = _session(tmp_path / "detector.onnx")
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert float(np.abs(got - np.asarray(model(x, training=False))).max()) <= 1e-5
