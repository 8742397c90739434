"""External data must stay inside the model's directory; escapes are refused before any read."""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from portability.adapters import onnx as onnx_adapter
from portability.adapters.onnx import safety
from portability.errors import FormatError, UnsafeCheckpointError


def _model_with_external(directory, location, secret_bytes=b"\x00" * 16):
    """A one-Add model whose initializer W says its data lives at ``location``."""
    weight = numpy_helper.from_array(np.zeros(4, np.float32), "W")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              initializer=[weight])
    path = directory / "model.onnx"
    with open(path, "wb") as f:  # bypass onnx.save, which would resolve the data itself
        f.write(helper.make_model(graph, producer_name="test").SerializeToString())
    return path


@pytest.fixture
def no_external_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("external data was read")

    monkeypatch.setattr(onnx, "load_external_data_for_model", refuse)
    monkeypatch.setattr(onnx.external_data_helper, "load_external_data_for_model", refuse)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.bin"
    path.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    return path, model_dir


def test_parent_directory_location_is_refused(secret, no_external_reads):
    target, model_dir = secret
    path = _model_with_external(model_dir, "../secret.bin")
    for action in (onnx_adapter.read, lambda p: onnx_adapter.runner(p).activate()):
        with pytest.raises(UnsafeCheckpointError, match=r"tensor 'W' keeps its data at '../secret.bin', "
                                                        "outside the model's directory"):
            action(path)


def test_absolute_location_is_refused(secret, no_external_reads):
    target, model_dir = secret
    path = _model_with_external(model_dir, str(target))
    with pytest.raises(UnsafeCheckpointError, match="outside the model's directory"):
        onnx_adapter.read(path)


def test_symlinked_location_is_refused(secret, no_external_reads):
    target, model_dir = secret
    os.symlink(target, model_dir / "weights.bin")
    path = _model_with_external(model_dir, "weights.bin")
    with pytest.raises(UnsafeCheckpointError, match="'weights.bin', which is a symlink"):
        onnx_adapter.read(path)


def test_nested_escape_and_missing_file(secret, no_external_reads):
    _, model_dir = secret
    (model_dir / "sub").mkdir()
    with pytest.raises(UnsafeCheckpointError):
        onnx_adapter.read(_model_with_external(model_dir, "sub/../../secret.bin"))
    with pytest.raises(FormatError, match="does not exist next to the model"):
        onnx_adapter.read(_model_with_external(model_dir, "absent.bin"))


def test_location_inside_the_directory_loads(secret):
    _, model_dir = secret
    (model_dir / "weights.bin").write_bytes(np.array([1, 2, 3, 4], np.float32).tobytes())
    path = _model_with_external(model_dir, "weights.bin")
    ckpt = onnx_adapter.read(path)
    assert ckpt.tensors["W"].tolist() == [1, 2, 3, 4]
    with onnx_adapter.runner(path) as runner:
        assert runner.infer({"x": np.ones(4, np.float32)})["y"].tolist() == [2, 3, 4, 5]


def test_extent_past_the_end_is_refused(secret):
    _, model_dir = secret
    (model_dir / "weights.bin").write_bytes(b"\x00" * 8)  # 16 bytes recorded
    with pytest.raises(FormatError, match="runs past the file's 8 bytes"):
        safety.load_proto(_model_with_external(model_dir, "weights.bin"))
