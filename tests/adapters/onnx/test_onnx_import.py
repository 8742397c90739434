"""Import: every parameter back bitwise under its state_dict name, or listed."""

import json
import warnings

import ml_dtypes
import numpy as np
import onnx
import onnx_cases
import pytest
from onnx import TensorProto, helper, numpy_helper

from portability.adapters import onnx as onnx_adapter
from portability.adapters.onnx import name_map, reader
from portability.errors import FormatError, IntegrityError


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_import_returns_every_tensor_bitwise_in_order(kind):
    result, state = onnx_cases.exported(kind)
    ckpt = onnx_adapter.read(result.model_path)
    assert list(ckpt.tensors) == list(state)
    for name, value in state.items():
        assert onnx_cases.same_bits(ckpt.tensors[name], value), name
    assert ckpt.checksummed and ckpt.metadata[reader.KEY_SOURCE] == "record"


def _rewrite(src, dst, edit):
    proto = onnx.load(str(src))
    edit(proto)
    onnx.save(proto, str(dst))
    return dst


def test_corrupted_initializer_fails_its_checksum(tmp_path):
    result, _ = onnx_cases.exported("mlp")

    def flip(proto):
        tensor = next(t for t in proto.graph.initializer if t.name == "norm.weight")
        arr = numpy_helper.to_array(tensor).copy()
        arr[0] += 1.0
        tensor.CopyFrom(numpy_helper.from_array(arr, "norm.weight"))

    bad = _rewrite(result.model_path, tmp_path / "bad.onnx", flip)
    with pytest.raises(IntegrityError, match="checksum mismatch for tensor 'norm.weight'"):
        onnx_adapter.read(bad)


def test_record_naming_a_missing_initializer_is_a_format_error(tmp_path):
    result, _ = onnx_cases.exported("mlp")

    def drop(proto):
        keep = [t for t in proto.graph.initializer if t.name != "norm.bias"]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(keep)

    bad = _rewrite(result.model_path, tmp_path / "bad.onnx", drop)
    with pytest.raises(FormatError, match="tensor 'norm.bias' is recorded as initializer 'norm.bias'"):
        onnx_adapter.read(bad)


def _strip_record(src, dst):
    def strip(proto):
        keep = [p for p in proto.metadata_props if not p.key.startswith("portability.")]
        del proto.metadata_props[:]
        proto.metadata_props.extend(keep)
        extras = [t for t in proto.graph.initializer if not t.name.startswith(name_map.EXTRA_PREFIX)]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(extras)
        del proto.functions[:]  # the originals kept apart are part of the record

    return _rewrite(src, dst, strip)


def test_torch_export_without_record_recovers_folded_transposes(tmp_path):
    result, state = onnx_cases.exported("mlp", optimize=True)
    plain = _strip_record(result.model_path, tmp_path / "plain.onnx")
    assert any(t.name.startswith("val_") for t in onnx.load(str(plain)).graph.initializer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing unmapped for this graph: no warning either
        ckpt = onnx_adapter.read(plain)
    assert ckpt.metadata[reader.KEY_SOURCE] == "graph"
    assert sorted(ckpt.tensors) == sorted(state)
    for name, value in state.items():
        assert onnx_cases.same_bits(ckpt.tensors[name], value), name


def test_torch_export_without_record_lists_what_folding_removed(tmp_path):
    result, state = onnx_cases.exported("cnn", optimize=True)
    plain = _strip_record(result.model_path, tmp_path / "plain.onnx")
    with pytest.warns(reader.UnmappedWeightsWarning, match="parameters read by the graph but not found"):
        ckpt = onnx_adapter.read(plain)
    missing = json.loads(ckpt.metadata[reader.KEY_MISSING])
    assert {"p_bn_weight", "p_bn_bias", "b_bn_running_mean", "b_bn_running_var"} <= set(missing)
    # the file's own "conv.weight" holds BatchNorm folded in (the fused Conv node
    # carries the BatchNorm's FX node): it is listed as unmapped, not passed off
    # as the original. Exports carry the value-checked record for this reason.
    unmapped = json.loads(ckpt.metadata[reader.KEY_UNMAPPED])
    assert unmapped["conv.weight"] == [6, 3, 3, 3] and "conv.weight" not in ckpt.tensors
    assert "bn.weight" not in ckpt.tensors
    assert onnx_cases.same_bits(ckpt.tensors["head.weight"], state["head.weight"])


@pytest.mark.slow
def test_hf_bert_without_record_recovers_or_lists_every_parameter(tmp_path):
    from portability.adapters.safetensors.format import read as read_safetensors
    from portability.core.tensors import as_array

    source = read_safetensors(onnx_cases.hf_dir("bert") / "model.safetensors")
    plain = _strip_record(onnx_cases.hf_converted("bert"), tmp_path / "plain.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt = onnx_adapter.read(plain)
    missing = set(json.loads(ckpt.metadata.get(reader.KEY_MISSING, "[]")))
    transposed = 0
    for name in source.tensors:
        original = as_array(source.tensors[name])
        if name in ckpt.tensors:
            assert onnx_cases.same_bits(ckpt.tensors[name], original), name
            transposed += original.ndim == 2 and name.endswith("dense.weight")
        else:  # never silently dropped: the exporter removed it, and the import says so
            assert "p_" + name.replace(".", "_").lower() in missing, name
    assert transposed >= 4  # recovered from val_N initializers under MatMul


def test_foreign_file_imports_plain_initializers(tmp_path):
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    scale = np.array([1.5, -2.25, 3.0], dtype=ml_dtypes.bfloat16)
    typed = helper.make_tensor("offset", TensorProto.FLOAT16, [3], [0.5, 1, 2])  # int32_data, not raw
    assert not typed.HasField("raw_data") and len(typed.int32_data) == 3
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(scale, "scale"), typed])
    model = helper.make_model(graph, producer_name="other-tool")
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    ckpt = onnx_adapter.read(path)
    assert list(ckpt.tensors) == ["W", "scale", "offset"]
    assert onnx_cases.same_bits(ckpt.tensors["W"], weight)
    assert onnx_cases.same_bits(ckpt.tensors["scale"], scale)
    assert onnx_cases.same_bits(ckpt.tensors["offset"], np.array([0.5, 1, 2], np.float16))
    assert ckpt.metadata[reader.KEY_SOURCE] == "initializers"


def test_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07garbage that is not a protobuf \xff\xff")
    with pytest.raises(FormatError, match="junk.onnx: not a readable ONNX model"):
        onnx_adapter.read(path)
