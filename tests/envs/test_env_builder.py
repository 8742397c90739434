"""Environments built with uv: cached and reused, asked what they run, and the one-line
errors of a spec that does not resolve, no network and a numpy ABI mismatch.

One real environment (onnxruntime 1.16.3 + numpy < 2, about 25 MB from the package
index) is built per session; the ABI test builds a second one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from portability.envs import builder
from portability.envs.builder import prepare
from portability.envs.session import EnvRunError, EnvSession
from portability.envs.spec import parse_env
from portability.errors import EnvError

onnx = pytest.importorskip("onnx")
pytest.importorskip("uv")


def test_the_environment_reports_its_runtime_and_limits(ort116_env):
    env, _ = ort116_env
    ort = env.runtime("onnxruntime")
    assert (ort["version"], ort["max_ir"], ort["max_opset"]) == ("1.16.3", 9, 19)
    assert env.info["numpy"].startswith("1.26.")
    assert env.describe() == f"ort116 (onnxruntime 1.16.3, numpy {env.info['numpy']}, Python {env.info['python']})"
    listed = subprocess.run([env.python, "-m", "pip", "list"], capture_output=True, text=True).stdout
    assert "portability" not in listed  # only the runner is copied in, not the package
    assert open(env.runner, "rb").read() == open(builder.RUNNER_SOURCE, "rb").read()


def test_a_second_prepare_reuses_the_cached_environment(ort116_env):
    env, cache = ort116_env
    again = prepare(parse_env("other-name=onnxruntime==1.16.3,numpy<2"), cache=cache)
    assert (again.python, again.build_s, again.name) == (env.python, 0.0, "other-name")
    assert again.info == env.info


def test_an_interpreter_spec_is_asked_not_built(ort116_env, tmp_path):
    env, _ = ort116_env
    edge = prepare(parse_env(f"edge=python:{env.python}"), cache=tmp_path)
    assert edge.python == env.python and edge.runtime("onnxruntime")["max_ir"] == 9
    assert not (tmp_path / builder.env_key(parse_env(f"edge=python:{env.python}"), "3")).exists()


def _linear(path, ir_version: int) -> np.ndarray:
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return w


def test_a_session_runs_plain_arrays_and_quotes_the_runtime_on_refusal(ort116_env, tmp_path):
    env, _ = ort116_env
    w = _linear(tmp_path / "ir8.onnx", 8)
    session = EnvSession(env, tmp_path / "ir8.onnx", "onnx")
    try:
        x = np.ones((2, 3), np.float32)
        assert session.runtime == "onnxruntime 1.16.3"
        np.testing.assert_array_equal(session.run({"x": x})["y"], x @ w)
        with pytest.raises(EnvRunError, match=r"in env 'ort116': inputs \['x'\] are missing"):
            session.run({"z": x})
    finally:
        session.close()
    _linear(tmp_path / "ir10.onnx", 10)
    with pytest.raises(EnvRunError) as info:
        EnvSession(env, tmp_path / "ir10.onnx", "onnx")
    assert str(info.value) == (f"in env 'ort116': onnxruntime 1.16.3 cannot load the model: [ONNXRuntimeError] : 1 : "
                               f"FAIL : Load model from {tmp_path / 'ir10.onnx'} failed:Unsupported model IR version: "
                               "10, max supported IR version: 9")


def test_a_spec_that_does_not_resolve(tmp_path):
    with pytest.raises(EnvError) as info:
        prepare(parse_env("bad=onnxruntime==0.0.77"), cache=tmp_path)
    message = str(info.value)
    assert message.startswith("--env bad=onnxruntime==0.0.77: the requirements cannot be resolved: ")
    assert "onnxruntime==0.0.77" in message.split(": ", 2)[2] and "\n" not in message
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing half-built is left


def test_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    with pytest.raises(EnvError) as info:
        prepare(parse_env("ort=onnxruntime==1.16.3"), cache=tmp_path / "envs")
    assert str(info.value).startswith("--env ort=onnxruntime==1.16.3: no network: uv could not reach the package "
                                      "index (")


@pytest.mark.slow
def test_onnxruntime_116_with_numpy_2_is_named(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "deployment-envs"
    with pytest.raises(EnvError) as info:
        prepare(parse_env("abi=onnxruntime==1.16.3,numpy==2.0.2"), cache=cache)
    assert str(info.value) == ("--env abi: onnxruntime 1.16.3 was built against numpy 1.x and cannot run with "
                               "numpy 2.0.2 (it crashes); pin numpy<2 in the environment")


def test_an_interpreter_without_numpy(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([builder.uv_binary(), "venv", "-q", "--python", sys.executable, str(bare)], check=True,
                   env={**os.environ, "VIRTUAL_ENV": ""})
    with pytest.raises(EnvError, match=r"^--env bare: .*/bin/python has no working numpy"):
        prepare(parse_env(f"bare=python:{bare / 'bin' / 'python'}"), cache=tmp_path / "envs")


def test_a_host_without_the_environment_builds_it_again(ort116_env, tmp_path, monkeypatch):
    from dataclasses import replace

    env, cache = ort116_env
    assert builder.on_this_host(env) is env
    elsewhere = replace(env, python=str(tmp_path / "gone" / "bin" / "python"))  # as a Ray job on another node sees it
    monkeypatch.setattr(builder, "cache_root", lambda: cache)
    again = builder.on_this_host(elsewhere)
    assert (again.python, again.name, again.requirements) == (env.python, "ort116", ("onnxruntime==1.16.3", "numpy<2"))
    with pytest.raises(EnvError, match=r"^--env edge: no interpreter at /gone/python on "):
        builder.on_this_host(replace(env, name="edge", kind="python", python="/gone/python"))
