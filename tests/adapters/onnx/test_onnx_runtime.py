"""Evaluation in onnxruntime: checker and session first, failures typed, fp16/bf16 support stated."""

import numpy as np
import onnx
import onnx_cases
import onnx_toys
import pytest
from onnx import TensorProto, helper

from portability.adapters import onnx as onnx_adapter
from portability.adapters.torch.models import run_model
from portability.errors import FormatError, UnsupportedOpError, UsageError


def _single_op_model(op, domain="", opset=18, **attrs):
    node = helper.make_node(op, ["x"], ["y"], domain=domain, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports, producer_name="test")


def test_op_the_schema_lacks_is_rejected_by_the_checker(tmp_path):
    path = tmp_path / "erfc.onnx"
    onnx.save(_single_op_model("Erfc"), str(path))  # tf2onnx's broken output used Erfc
    runner = onnx_adapter.runner(path)
    with pytest.raises(UnsupportedOpError, match="onnx.checker rejects the model.*Erfc"):
        runner.activate()
    assert not runner.is_active


def test_op_ort_lacks_is_rejected_at_session_creation(tmp_path):
    path = tmp_path / "custom.onnx"
    onnx.save(_single_op_model("Frobnicate", domain="com.example"), str(path))
    onnx_adapter.check_model(path)  # the checker accepts unknown custom domains...
    with pytest.raises(UnsupportedOpError, match="onnxruntime .* cannot load the model.*Frobnicate"):
        onnx_adapter.runner(path).activate()  # ...ORT does not


def test_malformed_graph_is_a_format_error(tmp_path):
    model = _single_op_model("Relu")
    model.graph.node[0].input[0] = "not_defined_anywhere"
    path = tmp_path / "dangling.onnx"
    onnx.save(model, str(path))
    with pytest.raises(FormatError, match="dangling.onnx: onnx.checker rejects the model.*not_defined_anywhere"):
        onnx_adapter.runner(path).activate()


def test_valid_graph_runs_and_inputs_are_checked(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(_single_op_model("Relu"), str(path))
    with onnx_adapter.runner(path) as runner:
        assert runner.infer({"x": np.array([-1.0, 2.0], np.float32)})["y"].tolist() == [0.0, 2.0]
        with pytest.raises(UsageError, match=r"missing \['x'\], unknown \['z'\]"):
            runner.infer({"z": np.zeros(2, np.float32)})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp-fp16", "cnn-fp16"])
def test_fp16_exports_and_runs_on_ort_cpu(kind):
    result, state = onnx_cases.exported(kind)
    base = kind.split("-")[0]
    model = (onnx_toys.make_mlp() if base == "mlp" else onnx_toys.make_cnn()).half()
    inputs = {k: onnx_cases.cast(v, "fp16") for k, v in
              (onnx_toys.mlp_inputs(batch=3) if base == "mlp" else onnx_toys.cnn_inputs(batch=3)).items()}
    with onnx_adapter.runner(result.model_path) as runner:
        got = runner.infer(inputs)["output"]
    want = run_model(model, inputs)["output"]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-2)
    back = onnx_adapter.read(result.model_path)
    assert all(onnx_cases.same_bits(back.tensors[n], v) for n, v in state.items())


@pytest.mark.slow
@pytest.mark.parametrize("kind, message", [
    ("mlp-bf16", "onnxruntime .* cannot load the model.*Could not find an implementation for MatMul"),
    ("cnn-bf16", "onnx.checker rejects the model.*Conv.*has unsupported type: tensor\\(bfloat16\\)"),
])
def test_bf16_exports_and_imports_but_ort_cpu_cannot_run_it(kind, message):
    result, state = onnx_cases.exported(kind)
    back = onnx_adapter.read(result.model_path)
    assert all(onnx_cases.same_bits(back.tensors[n], v) for n, v in state.items())
    # onnxruntime's CPU provider has no bfloat16 MatMul, and ONNX's Conv admits no
    # bfloat16: clear, typed failures, never a result.
    runner = onnx_adapter.runner(result.model_path)
    with pytest.raises(UnsupportedOpError, match=message):
        runner.activate()
    assert not runner.is_active
