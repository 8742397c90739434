"""A recipe's run: exact resume for the optimizers and schedules users have, across epochs,
through torch and safetensors files; the RNG forms checkpoints carry."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import user_recipes

from portability.faults.resume_parity import resume_parity
from portability.training.driver import TrainConfig, checkpoint_path, load_checkpoint, save_checkpoint, train
from portability.training.rng_forms import rng_states, set_rng_states
from portability.training.torch_recipes import recipe_task


def _task(optimizer: str, schedule: str):
    return recipe_task(f"user_recipes:matrix[{optimizer},{schedule}]",
                       lambda: user_recipes.matrix(optimizer, schedule))


@pytest.mark.parametrize("schedule", sorted(user_recipes.SCHEDULES))
@pytest.mark.parametrize("optimizer", sorted(user_recipes.OPTIMIZERS))
def test_every_optimizer_and_schedule_resumes_bitwise_mid_epoch(optimizer, schedule):
    """16 steps of 6 batches an epoch, resumed at step 8 (epoch 1, batch 2) through each route."""
    results = {r.route: r for r in resume_parity(_task(optimizer, schedule).make, 16, 8,
                                                 routes=("torch", "torch->safetensors->torch", "safetensors"))}
    assert all(r.bitwise for r in results.values()), {k: r.max_loss_deviation for k, r in results.items()}


def test_checkpoint_records_position_epoch_start_rng_scheduler_and_scaler(tmp_path):
    task = recipe_task("user_recipes:transformer_adamw", user_recipes.transformer_adamw)
    trainable = task.make()
    train(trainable, TrainConfig(14))  # 12 batches an epoch: step 14 is batch 2 of epoch 1
    path = save_checkpoint(trainable.capture(), checkpoint_path(tmp_path, 14, "safetensors"), "safetensors")
    ts = load_checkpoint(path).training
    assert ts.data_position == {"epoch": 1, "batch": 2} and ts.epoch == 1 and ts.global_step == 14
    assert set(ts.rng) == {"python", "numpy", "torch", "epoch_start"}
    assert set(ts.rng["epoch_start"]) == {"python", "numpy", "torch"}
    assert ts.scheduler["_milestones"] == [8] and len(ts.scheduler["_schedulers"]) == 2
    assert ts.extra["scaler_state_dict"]["_growth_tracker"] == 4 and ts.extra["scaler_state_dict"]["scale"] > 1024


def test_a_shuffled_loader_replays_its_permutation_after_a_mid_epoch_resume():
    """The loader draws its order from torch's generator at the epoch's start; resuming mid-epoch
    must skip over that same order, not a fresh one."""
    task = recipe_task("user_recipes:resnet_sgd", user_recipes.resnet_sgd)
    first = task.make()
    train(first, TrainConfig(11))  # 8 batches an epoch: stop at batch 3 of epoch 1
    state = first.capture()
    expected = [first._next_batch()[1] for _ in range(3)]
    resumed = task.make()
    resumed.restore(state)
    got = [resumed._next_batch()[1] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    lost = task.make()
    lost.restore(state, drop=("rng",))  # the epoch's start state lost: another permutation
    assert not all(torch.equal(a, lost._next_batch()[1]) for a in expected)


def test_rng_states_are_restored_from_our_form_and_the_trainers_tuples():
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    ours = rng_states()
    trainer_form = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    for states in (ours, trainer_form):
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        set_rng_states(states)
        assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected


def test_malformed_rng_state_is_a_format_error():
    from portability.errors import FormatError

    with pytest.raises(FormatError, match="RNG states are malformed"):
        set_rng_states({"numpy": {"kind": "MT19937"}})
