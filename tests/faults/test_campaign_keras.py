"""Resume parity and the fault campaign on the TensorFlow/Keras fixture ``keras-cnn``.

On CPU, with TensorFlow op determinism on one thread, a Keras run interrupted
and resumed through the safetensors (and torch ``.pt``) writers continues with
loss values identical bit for bit to the uninterrupted run's: the tests assert
bitwise equality, not a tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from portability.core.tensors import as_array
from portability.errors import FormatError
from portability.faults.campaign import KINDS, MIN_R
from portability.faults.resume_parity import loss_deviation
from portability.training.driver import TrainConfig, checkpoint_path, load_checkpoint, save_checkpoint, train
from portability.training.keras_recipes import KerasFixtureTrainable
from portability.training.tasks import get_task, task_names

NAME, TOTAL, RESUME_AT = "keras-cnn", 12, 6


@pytest.fixture(scope="module")
def recipe():
    return get_task(NAME)


@pytest.fixture(scope="module")
def reference(recipe):
    """The uninterrupted run: TOTAL steps from a fresh start."""
    return train(recipe.make(), TrainConfig(TOTAL))


def test_keras_cnn_has_a_get_task(recipe):
    assert NAME in task_names()
    trainable = recipe.make()
    assert isinstance(trainable, KerasFixtureTrainable) and trainable.step == 0


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_interrupted_and_resumed_run_is_bitwise_identical(recipe, reference, tmp_path, fmt):
    first = recipe.make()
    train(first, TrainConfig(RESUME_AT))
    path = save_checkpoint(first.capture(), checkpoint_path(tmp_path, RESUME_AT, fmt), fmt)
    del first  # the resumed run must rely on the file alone

    resumed = recipe.make()
    resumed.restore(load_checkpoint(path))
    assert resumed.step == RESUME_AT
    run = train(resumed, TrainConfig(TOTAL))

    assert sorted(run.losses) == list(range(RESUME_AT + 1, TOTAL + 1))
    bitwise, max_dev, max_rel = loss_deviation(reference.losses, run.losses)
    assert bitwise, f"resumed losses deviate by up to {max_dev} (relative {max_rel})"
    assert max_dev == 0.0
    assert run.final_metric == reference.final_metric


@pytest.mark.slow
def test_checkpoint_holds_keras_adam_state_in_torch_layout(recipe, tmp_path):
    trainable = recipe.make()
    train(trainable, TrainConfig(2))
    path = save_checkpoint(trainable.capture(), checkpoint_path(tmp_path, 2, "safetensors"), "safetensors")
    ckpt = load_checkpoint(path)
    ts = ckpt.training
    assert ts.global_step == 2 and ts.data_position["step"] == 2
    assert ts.optimizer.param_groups[0]["epsilon_placement"] == "keras"
    variables = trainable.model.trainable_variables
    slots = {v.path.split("/", 1)[-1]: np.asarray(v.numpy()) for v in trainable.optimizer.variables}
    assert len(ts.optimizer.state) == len(variables)
    for index, variable in enumerate(variables):
        state = ts.optimizer.state[index]
        stem = variable.path.replace("/", "_")
        assert np.array_equal(as_array(state["exp_avg"]), slots[stem + "_momentum"])
        assert np.array_equal(as_array(state["exp_avg_sq"]), slots[stem + "_velocity"])
        assert float(as_array(state["step"])) == 2.0
    for variable in trainable.model.weights:  # BatchNorm moving statistics included
        assert np.array_equal(as_array(ckpt.tensors[variable.path]), np.asarray(variable.numpy()))


@pytest.mark.slow
def test_restore_refuses_a_weights_only_checkpoint(recipe):
    trainable = recipe.make()
    ckpt = trainable.capture()
    ckpt.training.optimizer = None
    with pytest.raises(FormatError, match="no optimizer state"):
        recipe.make().restore(ckpt)


CAMPAIGN = """
import dataclasses, json, sys
from portability.faults.campaign import KINDS, run_campaign
campaign = run_campaign("keras-cnn", KINDS, steps=13, every=3, work=sys.argv[1])
print(json.dumps({"passed": bool(campaign), "faults": [dataclasses.asdict(f) for f in campaign.faults]}))
"""


@pytest.mark.slow
def test_every_fault_kind_is_detected_and_recovered_on_keras_cnn(tmp_path):
    # A fresh interpreter, as the CLI runs it: TensorFlow fixes its thread pools when
    # its runtime starts, so the in-process reference run and the training workers
    # only agree bit for bit when both start TF themselves (pinned to one thread).
    proc = subprocess.run([sys.executable, "-c", CAMPAIGN, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    faults = result["faults"]
    # K = 3: checkpoints at 3, 6, 9; file faults strike after step 11 and damage step 9.
    assert [f["kind"] for f in faults] == list(KINDS)
    for fault in faults:
        assert fault["detected"], f"{fault['kind']}: {fault['detail']}"
        assert fault["recovered"], fault["kind"]
        assert fault["recoverability"] is not None and fault["recoverability"] >= MIN_R, fault["kind"]
        assert fault["bitwise_after_recovery"], f"{fault['kind']}: recovered losses differ from the reference"
    by_kind = {f["kind"]: f for f in faults}
    # A damaged step-9 checkpoint is refused, so recovery falls back to step 6.
    for kind in ("truncated-file", "bitflip-tensor-data", "bitflip-header", "missing-shard",
                 "missing-optimizer-state"):
        assert by_kind[kind]["recovered_from_step"] == 6, kind
    assert by_kind["stale-temporary"]["recovered_from_step"] == 9
    assert by_kind["kill-mid-step"]["recovered_from_step"] == 9  # killed inside step 12
    assert by_kind["kill-during-write"]["recovered_from_step"] == 9  # killed writing step 12
    assert result["passed"]
