"""The standalone runner's own parts: the protobuf it writes and reads, and its error lines.

The runner imports nothing of ours (it and ``wire.py`` are copied into other
environments): a test runs it with ``python -I`` from a copy outside the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from portability.envs import runner, wire

onnx = pytest.importorskip("onnx")


@pytest.mark.parametrize("ir_version, opset", [(3, 7), (8, 17), (10, 21)])
def test_probe_model_is_a_valid_onnx_model(ir_version, opset):
    model = onnx.load_from_string(wire.probe_model(ir_version, opset))
    assert (model.ir_version, model.opset_import[0].domain, model.opset_import[0].version) == (ir_version, "", opset)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Identity"]


def test_onnx_header_reads_ir_and_every_opset():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    assert wire.onnx_header(model.SerializeToString()) == {"ir_version": 8,
                                                             "opsets": {"ai.onnx": 17, "ai.onnx.ml": 3}}


def test_truncated_protobuf_is_a_value_error():
    with pytest.raises(ValueError, match="truncated"):
        wire.read_fields(wire.probe_model(8, 17)[:-3] + b"\x80")


def test_onnxruntime_source_locations_are_cut_from_error_lines():
    said = ("[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/onnxruntime/core/graph/"
            "model.cc:149 onnxruntime::Model::Model(onnx::ModelProto&&, const PathString&, const "
            "onnxruntime::ModelOptions&) Unsupported model IR version: 10, max supported IR version: 9")
    assert runner._one_line(RuntimeError(said)) == ("[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:"
                                                    "Unsupported model IR version: 10, max supported IR version: 9")


def test_the_runner_runs_alone_and_reports_this_environment(tmp_path):
    copy = tmp_path / "runner.py"
    shutil.copy(runner.__file__, copy)
    shutil.copy(wire.__file__, tmp_path / "wire.py")
    done = subprocess.run([sys.executable, "-I", str(copy), "info"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import json

    import numpy as np

    info = json.loads(done.stdout)
    assert info["numpy"] == np.__version__
    for source in (copy, tmp_path / "wire.py"):  # nothing of ours is imported there
        assert not [ln for ln in open(source) if ln.lstrip().startswith(("import portability", "from portability"))]
    ort = pytest.importorskip("onnxruntime")
    entry = info["runtimes"]["onnxruntime"]
    assert (entry["version"], entry["ok"]) == (ort.__version__, True)
    assert entry["max_ir"] >= 10 and entry["max_opset"] >= 21
    assert subprocess.run([sys.executable, "-I", str(copy), "bogus"], capture_output=True).returncode == 2


@pytest.mark.slow
def test_savedmodel_header_names_the_producer_and_its_ops(tmp_path):
    tf = pytest.importorskip("tensorflow")

    class Double(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return {"y": x * 2.0}

    module = Double()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.__call__})
    header = wire.savedmodel_header(str(tmp_path / "sm"))
    assert header["tensorflow_version"] == tf.__version__
    assert "Mul" in header["ops"]
