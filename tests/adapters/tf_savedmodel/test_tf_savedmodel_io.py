"""SavedModel variables: bitwise import under state_dict names, ties, training state,
half-precision storage, checksums, and errors. Uses a hand-built ONNX graph (no export)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
from onnx import TensorProto, helper, numpy_helper

from portability.adapters import tf_savedmodel
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.core.formats import ReadOptions, WriteOptions
from portability.errors import FormatError, IntegrityError

RNG = np.random.default_rng(0)
WEIGHT = RNG.standard_normal((4, 3)).astype(np.float32)
BIAS = RNG.standard_normal(4).astype(np.float32)


def _linear_onnx(path):
    node = helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["scores"], transB=1, name="fc")
    graph = helper.make_graph(
        [node], "linear", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(WEIGHT, "fc.weight"), numpy_helper.from_array(BIAS, "fc.bias")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))


def _checkpoint():
    tensors = {
        "fc.weight": WEIGHT, "fc.bias": BIAS,
        "head.weight": WEIGHT,  # tied to fc.weight
        "steps": np.array([7], np.int64),
        "half.table": RNG.standard_normal((2, 3)).astype(np.float16),
        "bf.table": RNG.standard_normal((3, 2)).astype(ml_dtypes.bfloat16),
    }
    optimizer = OptimizerState(param_groups=[{"lr": 0.1, "params": [0, 1]}], kind="Adam",
                               state={0: {"exp_avg": RNG.standard_normal((4, 3)).astype(np.float32),
                                          "step": 3}},
                               param_names={0: "fc.weight", 1: "fc.bias"})
    training = TrainingState(optimizer=optimizer, epoch=2, global_step=10, loss=0.5)
    return Checkpoint(tensors=tensors, aliases={"head.weight": "fc.weight"}, training=training,
                      metadata={"origin": "unit-test"})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("tf_io")
    _linear_onnx(root / "linear.onnx")
    ckpt = _checkpoint()
    tf_savedmodel.write(ckpt, root / "saved", WriteOptions(onnx_source=str(root / "linear.onnx")))
    return ckpt, root / "saved"


def test_serving_signature_computes_the_graph(saved):
    _, path = saved
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    out = fn(features=tf.constant(x))
    np.testing.assert_allclose(out["scores"].numpy(), x @ WEIGHT.T + BIAS, rtol=1e-6, atol=1e-6)


def test_round_trip_is_bitwise_with_ties_dtypes_and_training_state(saved):
    ckpt, path = saved
    back = tf_savedmodel.read(path)
    assert list(back.tensors) == list(ckpt.tensors)
    assert back.aliases == {"head.weight": "fc.weight"}
    assert back.metadata == {"origin": "unit-test"}
    assert back.checksummed
    for name, value in ckpt.tensors.items():
        got = np.asarray(back.tensors[name])
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes(), name
    training = back.training
    assert (training.epoch, training.global_step, training.loss) == (2, 10, 0.5)
    assert training.optimizer.kind == "Adam"
    assert training.optimizer.param_names == {0: "fc.weight", 1: "fc.bias"}
    exp_avg = ckpt.training.optimizer.state[0]["exp_avg"]
    assert np.asarray(training.optimizer.state[0]["exp_avg"]).tobytes() == exp_avg.tobytes()


def test_only_floating_parameters_are_trainable(saved):
    _, path = saved
    loaded = tf.saved_model.load(str(path))
    trainable = sorted(n for n, v in loaded.weights.items() if v.trainable)
    assert trainable == ["bf.table", "fc.bias", "fc.weight", "half.table"]


def test_modified_variable_fails_its_checksum(saved, tmp_path):
    ckpt, path = saved
    copy = tmp_path / "copy"
    loaded = tf.saved_model.load(str(path))
    loaded.weights["fc.bias"].assign(np.zeros(4, np.float32))
    tf.saved_model.save(loaded, str(copy), signatures=loaded.signatures)
    (copy / "assets.extra").mkdir()
    (copy / "assets.extra" / "portability.json").write_bytes(
        (path / "assets.extra" / "portability.json").read_bytes())
    with pytest.raises(IntegrityError, match="variable 'fc.bias' does not match its recorded checksum"):
        tf_savedmodel.read(copy)
    unverified = tf_savedmodel.read(copy, ReadOptions(verify=False))
    assert not unverified.checksummed
    assert np.array_equal(unverified.tensors["fc.bias"], np.zeros(4, np.float32))


def test_not_a_savedmodel_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="not a SavedModel"):
        tf_savedmodel.read(tmp_path)
