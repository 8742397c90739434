"""The float64 noise floor: float32 noise passes, planted wrong conversions still fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_models

from portability.api import compare
from portability.harness.drift import compare_output
from portability.harness.noise_floor import CAP, K, apply_floor, floor_for


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    root = tmp_path_factory.mktemp("wide")
    model = toy_models.wide_difference()
    ckpt = root / "wide.pt"
    torch.save(model.state_dict(), ckpt)
    inputs = root / "wide.npz"
    np.savez(inputs, **toy_models.wide_inputs())
    return ckpt, inputs, model


def test_float32_noise_alone_fails_a_fixed_atol_but_passes_the_float64_floor(wide):
    ckpt, inputs, _ = wide
    report = compare(ckpt, ckpt, model="toy_models:wide_difference",
                     candidate_model="toy_models:wide_difference_reordered", inputs=inputs, workers=0)
    (route,) = report.routes
    (out,) = route.outputs
    assert report and route.status == "pass", route.reason
    assert out.max_abs > 1e-5 and out.failing == 0  # float32 vs float32 crosses atol by rounding alone
    assert 1e-5 < out.source_error < 1e-4  # the source's own error against float64
    assert out.floor == pytest.approx(K * out.source_error)
    assert out.error_vs_float64 < out.floor
    assert route.first_divergence is None
    assert any("judged against the reference's float64 run" in n for n in route.notes)


def test_the_same_pair_judged_without_the_floor_fails(wide):
    _, inputs, model = wide
    feed = torch.from_numpy(np.load(inputs)["x"])
    other = toy_models.wide_difference_reordered()
    with torch.no_grad():
        drift = compare_output("output", model(feed).numpy(), other(feed).numpy(), 1e-5, 1e-5)
    assert not drift.passed and drift.failing > 0


@pytest.mark.parametrize("edit", ["a.weight", "a.bias"])
def test_a_weight_perturbed_by_two_percent_still_fails_its_outputs(wide, tmp_path, edit):
    ckpt, inputs, model = wide
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[edit] *= 1.02
    bad = tmp_path / "perturbed.pt"
    torch.save(state, bad)
    from portability.harness.drift import Tolerance

    report = compare(ckpt, bad, model="toy_models:wide_difference", inputs=inputs, workers=0,
                     tolerance=Tolerance(weights_atol=None))
    (route,) = report.routes
    assert route.status == "fail" and route.weights is not None
    (out,) = route.outputs
    assert out.error_vs_float64 > out.floor and out.failing > 0
    assert route.reason.startswith("output 'output':") and "outside the float64 noise floor" in route.reason


def test_tanh_gelu_still_fails_against_the_floor(tmp_path):
    model = toy_models.mlp()
    ckpt = tmp_path / "mlp.pt"
    torch.save(model.state_dict(), ckpt)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, **toy_models.inputs())
    (route,) = compare(ckpt, ckpt, model="toy_models:mlp", candidate_model="toy_models:mlp_tanh_gelu",
                       inputs=inputs, workers=0).routes
    (out,) = route.outputs
    assert route.status == "fail" and out.floor == 1e-5  # the toy's own float32 error is far below atol
    assert out.source_error < 1e-6 and out.error_vs_float64 > 1e-4


def test_a_model_that_cannot_run_in_float64_keeps_the_tolerances_and_says_why(tmp_path):
    model = toy_models.float32_only()
    ckpt = tmp_path / "f32.pt"
    torch.save(model.state_dict(), ckpt)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, **toy_models.inputs())
    (route,) = compare(ckpt, ckpt, model="toy_models:float32_only", inputs=inputs, workers=0).routes
    assert route.status == "pass" and route.outputs[0].floor is None
    (note,) = [n for n in route.notes if "float64" in n]
    assert note.startswith("no float64 noise floor available (the model cannot run in float64 (RuntimeError:")


def test_the_floor_is_capped_so_a_source_far_from_its_float64_run_cannot_hide_a_break():
    assert floor_for(1e-9, 1e-5) == 1e-5
    assert floor_for(2e-5, 1e-5) == pytest.approx(8e-5)
    assert floor_for(1.0, 1e-5) == pytest.approx(CAP * 1e-5)
    ref = np.zeros((4, 4), np.float32)
    truth = np.full((4, 4), 0.5)  # the float64 run computes something else entirely
    cand = np.full((4, 4), 0.01, np.float32)  # a broken candidate, 1e-2 off the reference
    drift = compare_output("y", ref, cand, 1e-5, 1e-5)
    apply_floor(drift, ref, truth, cand, None)
    assert not drift.passed and drift.floor == pytest.approx(1e-3)


def test_the_float64_run_gives_a_shared_module_its_dtypes_back(tmp_path):
    model = toy_models.shared_mlp()
    ckpt = tmp_path / "mlp.pt"
    torch.save(model.state_dict(), ckpt)
    inputs = tmp_path / "x.npz"
    np.savez(inputs, **toy_models.inputs())
    (route,) = compare(ckpt, ckpt, model="toy_models:shared_mlp", inputs=inputs, workers=0).routes
    assert route.status == "pass" and route.outputs[0].source_error > 0
    assert {t.dtype for t in (*model.parameters(), *model.buffers())} == {torch.float32}
