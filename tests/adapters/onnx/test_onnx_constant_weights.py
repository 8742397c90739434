"""ONNX files from other producers: Constant-node weights, Identity chains, old opsets,
and their translation to a TF SavedModel without any model spec."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from foreign_graphs import WEIGHTS_OF_PADDLE_STYLE, image_batch, paddle_style_classifier, realworld_onnx

import portability

onnx = pytest.importorskip("onnx")
KEY_CONSTANT_NAMES = "portability.onnx.constant_names"


def _constants(path):
    model = onnx.load(str(path))
    return {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
            if n.op_type == "Constant"}


def test_import_finds_every_constant_weight_named_after_its_reader(tmp_path):
    path = paddle_style_classifier(tmp_path / "cls.onnx")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    ckpt = portability.load(str(path))
    assert list(ckpt.tensors) == list(WEIGHTS_OF_PADDLE_STYLE)
    record = json.loads(ckpt.metadata[KEY_CONSTANT_NAMES])
    constants = _constants(path)
    for name, entry in record.items():
        assert np.asarray(ckpt.tensors[name]).tobytes() == constants[entry["value"]].tobytes()
    # the Gemm weight is reached through two Identity nodes; the shape constant is no weight
    assert record["gemm_0.weight"] == {"value": "fc_w", "read_by": ["p2o.Gemm.0"]}
    assert "shape" not in {e["value"] for e in record.values()}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # import rewrites nothing
    assert [n.output[0] for n in onnx.load(str(path)).graph.node][0] == "conv1_w"


def test_constant_weights_convert_to_safetensors_not_an_empty_file(tmp_path):
    path = paddle_style_classifier(tmp_path / "cls.onnx")
    portability.convert(str(path), str(tmp_path / "cls.safetensors"))
    back = portability.load(str(tmp_path / "cls.safetensors"))
    assert list(back.tensors) == list(WEIGHTS_OF_PADDLE_STYLE)


def test_old_opset_is_upgraded_and_a_failed_upgrade_is_said(tmp_path):
    from portability.adapters.onnx.opset_upgrade import upgrade_opset

    model = onnx.load(str(paddle_style_classifier(tmp_path / "cls.onnx")))
    upgrade = upgrade_opset(model)
    assert (upgrade.from_opset, upgrade.to_opset, upgrade.failure) == (11, 13, "")
    assert "upgraded from opset 11 to 13" in upgrade.describe()
    broken = onnx.helper.make_model(
        onnx.helper.make_graph([onnx.helper.make_node("NoSuchOp", ["x"], ["y"])], "g",
                               [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                               [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]),
        opset_imports=[onnx.helper.make_opsetid("", 9)])
    failed = upgrade_opset(broken, "broken.onnx")
    assert failed.failure and failed.model is broken
    assert failed.describe().startswith("opset 9 could not be upgraded to 13 (")


def _onnx_vs_tf(onnx_path, savedmodel, feed):
    import onnxruntime as ort
    import tensorflow as tf

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, feed)[0]
    serving = tf.saved_model.load(str(savedmodel)).signatures["serving_default"]
    got = list(serving(**{k: tf.constant(v) for k, v in feed.items()}).values())[0].numpy()
    return expected, got, serving


@pytest.mark.slow
def test_constant_weight_onnx_translates_to_tf_without_a_model_spec(tmp_path):
    pytest.importorskip("tensorflow")
    path = paddle_style_classifier(tmp_path / "cls.onnx")
    result = portability.convert(str(path), str(tmp_path / "sm"))
    assert result.destination_format == "tf-savedmodel"
    feed = dict(np.load(image_batch(tmp_path / "x.npz", shape=(3, 3, 8, 8))))
    expected, got, serving = _onnx_vs_tf(path, tmp_path / "sm", feed)
    assert float(np.abs(expected - got).max()) <= 1e-5
    spec = serving.structured_input_signature[1]
    assert list(spec) == ["x"] and spec["x"].shape.as_list() == [None, 3, 8, 8]
    back = portability.load(str(tmp_path / "sm"))
    original = portability.load(str(path))
    assert list(back.tensors) == list(original.tensors)
    assert all(np.asarray(back.tensors[n]).tobytes() == np.asarray(original.tensors[n]).tobytes()
               for n in original.tensors)


@pytest.mark.slow
def test_published_paddleocr_classifier_imports_and_translates(tmp_path):
    pytest.importorskip("tensorflow")
    path = realworld_onnx()
    if path is None:
        pytest.skip("the rapidocr-onnxruntime wheel could not be downloaded (no PyPI access?)")
    ckpt = portability.load(str(path))
    model = onnx.load(str(path))
    assert len(model.graph.initializer) == 0 and len(ckpt.tensors) == 213
    assert sum(n.endswith(".running_var") for n in ckpt.tensors) == sum(
        n.op_type == "BatchNormalization" for n in model.graph.node)
    portability.convert(str(path), str(tmp_path / "sm"))
    feed = dict(np.load(image_batch(tmp_path / "x.npz", shape=(2, 3, 48, 192))))
    expected, got, _ = _onnx_vs_tf(path, tmp_path / "sm", feed)
    assert float(np.abs(expected - got).max()) <= 1e-5


def test_a_graph_without_weights_is_refused_not_written_empty(tmp_path):
    from portability.errors import FormatError

    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              str(tmp_path / "relu.onnx"))
    with pytest.raises(FormatError, match=r"relu.onnx: no weights found .*nothing to write to safetensors"):
        portability.convert(str(tmp_path / "relu.onnx"), str(tmp_path / "relu.safetensors"))
    assert not (tmp_path / "relu.safetensors").exists()
