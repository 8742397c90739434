"""The TrainingRecipe contract: how a factory is named, imported and checked."""

from __future__ import annotations

import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
import user_recipes

import portability
from portability.errors import UsageError
from portability.training.recipe import TrainingRecipe, factory_reference, load_factory
from portability.training.tasks import get_task, task_names
from portability.training.torch_recipes import recipe_task


def _lambda_recipe():
    return user_recipes.matrix("sgd", "step")


def test_the_contract_is_public_and_keyword_only():
    assert portability.TrainingRecipe is TrainingRecipe
    with pytest.raises(TypeError):
        TrainingRecipe(None, None, None, None, None)
    with pytest.raises(UsageError, match="TrainingRecipe: loss must be callable"):
        TrainingRecipe(model=None, optimizer=None, data=lambda e: [], loss=3, evaluate=lambda m: 0.0)
    with pytest.raises(UsageError, match=r"steps \(0\) and every \(10\) must be positive"):
        TrainingRecipe(model=None, optimizer=None, data=lambda e: [], loss=len, evaluate=len, steps=0)
    r = TrainingRecipe(model=None, optimizer=None, data=lambda e: [], loss=len, evaluate=len)
    assert (r.scheduler, r.scaler, r.higher_is_better, r.steps, r.every, r.metric) == (None, None, True, 60, 10,
                                                                                      "metric")


def test_factory_references():
    assert factory_reference(user_recipes.resnet_sgd) == "user_recipes:resnet_sgd"
    assert factory_reference("mypkg.train:recipe") == "mypkg.train:recipe"
    assert load_factory("user_recipes:resnet_sgd") is user_recipes.resnet_sgd
    with pytest.raises(UsageError, match="module-level function"):
        factory_reference(lambda: None)
    with pytest.raises(UsageError, match="expected MODULE:FUNCTION"):
        factory_reference("mypkg.train")
    with pytest.raises(UsageError, match="cannot import no_such_module_here"):
        load_factory("no_such_module_here:recipe")
    with pytest.raises(UsageError, match="user_recipes has no function 'nope'"):
        load_factory("user_recipes:nope")


def test_a_recipe_file_is_imported_by_path(tmp_path):
    (tmp_path / "helper_for_recipe.py").write_text("SIZE = 3\n")
    (tmp_path / "train.py").write_text(textwrap.dedent("""
        import torch
        from helper_for_recipe import SIZE  # a neighbour of the file

        import portability

        def recipe():
            model = torch.nn.Linear(SIZE, 2)
            batches = [(torch.ones(4, SIZE), torch.zeros(4, dtype=torch.long))] * 3
            return portability.TrainingRecipe(
                model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data=lambda epoch: batches,
                loss=lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1]),
                evaluate=lambda m: 1.0, steps=21, every=5)
    """))
    task = get_task(f"{tmp_path / 'train.py'}:recipe")
    assert (task.steps, task.every, task.components) == (21, 5, ("rng", "data-position", "optimizer"))
    trainable = task.make()
    trainable.train_step()
    assert (trainable.step, trainable.epoch, trainable.batch) == (1, 0, 1)
    sys.modules.pop("helper_for_recipe", None)


def test_factories_that_break_the_contract_are_usage_errors():
    def not_a_recipe():
        return {"model": None}

    def raises():
        raise RuntimeError("no GPU")

    with pytest.raises(UsageError, match="returned a dict, not a portability.TrainingRecipe"):
        recipe_task("x:not_a_recipe", not_a_recipe)
    with pytest.raises(UsageError, match="raised RuntimeError: no GPU"):
        recipe_task("x:raises", raises)

    def wrong_model():
        return TrainingRecipe(model="net", optimizer=None, data=lambda e: [], loss=len, evaluate=len)

    with pytest.raises(UsageError, match="model must be a torch.nn.Module"):
        recipe_task("x:wrong_model", wrong_model)


def test_a_loader_with_a_generator_made_once_is_refused_with_the_reason():
    with pytest.raises(UsageError, match=r"data\(0\) gave a different first batch.*seed it inside data\(epoch\)"):
        get_task("user_recipes:shared_generator")


def test_a_loss_that_is_not_a_scalar_tensor_is_named():
    def bad_loss():
        recipe = user_recipes.matrix("adam", "step")
        recipe.loss = lambda model, batch: model(batch[0])
        return recipe

    trainable = recipe_task("x:bad_loss", bad_loss).make()
    with pytest.raises(UsageError, match="loss\\(model, batch\\) must return a scalar tensor"):
        trainable.train_step()


def test_the_zoo_and_the_builtins_are_recipes_and_the_keras_fixture_is_not():
    names = task_names()
    assert {"mlp", "cnn", "toy-mlp", "toy-sgd"} <= set(names)
    assert get_task("toy-sgd").components == ("rng", "data-position", "scheduler", "optimizer")
    assert get_task("cnn").components == ("rng", "data-position", "scheduler", "optimizer", "model-buffers")
    with pytest.raises(UsageError, match="no training recipe for 'nope'.*MODULE:FUNCTION"):
        get_task("nope")


def test_recipe_modules_import_without_each_other():
    """torch_recipes and keras_recipes build tasks; only the registry imports them."""
    import ast
    from pathlib import Path

    import portability.training as training

    folder = Path(training.__file__).parent
    for name, other in (("torch_recipes", "keras_recipes"), ("keras_recipes", "torch_recipes")):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert f"portability.training.{other}" not in imported, name
