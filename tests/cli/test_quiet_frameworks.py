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


_IMPORT_TF = textwrap.dedent("""
    import sys
    if sys.argv[1] == "quiet":
        from portability.core.quiet import quiet_frameworks
        quiet_frameworks()
    import tensorflow
    print("imported", file=sys.stderr)
""")


@pytest.mark.slow
def test_tensorflow_cpp_startup_lines_are_filtered_even_when_tf_logging_is_on():
    # TF_CPP_MIN_LOG_LEVEL=0 (the user's own choice wins over ours) makes TF print its C++
    # start-up lines, as some TF builds and CPUs do whatever the level: absl's pre-init
    # notice, cpu_feature_guard, oneDNN. The capture around the import drops them.
    pytest.importorskip("tensorflow")
    env = {**_env(), "TF_CPP_MIN_LOG_LEVEL": "0"}
    loud = subprocess.run([sys.executable, "-c", _IMPORT_TF, "loud"], capture_output=True, text=True, env=env,
                          timeout=300)
    quiet = subprocess.run([sys.executable, "-c", _IMPORT_TF, "quiet"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "absl::InitializeLog()" in loud.stderr or "] " in loud.stderr, loud.stderr
    assert quiet.stderr == "imported\n"


_NOISY_MODULE = textwrap.dedent("""
    import os
    os.write(2, b"Fatal: something real went wrong\\n")
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 00:00:1796555363.191041   12098 cpu_feature_guard.cc:227] This binary is optimized.\\n")
    os.write(2, b"To enable the following instructions: AVX2 FMA, rebuild with the appropriate flags.\\n")
    os.write(2, b"2026-12-06 10:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.\\n")
    os.write(2, b"W0000 00:00:1796555363.2 12098 registry.cc:1] factory already registered\\n")
    os.write(2, b"E0000 00:00:1796555363.3 12098 loader.cc:9] could not load libfoo.so\\n")
    os.write(2, b"  while loading plugin foo\\n")
    os.write(2, b"2026-12-06 10:00:00.5: W tensorflow/core/x.cc:1] a warning\\n")
""")


def test_only_errors_pass_the_capture_around_a_framework_import(tmp_path):
    (tmp_path / "noisy_framework.py").write_text(_NOISY_MODULE)
    code = textwrap.dedent("""
        import sys
        from portability.core import quiet
        from portability.core.quiet import _during_import, _filtered_stderr
        sys.meta_path.insert(0, _during_import("noisy_framework", _filtered_stderr))
        import noisy_framework
        print("done", file=sys.stderr)
    """)
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path), _env()["PYTHONPATH"]])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    # An unprefixed line after a notice continues it (cpu_feature_guard's second line).
    assert done.stderr == ("Fatal: something real went wrong\n"
                           "E0000 00:00:1796555363.3 12098 loader.cc:9] could not load libfoo.so\n"
                           "  while loading plugin foo\n"
                           "done\n")
