"""The lowest IR version a graph allows (onnx's version table and the features that
need more), and exports that carry it whatever the exporter wrote."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ir = pytest.importorskip("onnx_ir")

from onnx import TensorProto, helper

from portability.adapters.onnx import ir_version


def _model(opset: int, initializer_type: int = TensorProto.FLOAT, functions=(), ir_stamp: int = 10) -> ir.Model:
    init = helper.make_tensor("w", initializer_type, [2], [1, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [init])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("local", 1)] if functions else [])
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = ir_stamp
    return ir.serde.deserialize_model(model)


@pytest.mark.parametrize("opset, expected", [(11, 6), (13, 7), (17, 8), (19, 9), (21, 10), (23, 11), (25, 13)])
def test_the_opset_sets_the_floor_by_onnx_version_table(opset, expected):
    assert ir_version.needs(_model(opset)).version == expected


@pytest.mark.parametrize("dtype, expected, why", [
    (TensorProto.BFLOAT16, 8, "opset 17"),            # bfloat16 (IR 4) is below opset 17's IR 8
    (TensorProto.FLOAT8E4M3FN, 9, "float8e4m3fn tensors"),
    (TensorProto.INT4, 10, "int4 tensors"),
    (TensorProto.UINT4, 10, "uint4 tensors"),
])
def test_tensor_types_raise_the_floor(dtype, expected, why):
    found = ir_version.needs(_model(17, dtype))
    assert found.version == expected
    assert why in found.why()


def test_model_local_functions_need_ir_8():
    function = helper.make_function("local", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 13)])
    found = ir_version.needs(_model(13, functions=[function]))
    assert (found.version, found.why()) == (8, "model-local functions")


def test_lowering_keeps_a_lower_stamp_and_refuses_past_the_target():
    model = _model(17, ir_stamp=10)
    assert ir_version.lower(model) == ["ONNX IR version 10 -> 8, the lowest opset 17 allows (per "
                                       "onnx.helper.VERSION_TABLE and the graph's features)"]
    assert model.ir_version == 8
    older = _model(17, ir_stamp=7)  # never raised: what the exporter wrote is kept when it is lower
    assert ir_version.lower(older) == [] and older.ir_version == 7
    with pytest.raises(ValueError, match=r"needs ONNX IR version 10 \(int4 tensors\), newer than the target's IR 9"):
        ir_version.lower(_model(17, TensorProto.INT4), max_ir=9)


def test_node_annotations_are_kept_below_ir_10_and_pass_the_checker(tmp_path):
    model = _model(17)
    node = next(iter(model.graph))
    node.metadata_props["pkg.torch.onnx.name_scopes"] = "['', 'fc1']"  # what the import reads folded weights by
    notes = ir_version.lower(model)
    assert model.ir_version == 8 and dict(node.metadata_props) == {"pkg.torch.onnx.name_scopes": "['', 'fc1']"}
    assert notes[1] == "metadata_props of 1 nodes/values/graphs kept (an IR 10 field that older readers skip)"
    ir.save(model, tmp_path / "m.onnx")
    saved = onnx.load(str(tmp_path / "m.onnx"))
    assert saved.ir_version == 8 and len(saved.graph.node[0].metadata_props) == 1
    onnx.checker.check_model(saved, full_check=True)


@pytest.mark.slow
def test_an_export_at_opset_17_carries_ir_8_and_runs(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from portability.adapters.onnx.export import export_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GELU())
    feed = {"input": np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)}
    result = export_model(model, feed, tmp_path / "m.onnx", opset=17)
    written = onnx.load(str(tmp_path / "m.onnx"))
    assert (written.ir_version, written.opset_import[0].version) == (8, 17)
    assert result.notes[0].startswith("ONNX IR version 10 -> 8")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: feed["input"]})[0]
    np.testing.assert_allclose(got, model(torch.from_numpy(feed["input"])).detach().numpy(), atol=1e-6)
