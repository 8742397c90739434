"""The fault campaign on the mlp fixture: every fault detected, recovered, R >= 0.99."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
from portability.faults.campaign import KINDS, run_campaign

# K = 5, N = 30: file faults strike at step 17 and damage the step-15 checkpoint.
EXPECTED = {
    "kill-mid-step": (15, 2), "kill-during-write": (15, 5), "truncated-file": (10, 7),
    "bitflip-tensor-data": (10, 7), "bitflip-header": (10, 7), "missing-shard": (10, 7),
    "stale-temporary": (15, 2), "missing-optimizer-state": (10, 7),
}


@pytest.fixture(scope="module")
def campaign():
    return run_campaign("mlp", steps=30, every=5)


@pytest.mark.slow
def test_every_fault_kind_is_covered(campaign):
    assert [f.kind for f in campaign.faults] == list(KINDS) == list(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fault_is_detected_and_recovered_from_the_latest_valid_checkpoint(campaign, kind):
    fault = next(f for f in campaign.faults if f.kind == kind)
    assert fault.detected, fault.detail
    assert fault.recovered
    assert (fault.recovered_from_step, fault.steps_lost) == EXPECTED[kind]
    assert fault.recoverability is not None and fault.recoverability >= 0.99
    assert fault.bitwise_after_recovery, "recovery from a valid checkpoint must replay the same losses"
    assert fault.time_to_recover_s is not None and fault.time_to_recover_s >= 0
    assert bool(fault)


@pytest.mark.slow
def test_damaged_checkpoints_are_refused_with_typed_errors(campaign):
    refused = {f.kind: f.detail for f in campaign.faults}
    assert "IntegrityError" in refused["bitflip-tensor-data"]
    assert "FormatError" in refused["missing-shard"] and "missing" in refused["missing-shard"]
    assert "no optimizer state" in refused["missing-optimizer-state"]
    assert "Error" in refused["truncated-file"] and "Error" in refused["bitflip-header"]


@pytest.mark.slow
def test_campaign_result_is_truthy_and_serialisable(campaign):
    import json

    assert campaign and campaign.reference_metric > 0.5
    doc = json.loads(json.dumps(campaign.to_dict()))
    keys = {"kind", "detected", "recovered", "recovered_from_step", "steps_lost", "recoverability",
            "time_to_recover_s"}
    assert all(keys <= set(entry) for entry in doc["faults"])


def test_unknown_kind_and_too_short_runs_are_usage_errors():
    from portability.errors import UsageError

    with pytest.raises(UsageError, match="unknown fault kind"):
        run_campaign("toy-mlp", kinds=("meteor",))
    with pytest.raises(UsageError, match="too few"):
        run_campaign("toy-mlp", steps=10, every=5)
