"""What each piece of training state is worth: resume with one piece left fresh."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from portability.faults.state_components import state_components
from portability.training.driver import TrainConfig, train
from portability.training.tasks import get_task


@pytest.fixture(scope="module")
def toy_sgd():
    return {c.component: c for c in state_components(get_task("toy-sgd"), 24, 10)}


def test_every_component_is_reported_in_order(toy_sgd):
    assert list(toy_sgd) == ["rng", "data-position", "scheduler", "optimizer", "scaler", "model-buffers"]


def test_components_the_run_lacks_are_not_applicable_rather_than_bitwise(toy_sgd):
    for name, why in (("scaler", "the recipe has no scaler"), ("model-buffers", "the model has no buffers")):
        c = toy_sgd[name]
        assert (c.applicable, c.bitwise, c.loss_deviation, c.R, c.reason) == (False, None, None, None, why)


def test_losing_state_the_run_uses_breaks_bitwise_resume_and_is_measured(toy_sgd):
    """Dropout draws from torch's RNG, the data is shuffled per epoch, StepLR decays at step 12 and
    24, and SGD keeps momentum: each piece, lost, changes the run."""
    for name in ("rng", "data-position", "scheduler", "optimizer"):
        c = toy_sgd[name]
        assert c.applicable and c.bitwise is False and c.loss_deviation > 0, name
        assert c.resumed_from_step == 10 and c.R > 0 and c.reference_metric > 0.5


def test_a_resume_that_keeps_everything_is_bitwise():
    """The baseline the components are judged against: nothing dropped, nothing changes."""
    from portability.faults.state_components import same_state

    task = get_task("toy-sgd")
    reference_run = task.make()
    reference = train(reference_run, TrainConfig(24))
    first = task.make()
    train(first, TrainConfig(10))
    saved = first.capture()  # before the next make(), which seeds the process's generators
    resumed = task.make()
    resumed.restore(saved)
    run = train(resumed, TrainConfig(24))
    assert all(reference.losses[s] == v for s, v in run.losses.items()) and len(run.losses) == 14
    assert same_state(resumed.capture(), reference_run.capture())


def test_model_buffers_matter_at_the_end_even_when_every_loss_matches():
    """BatchNorm trains on batch statistics: losses stay identical without the saved running
    statistics, but the final model (and what eval mode computes) does not."""
    c = {c.component: c for c in state_components(get_task("user_recipes:resnet_sgd"), 24, 10)}["model-buffers"]
    assert c.applicable and c.loss_deviation == 0.0 and c.bitwise is False
