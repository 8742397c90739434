"""Drift statistics, tolerance policy, weight fidelity and recoverability R."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from portability.core.checkpoint import Checkpoint
from portability.harness.drift import DTYPE_DEFAULTS, Tolerance, compare_output, compare_outputs, default_tolerance
from portability.harness.recoverability import judge_recoverability, recoverability_ratio
from portability.harness.weights import compare_weights


def test_dtype_defaults_live_in_one_table():
    assert default_tolerance(np.float32) == (1e-5, 1e-5)
    assert default_tolerance(np.float16) == DTYPE_DEFAULTS["float16"] == (1e-3, 1e-3)
    assert default_tolerance(ml_dtypes.bfloat16) == DTYPE_DEFAULTS["bfloat16"] == (1e-2, 1e-2)
    assert default_tolerance(np.int64) == (0.0, 0.0)


def test_tolerance_dict_uses_empty_key_as_default_and_route_overrides_merge():
    tol = Tolerance(atol={"": 1e-4, "logits": 1e-2}, rtol=1e-3,
                    routes={"torch->onnx": Tolerance(atol={"hidden": 0.5}, min_recoverability=0.9)})
    assert tol.resolve("logits", np.float32) == (1e-2, 1e-3)
    assert tol.resolve("other", np.float32) == (1e-4, 1e-3)
    onnx = tol.for_route("torch->onnx")
    assert onnx.resolve("hidden", np.float32) == (0.5, 1e-3)
    assert onnx.resolve("logits", np.float32) == (1e-2, 1e-3)
    assert onnx.min_recoverability == 0.9
    assert tol.for_route("torch->safetensors").min_recoverability == 0.99
    assert Tolerance().resolve("x", np.float16) == (1e-3, 1e-3)
    assert Tolerance.from_dict(tol.to_dict()) == tol


def test_element_fails_only_when_it_exceeds_both_atol_and_rtol():
    ref = np.array([1000.0, 0.0, 1.0], np.float32)
    big_but_relatively_small = ref + np.array([5e-3, 0, 0], np.float32)  # rel 5e-6 < rtol
    drift = compare_output("y", ref, big_but_relatively_small, atol=1e-5, rtol=1e-5)
    assert drift.passed and drift.failing == 0
    absolutely_off = np.array([1000.0, 5e-3, 1.0], np.float32)  # abs 5e-3 at a zero reference
    drift = compare_output("y", ref, absolutely_off, atol=1e-5, rtol=1e-5)
    assert not drift.passed and drift.failing == 1
    assert drift.max_abs == pytest.approx(5e-3)
    assert drift.min_atol == pytest.approx(5e-3)  # the smallest atol that passes at rtol 1e-5
    assert math.isinf(drift.min_rtol)  # no rtol rescues a zero reference
    assert "1 of 3 elements" in drift.reason and "'y'" in drift.reason
    assert compare_output("y", ref, absolutely_off, atol=drift.min_atol, rtol=1e-5).passed


def test_min_rtol_and_statistics_are_exact():
    ref = np.array([[1.0, 2.0], [4.0, -8.0]], np.float64)
    cand = ref * np.array([[1.0, 1.01], [1.0, 1.02]])
    drift = compare_output("y", ref, cand, atol=0.0, rtol=0.0)
    assert drift.max_abs == pytest.approx(0.16)
    assert drift.mean_abs == pytest.approx((0.02 + 0.16) / 4)
    assert drift.max_rel == pytest.approx(0.02)
    assert drift.min_rtol == pytest.approx(0.02)
    assert drift.top1_agreement == 1.0
    assert drift.cosine == pytest.approx(np.dot(ref.ravel(), cand.ravel()) /
                                         (np.linalg.norm(ref) * np.linalg.norm(cand)))


def test_top1_agreement_counts_rows_whose_argmax_moved():
    ref = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.1], [0.0, 3.0]], np.float32)
    cand = ref.copy()
    cand[2] = [0.1, 0.2]
    drift = compare_output("logits", ref, cand, 1e-5, 1e-5)
    assert drift.top1_agreement == 0.75


def test_padded_positions_are_reported_but_not_judged():
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.int64)
    ref = np.zeros((2, 3, 4), np.float32)
    cand = ref.copy()
    cand[0, 2] = 1.8e-5  # padded
    cand[1, 1:] = 0.5  # padded
    cand[0, 0, 0] = 1.9e-6  # real, inside 1e-5
    drifts = compare_outputs({"hidden": ref, "pooled": ref[:, 0]}, {"hidden": cand, "pooled": cand[:, 0]},
                             Tolerance(), {"attention_mask": mask})
    hidden = drifts[0]
    assert hidden.passed and hidden.padded == 3 * 4 and hidden.judged == 3 * 4
    assert hidden.padded_max_abs == pytest.approx(0.5)
    assert hidden.max_abs == pytest.approx(1.9e-6)
    assert drifts[1].padded_max_abs is None  # (batch, hidden) is not a sequence output
    unmasked = compare_outputs({"hidden": ref}, {"hidden": cand}, Tolerance())[0]
    assert not unmasked.passed and unmasked.failing == 12


def test_shape_mismatch_missing_output_and_nan_fail_with_reasons():
    ref = {"a": np.ones((2, 3), np.float32), "b": np.ones(2, np.float32)}
    drifts = compare_outputs(ref, {"a": np.ones((3, 2), np.float32), "c": np.ones(2)})
    assert "shape [3, 2], reference [2, 3]" in drifts[0].reason
    assert "'b' missing from the candidate (it has: a, c)" in drifts[1].reason
    nan = compare_output("a", np.ones(3), np.array([1.0, np.nan, 1.0]), 1e-5, 1e-5)
    assert not nan.passed and nan.failing == 1 and math.isinf(nan.max_abs)
    both = compare_output("a", np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 0, 0)
    assert both.passed and both.max_abs == 0.0
    lost_inf = compare_output("a", np.array([np.inf, 1.0]), np.array([1e30, 1.0]), 1e-5, 1e-5)
    assert not lost_inf.passed and lost_inf.failing == 1


def test_drift_round_trips_through_json_form():
    drift = compare_output("y", np.zeros(3), np.array([0.0, 1.0, 0.0]), 1e-5, 1e-5)
    from portability.harness.drift import OutputDrift

    again = OutputDrift.from_dict(drift.to_dict())
    assert again.min_rtol == drift.min_rtol and math.isinf(again.min_rtol)
    assert again.to_dict() == drift.to_dict()


def _ckpt(**tensors) -> Checkpoint:
    return Checkpoint(tensors=dict(tensors))


def test_weights_bitwise_renamed_and_unexpected():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    rep = compare_weights(_ckpt(**{"fc.weight": w, "fc.bias": b}),
                          _ckpt(**{"val_3": np.ascontiguousarray(w.T), "fc.bias": b.copy(),
                                   "extra.buffer": np.zeros(1)}))
    assert rep.passed and rep.compared == 2 and rep.bitwise_equal == 2
    assert rep.renamed == {"val_3": "fc.weight"} and rep.unexpected == ["extra.buffer"]


def test_weights_transposed_square_weight_is_named():
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    rep = compare_weights(_ckpt(sq=w), _ckpt(sq=np.ascontiguousarray(w.T)))
    assert not rep.passed
    assert "'sq'" in rep.reason and "equals the reference transposed" in rep.reason
    assert rep.max_abs_diff == 9.0 and rep.bitwise_equal == 0


def test_weights_perturbation_missing_dtype_and_shape_changes():
    w = np.ones((2, 2), np.float32)
    bumped = w.copy()
    bumped[0, 1] += 1e-3
    rep = compare_weights(_ckpt(a=w, b=w), _ckpt(a=bumped, b=w))
    assert not rep.passed and rep.value_changes[0].name == "a"
    assert rep.max_abs_diff == pytest.approx(1e-3, rel=1e-3)
    assert "1 tensor(s) differ beyond atol 0" in rep.reason
    assert compare_weights(_ckpt(a=w), _ckpt(a=bumped), atol=1e-2).passed
    assert compare_weights(_ckpt(a=w), _ckpt(a=bumped), atol=None).reason == ""
    rep = compare_weights(_ckpt(a=w, gone=w), _ckpt(a=w.astype(np.float16)))
    assert rep.missing == ["gone"] and "'gone' missing" in rep.reason
    assert rep.dtype_changes[0].candidate == "float16"
    rep = compare_weights(_ckpt(a=w), _ckpt(a=np.ones((4,), np.float32)))
    assert "'a' has shape [4], reference [2, 2]" in rep.reason
    from portability.harness.weights import WeightReport

    assert WeightReport.from_dict(rep.to_dict()) == rep


def test_recoverability_is_one_when_perfect_and_below_one_when_worse_both_directions():
    assert recoverability_ratio(0.9, 0.9, True) == 1.0
    assert recoverability_ratio(0.9, 0.45, True) == pytest.approx(0.5)
    assert recoverability_ratio(10.0, 20.0, False) == pytest.approx(0.5)  # perplexity doubled
    assert recoverability_ratio(10.0, 5.0, False) == pytest.approx(2.0)
    assert recoverability_ratio(0.0, 0.0, True) == 1.0
    assert recoverability_ratio(0.0, 0.5, True) == math.inf
    assert recoverability_ratio(1.0, float("nan"), True) is None
    assert recoverability_ratio(10.0, math.inf, False) == 0.0
    verdict = judge_recoverability("perplexity", False, 10.0, 10.05, 0.99)
    assert verdict.passed and verdict.value == pytest.approx(10 / 10.05)
    assert not judge_recoverability("accuracy", True, 0.9, 0.0, 0.99)
    assert not judge_recoverability("accuracy", True, 0.9, float("nan"), 0.99)
