"""Keras-native SavedModel -> PyTorch twin: names, layouts, unmapped variables, outputs.

A small Keras CNN (Conv2D, BatchNormalization, Dense) is exported with
``model.export``; its variables are read without running the graph and ported
onto a hand-written torch twin, whose outputs must match Keras within 1e-5.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from portability.adapters import tf_savedmodel
from portability.adapters.tf_savedmodel.keras_mapping import BN_EPSILON_NOTE, map_keras_to_torch
from portability.adapters.torch.numpy_bridge import numpy_to_tensor


class TorchTwin(torch.nn.Module):
    """The PyTorch twin of the Keras model below (channels-first, BN eps as Keras')."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.bn = torch.nn.BatchNorm2d(6, eps=1e-3)
        self.head = torch.nn.Linear(6, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.head(y.mean(dim=(2, 3)))


def _keras_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(6, 3),
                              keras.layers.BatchNormalization(), keras.layers.ReLU(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)])
    bn = model.layers[1]
    rng = np.random.default_rng(0)
    # Non-trivial statistics, so a swapped mean/variance or epsilon would show.
    bn.moving_mean.assign(rng.standard_normal(6).astype(np.float32))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 6).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def keras_export(tmp_path_factory):
    model = _keras_model()
    path = tmp_path_factory.mktemp("keras") / "saved"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model, path


@pytest.mark.slow
def test_keras_variables_read_without_running_under_keras_names(keras_export):
    model, path = keras_export
    ckpt = tf_savedmodel.read(path)
    assert list(ckpt.tensors) == [v.path for v in model.variables]
    for variable in model.variables:
        assert np.asarray(ckpt.tensors[variable.path]).tobytes() == variable.numpy().tobytes()


def test_port_to_torch_twin_matches_keras_outputs(keras_export):
    model, path = keras_export
    twin = TorchTwin().eval()
    state = {k: v.numpy() for k, v in twin.state_dict().items()}
    mapping = map_keras_to_torch(tf_savedmodel.read(path).tensors, state)
    assert mapping.unmapped == []
    assert mapping.missing == ["bn.num_batches_tracked"]
    assert re.fullmatch(r"sequential(_\d+)?/conv2d(_\d+)?/kernel", mapping.pairs["conv.weight"])
    assert re.fullmatch(r"sequential(_\d+)?/batch_normalization(_\d+)?/moving_variance",
                        mapping.pairs["bn.running_var"])
    assert BN_EPSILON_NOTE in mapping.notes
    # Keras numbers layer names per process (dense, dense_1...): look the name up.
    assert mapping.pairs["head.weight"].endswith("/kernel")
    kernel = np.asarray(tf_savedmodel.read(path).tensors[mapping.pairs["head.weight"]])
    assert np.array_equal(mapping.checkpoint.tensors["head.weight"], kernel.T)
    twin.load_state_dict({k: numpy_to_tensor(v) for k, v in mapping.checkpoint.tensors.items()})
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype(np.float32)
    want = model(x, training=False).numpy()
    with torch.no_grad():
        got = twin(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert float(np.abs(got - want).max()) <= 1e-5


def test_unmatched_keras_layers_are_reported():
    keras_vars = {"m/dense/kernel": np.zeros((6, 4), np.float32), "m/dense/bias": np.zeros(4, np.float32),
                  "m/mystery/alpha": np.zeros(3, np.float32)}
    twin = {"head.weight": np.ones((4, 6), np.float32), "head.bias": np.ones(4, np.float32),
            "extra.weight": np.ones((2, 2), np.float32)}
    mapping = map_keras_to_torch(keras_vars, twin)
    assert mapping.unmapped == ["m/mystery/alpha"]
    assert mapping.missing == ["extra.weight"]
    assert np.array_equal(mapping.checkpoint.tensors["extra.weight"], twin["extra.weight"])


@pytest.mark.slow
def test_zoo_keras_cnn_ports_to_its_twin(tmp_path):
    from portability.fixtures import get_fixture

    fixture = get_fixture("keras-cnn")
    model = fixture.build()
    rng = np.random.default_rng(2)
    for layer in (model.get_layer("bn1"), model.get_layer("bn2")):
        layer.moving_mean.assign(rng.standard_normal(layer.moving_mean.shape).astype(np.float32))
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype(np.float32))
    model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
    variables = tf_savedmodel.read(tmp_path / "saved").tensors
    twin = fixture.build_twin()
    state = {k: v.numpy() for k, v in twin.state_dict().items()}
    mapping = map_keras_to_torch(variables, state, flatten="hwc")  # the twin flattens channels-last
    assert mapping.unmapped == []
    assert mapping.missing == ["bn1.num_batches_tracked", "bn2.num_batches_tracked"]
    assert mapping.flattened == ["logits"]
    assert any("HWC order" in note for note in mapping.notes)
    # The zoo's own hand-written mapping agrees bit for bit.
    reference = fixture.twin_state_dict(tf_savedmodel.read(tmp_path / "saved"))
    for name in mapping.pairs:
        assert mapping.checkpoint.tensors[name].tobytes() == reference[name].tobytes(), name
    twin.load_state_dict({k: numpy_to_tensor(v) for k, v in mapping.checkpoint.tensors.items()})
    batch = fixture.eval_batch()["input"]
    want = fixture.predictor(model)({"input": batch})["logits"]
    with torch.no_grad():
        got = twin(torch.from_numpy(batch)).numpy()
    assert float(np.abs(got - want).max()) <= 1e-5
