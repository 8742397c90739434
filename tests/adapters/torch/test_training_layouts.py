"""The training checkpoints people save, as sources: the tutorial dict
``{epoch, model_state_dict, optimizer_state_dict, loss}`` and Lightning's ``.ckpt``
(``state_dict``, ``optimizer_states``, ``lr_schedulers``, ``loops``). For each:
``inspect`` shows the training state, safetensors and back keeps every tensor and
value, and a recipe resumes from it exactly as from the converted files."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
import user_recipes
from nested_asserts import assert_same

from portability.core.conversion import convert
from portability.core.inspection import inspect_checkpoint
from portability.faults.resume_from import resume_from
from portability.training.driver import TrainConfig, train
from portability.training.torch_recipes import recipe_task


def sgd_step() -> object:
    return user_recipes.matrix("sgd", "step")


def adamw_cosine() -> object:
    return user_recipes.matrix("adamw", "cosine")


def _trained(factory, steps: int):
    task = recipe_task(f"test_training_layouts:{factory.__name__}", factory)
    trainable = task.make()
    train(trainable, TrainConfig(steps))
    return task, trainable


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """Saved when epoch 1 ends (6 batches an epoch): SGD momentum buffers, no step counter."""
    task, t = _trained(sgd_step, 12)
    path = tmp_path_factory.mktemp("tutorial") / "checkpoint.pt"
    torch.save({"epoch": 1, "model_state_dict": t.model.state_dict(),
                "optimizer_state_dict": t.optimizer.state_dict(), "loss": torch.tensor(t.loss_value)}, path)
    return task, path


@pytest.fixture(scope="module")
def lightning(tmp_path_factory):
    """Lightning 2.x's layout, as ``Trainer.save_checkpoint`` writes it for a module holding ``self.model``."""
    task, t = _trained(adamw_cosine, 5)
    path = tmp_path_factory.mktemp("lightning") / "epoch=0-step=5.ckpt"
    loops = {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 5},
                          "epoch_loop.batch_progress": {"total": {"ready": 5, "completed": 5},
                                                        "is_last_batch": False},
                          "epoch_progress": {"total": {"ready": 1, "started": 1, "processed": 0, "completed": 0}}}}
    torch.save({"epoch": 0, "global_step": 5, "pytorch-lightning_version": "2.5.0",
                "state_dict": {f"model.{k}": v for k, v in t.model.state_dict().items()}, "loops": loops,
                "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": None, "dirpath": "/ckpt"}},
                "optimizer_states": [t.optimizer.state_dict()],
                "lr_schedulers": [t.recipe.scheduler.state_dict()],
                "hparams_name": "kwargs", "hyper_parameters": {"lr": 0.01, "hidden": 16}}, path)
    return task, path


def test_inspect_shows_the_tutorial_training_state(tutorial):
    info = inspect_checkpoint(tutorial[1])
    ts = info["training_state"]
    assert info["layout"] == "classic" and ts["optimizer"]["kind"] == "SGD"
    assert ts["optimizer"]["parameters_with_state"] == 4 and ts["epoch"] == 1 and ts["loss"] is not None


def test_inspect_shows_the_lightning_training_state(lightning):
    info = inspect_checkpoint(lightning[1])
    ts = info["training_state"]
    assert info["layout"] == "lightning" and info["weights_key"] == "state_dict"
    assert ts["optimizer"] == {"kind": "AdamW", "param_groups": 1, "parameters_with_state": 4}
    assert ts["scheduler"] is True and ts["global_step"] == 5 and ts["epoch"] == 0
    assert {"loops", "callbacks", "hyper_parameters", "pytorch-lightning_version"} <= set(ts["extra_keys"])


@pytest.mark.parametrize("which", ["tutorial", "lightning"])
def test_safetensors_and_back_keeps_every_tensor_and_value(which, request, tmp_path):
    _task, path = request.getfixturevalue(which)
    convert(path, tmp_path / "state.safetensors")
    convert(tmp_path / "state.safetensors", tmp_path / f"back{path.suffix}")
    original = torch.load(path, weights_only=True)
    back = torch.load(tmp_path / f"back{path.suffix}", weights_only=True)
    assert_same(original, back)  # momentum buffers / AdamW moments bit for bit, key order, every value


@pytest.mark.parametrize("which", ["tutorial", "lightning"])
def test_resume_parity_starts_from_the_checkpoint(which, request):
    task, path = request.getfixturevalue(which)
    at = 12 if which == "tutorial" else 5  # the tutorial resumes where epoch 2 begins
    results = resume_from(task, path, steps=4)
    assert [(r.route, r.resumed_from_step, r.bitwise) for r in results] == [
        ("safetensors", at, True), ("safetensors->back", at, True)]


def test_lightning_resume_continues_the_saved_run(lightning):
    """Restored from the .ckpt (names under ``model.``, no RNG saved), the recipe takes the
    batches after step 5 with the saved moments and schedule."""
    task, path = lightning
    from portability.core.conversion import read_checkpoint

    ckpt, _ = read_checkpoint(path)
    resumed = task.make()
    resumed.restore(copy.deepcopy(ckpt))
    assert resumed.step == 5 and (resumed.epoch, resumed.batch) == (0, 5)
    assert resumed.recipe.scheduler.last_epoch == 5
    saved = torch.load(path, weights_only=True)["optimizer_states"][0]["state"]
    for pid, p in enumerate(resumed.model.parameters()):
        assert torch.equal(resumed.optimizer.state[p]["exp_avg"], saved[pid]["exp_avg"])
