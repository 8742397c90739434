"""Gemm in a saved and reloaded SavedModel: transA, transB, alpha, beta and every way C
broadcasts, at several shapes, against a float64 reference.

A SavedModel runs its graph through grappler, which folds transposes into MatMul's flags
and fuses MatMul + Add into _FusedMatMul. With transA and a C of shape [1, N] that fused
kernel failed at run time on TF 2.21 wherever oneDNN is on ("Graph execution error:
bias must be 1-dimensional", tensorflow/tensorflow#126661). TF turns oneDNN on by default
only on some x86 CPUs, so one test also runs the SavedModel in a fresh process with
TF_ENABLE_ONEDNN_OPTS=1.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
from onednn_process import infer_with_onednn
from onnx import TensorProto, helper

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402
from portability.adapters.tf_savedmodel.savedmodel_io import save_module
from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

SHAPES = [(6, 3, 4), (1, 5, 7), (8, 8, 1)]  # M, K, N
C_SHAPES = ["none", "scalar", "n", "1n", "m1", "mn", "11"]
# The float32 result against float64 arithmetic: K <= 8 products of values below 4.
ATOL = RTOL = 1e-5


def _c_shape(kind: str, m: int, n: int) -> tuple[int, ...] | None:
    return {"none": None, "scalar": (), "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n), "11": (1, 1)}[kind]


def _cases():
    """One Gemm per combination, each with its own static-shaped inputs; alpha and beta
    alternate between the defaults and (0.5, 2.0)."""
    combos = itertools.product(SHAPES, [0, 1], [0, 1], C_SHAPES)
    for index, ((m, k, n), trans_a, trans_b, c_kind) in enumerate(combos):
        alpha, beta = (1.0, 1.0) if index % 2 else (0.5, 2.0)
        yield index, m, k, n, trans_a, trans_b, _c_shape(c_kind, m, n), alpha, beta


def _model_and_feeds():
    rng = np.random.default_rng(5)
    nodes, inputs, outputs, feeds, want = [], [], [], {}, {}
    for index, m, k, n, trans_a, trans_b, c_shape, alpha, beta in _cases():
        a = rng.uniform(-2, 2, (k, m) if trans_a else (m, k)).astype(np.float32)
        b = rng.uniform(-2, 2, (n, k) if trans_b else (k, n)).astype(np.float32)
        names = [f"a{index}", f"b{index}"]
        feeds.update({names[0]: a, names[1]: b})
        product = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
        expected = alpha * product
        if c_shape is not None:
            c = rng.uniform(-2, 2, c_shape).astype(np.float32)
            names.append(f"c{index}")
            feeds[names[2]] = c
            expected = expected + beta * c.astype(np.float64)
        for name in names:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(feeds[name].shape)))
        out = f"y{index}"
        nodes.append(helper.make_node("Gemm", names, [out], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta))
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [m, n]))
        want[out] = expected
    graph = helper.make_graph(nodes, "gemms", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), feeds, want


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model, feeds, want = _model_and_feeds()
    module = translate(model)
    path = tmp_path_factory.mktemp("gemm") / "saved"
    save_module(module, None, path)
    return module, path, feeds, want


def _check(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name, expected in want.items():
        np.testing.assert_allclose(got[name], expected, rtol=RTOL, atol=ATOL, err_msg=name)


def test_gemm_matches_the_reference_in_the_module_and_after_reloading(saved):
    module, path, feeds, want = saved
    in_process = {k: np.asarray(v) for k, v in module(**feeds).items()}
    _check(in_process, want)
    with TFSavedModelRunner(path) as runner:
        reloaded = runner.infer(feeds)
    _check(reloaded, want)
    for name in want:  # the same kernels either way
        np.testing.assert_array_equal(reloaded[name], in_process[name], err_msg=name)


@pytest.mark.slow
def test_gemm_saved_model_runs_with_onednn_on(saved, tmp_path):
    """The SavedModel in a fresh process with oneDNN forced on, where grappler fuses a
    [1, N] C into _FusedMatMul; that failed with transA before C was passed as a row."""
    _, path, feeds, want = saved
    _check(infer_with_onednn(path, feeds, tmp_path), want)
