"""First divergence: the first intermediate past its floor is named, per pair of runtimes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import toy_models

from portability.api import check, compare
from portability.harness.divergence import Tap, locate


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("div")
    ckpt = root / "mlp.pt"
    torch.save(toy_models.mlp().state_dict(), ckpt)
    inputs = root / "x.npz"
    np.savez(inputs, **toy_models.inputs())
    return root, ckpt, inputs


@pytest.fixture(scope="module")
def exports(toy):
    pytest.importorskip("onnxscript")
    from portability.adapters.onnx.export import export_model

    root, _, _ = toy
    exact, tanh = root / "exact.onnx", root / "tanh.onnx"
    export_model(toy_models.mlp(), toy_models.inputs(), exact)
    export_model(toy_models.mlp_tanh_gelu(), toy_models.inputs(), tanh)
    return exact, tanh


def test_locate_names_the_first_tap_past_its_floor_and_skips_unmatched_shapes():
    ref = np.ones((2, 3), np.float32)
    taps = [Tap("a", "Linear", ref, None, ref + 1e-7), Tap("b", "Relu", ref, None, np.ones((3, 2))),
            Tap("c", "Gelu", ref, ref.astype(np.float64), ref + 1e-3), Tap("d", "Linear", ref, None, ref + 1e-2)]
    found = locate(taps, 1e-5, 1e-5)
    assert [d.at for d in found.layers] == ["a", "c", "d"]
    assert found.first_dict() == {"at": "c", "op": "Gelu", "max_abs": pytest.approx(1e-3, rel=1e-3),
                                  "floor": 1e-5}


def test_exact_vs_tanh_gelu_onnx_exports_name_the_activation_layer(exports, toy):
    exact, tanh = exports
    _, _, inputs = toy
    (route,) = compare(exact, tanh, inputs=inputs, workers=0).routes
    assert route.status == "fail"
    assert route.first_divergence["at"] == "act" and route.first_divergence["op"] == "Gelu"
    assert route.first_divergence["floor"] == 1e-5 and route.first_divergence["max_abs"] > 1e-4
    before = [d for d in route.layer_drift[: [d["at"] for d in route.layer_drift].index("act")]]
    assert before and not any(d["exceeded"] for d in before)
    assert "first divergence at act (Gelu)" in route.reason
    assert all(o.floor is None for o in route.outputs)  # a graph reference: no float64 run
    assert "no float64 noise floor available (the reference is not a torch model)" in " ".join(route.notes)


def test_torch_reference_vs_a_tanh_onnx_matches_module_scopes(exports, toy):
    _, tanh = exports
    _, ckpt, inputs = toy
    (route,) = compare(ckpt, tanh, model="toy_models:mlp", inputs=inputs, workers=0).routes
    assert route.first_divergence["at"] == "act" and route.first_divergence["op"] == "Gelu"
    assert [d["at"] for d in route.layer_drift] == ["fc1", "norm", "act", "square", "act#2", "head"]
    assert "torch modules matched to ONNX nodes by their module scopes" in " ".join(route.notes)


def test_torch_vs_torch_names_the_module_and_a_passing_route_has_none(toy):
    _, ckpt, inputs = toy
    (route,) = compare(ckpt, ckpt, model="toy_models:mlp", candidate_model="toy_models:mlp_ln_eps",
                       inputs=inputs, workers=0).routes
    assert route.first_divergence["at"] == "norm" and route.first_divergence["op"] == "LayerNorm"
    (same,) = compare(ckpt, ckpt, model="toy_models:mlp", inputs=inputs, workers=0).routes
    assert same.status == "pass" and same.first_divergence is None and same.layer_drift == []


def _tanh_gelu(node, ctx):
    """A planted translator bug: the tanh approximation where ONNX asks for the exact GELU."""
    import tensorflow as tf

    x = ctx.input(0)
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


@pytest.mark.slow
@pytest.mark.parametrize("source", ["torch", "onnx"])
def test_a_planted_translator_bug_is_located_in_the_savedmodel_route(toy, exports, monkeypatch, source):
    pytest.importorskip("tensorflow")
    from portability.adapters.tf_savedmodel.ops import registry

    monkeypatch.setitem(registry._TRANSLATORS, "Gelu", _tanh_gelu)
    _, ckpt, inputs = toy
    if source == "torch":
        report = check(ckpt, model="toy_models:mlp", inputs=inputs, routes="torch->tf-savedmodel", workers=0)
    else:
        report = check(exports[0], inputs=inputs, routes="onnx->tf-savedmodel", workers=0)
    (route,) = report.routes
    assert route.status == "fail"
    assert route.first_divergence["at"] == "act" and route.first_divergence["op"] == "Gelu"
