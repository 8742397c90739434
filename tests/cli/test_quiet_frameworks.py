"""Our commands print none of TensorFlow's, absl's or onnxruntime's chatter unless --debug."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from foreign_graphs import keras_subclassed

_UNUSED_INITIALIZER = textwrap.dedent("""
    import sys
    if sys.argv[1] == "quiet":
        from portability.core.quiet import quiet_frameworks
        quiet_frameworks()
    import numpy as np, onnx, onnxruntime
    from onnx import helper, numpy_helper, TensorProto
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.zeros(3, np.float32), "unused")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
""")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PORTABILITY_DEBUG")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_onnxruntime_warnings_are_silenced_by_the_import_hook():
    pytest.importorskip("onnxruntime")
    loud = subprocess.run([sys.executable, "-c", _UNUSED_INITIALIZER, "loud"], capture_output=True,
                          text=True, env=_env(), timeout=120)
    quiet = subprocess.run([sys.executable, "-c", _UNUSED_INITIALIZER, "quiet"], capture_output=True,
                           text=True, env=_env(), timeout=120)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "Removing initializer 'unused'" in loud.stderr
    assert quiet.stderr == ""


@pytest.mark.slow
def test_tensorflow_commands_print_only_our_line(tmp_path):
    pytest.importorskip("keras")
    keras_subclassed(tmp_path / "sm")
    command = [sys.executable, "-m", "portability.cli", "convert", str(tmp_path / "sm"),
               str(tmp_path / "w.safetensors")]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"wrote {tmp_path / 'w.safetensors'} (safetensors, 4 tensors)")
    debug = subprocess.run([sys.executable, "-m", "portability.cli", "--debug", "inspect", str(tmp_path / "sm")],
                           capture_output=True, text=True, env=_env(), timeout=300)
    assert debug.returncode == 0, debug.stderr
