"""The check harness: routes run and judged, and planted breaks caught with the right reason.

These run in-process (``workers=0``) to stay fast; ``test_harness_workers.py``
covers isolation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_models

import portability
from portability.api import check, compare, plan


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy checkpoint (.pt), its input batch (.npz), and the model."""
    root = tmp_path_factory.mktemp("toy")
    model = toy_models.mlp()
    ckpt = root / "toy.pt"
    torch.save(model.state_dict(), ckpt)
    inputs = root / "inputs.npz"
    np.savez(inputs, **toy_models.inputs())
    return ckpt, inputs, model


def _save_variant(path, model, edit=None):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if edit:
        edit(state)
    torch.save(state, path)
    return path


def test_plan_lists_every_route_and_skips_with_reasons(toy):
    ckpt, inputs, _ = toy
    the_plan = plan(ckpt, model="toy_models:mlp", inputs=inputs)
    names = [j.name for j in the_plan.jobs]
    assert names == ["torch->safetensors", "torch->onnx", "torch->tf-savedmodel", "torch->dcp",
                     "torch->safetensors->torch", "torch->onnx->torch", "torch->tf-savedmodel->torch",
                     "torch->dcp->torch"]
    assert all(why.startswith("format ") for why in the_plan.skipped.values())
    narrowed = plan(ckpt, model="toy_models:mlp", formats="safetensors,torch")
    assert [j.name for j in narrowed.jobs] == ["torch->safetensors", "torch->safetensors->torch"]
    chosen = plan(ckpt, model="toy_models:mlp", routes="torch:safetensors:torch")
    assert [j.name for j in chosen.jobs] == ["torch->safetensors->torch"]
    with pytest.raises(portability.UsageError, match="does not start at the checkpoint's format 'torch'"):
        plan(ckpt, model="toy_models:mlp", routes="safetensors->torch")
    with pytest.raises(portability.UsageError, match="unknown format 'keras'"):
        plan(ckpt, formats="torch,keras")


def test_weight_routes_pass_with_bitwise_weights_zero_drift_and_r_of_one(toy):
    ckpt, inputs, _ = toy
    report = portability.check(ckpt, model="toy_models:mlp", inputs=inputs, formats="torch,safetensors",
                               workers=0, metric=toy_models.accuracy_against_reference, metric_name="agreement")
    assert report and report.passed and [r.status for r in report.routes] == ["pass", "pass"]
    for route in report.routes:
        assert route.weights.bitwise_equal == route.weights.compared == 8
        (out,) = route.outputs
        assert out.name == "output" and out.max_abs == 0.0 and out.cosine == pytest.approx(1.0)
        assert route.recoverability.value == 1.0 and route.recoverability.metric == "agreement"
        assert {"convert", "total"} <= set(route.timings)  # recorded (how long is for benchmarks/)
    assert report.routes[1].route == ["torch", "safetensors", "torch"]
    assert "reused the torch->safetensors conversion" in report.routes[1].notes[0]
    assert portability.api.Report.from_json(report.to_json()).to_dict() == report.to_dict()


def test_without_model_spec_only_weights_are_judged_and_graph_routes_skip(toy):
    ckpt, _, _ = toy
    report = check(ckpt, routes="torch->safetensors,torch->onnx", workers=0)
    weights_only, graph = report.routes
    assert weights_only.status == "pass" and weights_only.outputs == []
    assert "outputs not compared" in weights_only.notes[0]
    assert graph.status == "skipped"
    assert "needs a model spec" in graph.reason or "not available" in graph.reason


@pytest.mark.parametrize("variant, expected", [
    ("toy_models:mlp_tanh_gelu", "output 'output':"),
    ("toy_models:mlp_ln_eps", "output 'output':"),
])
def test_planted_activation_and_epsilon_changes_fail_on_drift(toy, variant, expected):
    ckpt, inputs, _ = toy
    report = compare(ckpt, ckpt, model="toy_models:mlp", candidate_model=variant, inputs=inputs, workers=0,
                     metric=toy_models.accuracy_against_reference)
    (route,) = report.routes
    assert not report and route.status == "fail"
    assert route.weights.passed  # the weights are intact: only the computation changed
    assert route.reason.startswith(expected)
    out = route.outputs[0]
    assert out.failing > 0 and out.max_abs > 1e-5 and 1e-5 < out.min_atol <= out.max_abs


def test_planted_transposed_square_weight_fails_on_weights_and_outputs(toy, tmp_path):
    ckpt, inputs, model = toy
    bad = _save_variant(tmp_path / "transposed.pt", model,
                        lambda s: s.__setitem__("square.weight", s["square.weight"].T.contiguous()))
    (route,) = compare(ckpt, bad, model="toy_models:mlp", inputs=inputs, workers=0).routes
    assert route.status == "fail"
    assert "weights: 1 tensor(s) differ beyond atol 0; worst 'square.weight'" in route.reason
    assert "equals the reference transposed" in route.reason
    assert "output 'output'" in route.reason


def test_planted_perturbed_weight_fails_even_when_outputs_barely_move(toy, tmp_path):
    ckpt, inputs, model = toy

    def bump(state):
        state["head.bias"][1] += 1e-6

    bad = _save_variant(tmp_path / "perturbed.pt", model, bump)
    (route,) = compare(ckpt, bad, model="toy_models:mlp", inputs=inputs, workers=0).routes
    assert route.status == "fail"
    assert route.weights.value_changes[0].name == "head.bias"
    assert route.reason.startswith("weights: 1 tensor(s) differ beyond atol 0; worst 'head.bias'")
    assert all(o.passed for o in route.outputs)  # the drift alone (1e-6) would have passed


def test_onnx_with_an_op_onnxruntime_lacks_fails_with_the_runtime_message(toy, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")  # with both installed, the route runs: it must fail, not skip
    from onnx import TensorProto, helper

    ckpt, inputs, _ = toy
    node = helper.make_node("FancyGelu", ["x"], ["output"], domain="com.example.missing")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example.missing", 1)])
    bad = tmp_path / "custom_op.onnx"
    onnx.save(model, bad)
    report = compare(ckpt, bad, model="toy_models:mlp", inputs=inputs, workers=0, tolerance=None)
    (route,) = report.routes
    assert route.status == "fail" and not report
    assert route.reason.startswith("onnx artifact cannot run:")
    assert "FancyGelu" in route.reason


def test_noisy_runtime_fails_with_min_atol_that_would_pass(toy):
    ckpt, inputs, _ = toy
    report = check(ckpt, model="toy_models:noisy", inputs=inputs, routes="torch->safetensors", workers=0)
    (route,) = report.routes
    assert route.status == "fail" and route.weights.passed
    out = route.outputs[0]
    assert out.failing > 0 and 1e-5 < out.min_atol < 1e-1
    from portability.harness.drift import Tolerance

    report = check(ckpt, model="toy_models:noisy", inputs=inputs, routes="torch->safetensors", workers=0,
                   tolerance=Tolerance(routes={"torch->safetensors": Tolerance(atol={"output": 1.0})}))
    assert report.routes[0].status == "pass"
