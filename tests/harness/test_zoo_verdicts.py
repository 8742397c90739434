"""The zoo under the new verdicts: a metric chosen by name, the float64 floor per output, and
the note where no floor can be had (a Keras reference, a graph)."""

from __future__ import annotations

import pytest

from portability.api import check


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["mlp", "cnn"])
def test_torch_fixtures_are_judged_against_their_float64_run_with_r_on_a_named_metric(fixture):
    pytest.importorskip("onnxscript")
    report = check(fixture=fixture, routes="torch->onnx", metric="agreement", workers=0)
    (route,) = report.routes
    assert route.status == "pass", route.reason
    for out in route.outputs:
        assert out.floor is not None and out.floor >= out.atol and out.error_vs_float64 <= out.floor
    rec = route.recoverability
    assert (rec.metric, rec.reference, rec.value) == ("agreement", 1.0, 1.0)
    assert route.first_divergence is None and route.layer_drift == []


def test_a_fixture_keeps_its_own_metric_without_metric():
    report = check(fixture="mlp", routes="torch->safetensors", workers=0)
    (route,) = report.routes
    assert route.recoverability.metric == "accuracy" and route.recoverability.value == 1.0


@pytest.mark.slow
def test_a_keras_reference_has_no_float64_floor_and_says_so():
    pytest.importorskip("tf2onnx")
    report = check(fixture="keras-cnn", routes="tf-savedmodel->onnx", workers=0)
    (route,) = report.routes
    assert route.status == "pass" and all(o.floor is None for o in route.outputs)
    assert "no float64 noise floor available (the reference is not a torch model)" in " ".join(route.notes)
