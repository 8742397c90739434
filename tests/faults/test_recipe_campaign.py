"""``portability faults --recipe`` on recipes written as users write them: a residual CNN with
SGD + Nesterov + StepLR and random augmentation, and a transformer with AdamW, warmup and
cosine decay and a GradScaler. Every fault detected, recovered with R >= 0.99, exact resume
routes bitwise, and the worth of each piece of state measured."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from portability.cli import main
from portability.faults.campaign import KINDS
from portability.reports.schema import load_schema, validate


def _campaign(reference: str, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("campaign") / "faults.json"
    assert main(["faults", "--recipe", reference, "--no-tf", "--json", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    assert validate(doc, load_schema("faults")) == []
    return doc


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _campaign("user_recipes:resnet_sgd", tmp_path_factory)


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    return _campaign("user_recipes:transformer_adamw", tmp_path_factory)


def _check_recovery(doc: dict, reference: str) -> None:
    assert doc["passed"] is True
    assert [f["kind"] for f in doc["faults"]] == list(KINDS)
    for f in doc["faults"]:
        assert f["fixture"] == reference and f["detected"] and f["recovered"], f
        assert f["recoverability"] >= 0.99 and f["bitwise_after_recovery"], f
    exact = {r["name"]: r for r in doc["resume"] if r["dtype"] is None}
    assert sorted(exact) == ["safetensors", "torch", "torch->safetensors->torch"]
    assert all(r["bitwise"] and r["max_loss_deviation"] == 0.0 for r in exact.values())


@pytest.mark.slow
def test_residual_cnn_with_sgd_nesterov_steplr_and_augmentation(cnn):
    _check_recovery(cnn, "user_recipes:resnet_sgd")
    assert {(f["recovered_from_step"], f["steps_lost"]) for f in cnn["faults"] if f["kind"] == "truncated-file"} == {
        (20, 12)}  # K = 10: the step-30 checkpoint damaged, step 20 the latest valid


@pytest.mark.slow
def test_the_cnn_needs_its_rng_and_scheduler_to_resume_bitwise(cnn):
    worth = {c["component"]: c for c in cnn["state_components"]}
    assert list(worth) == ["rng", "data-position", "scheduler", "optimizer", "scaler", "model-buffers"]
    for name in ("rng", "scheduler", "data-position", "optimizer", "model-buffers"):
        assert worth[name]["applicable"] and worth[name]["bitwise"] is False, name
    assert worth["rng"]["loss_deviation"] > 0 and worth["scheduler"]["loss_deviation"] > 0
    assert worth["scaler"] == {**worth["scaler"], "applicable": False, "bitwise": None, "R": None,
                               "reason": "the recipe has no scaler"}


@pytest.mark.slow
def test_transformer_with_adamw_warmup_cosine_and_a_grad_scaler(transformer):
    _check_recovery(transformer, "user_recipes:transformer_adamw")
    worth = {c["component"]: c for c in transformer["state_components"]}
    assert worth["model-buffers"]["applicable"] is False  # no BatchNorm: nothing to lose
    assert worth["scaler"]["applicable"] is True and worth["scaler"]["bitwise"] in (True, False)
    for name in ("rng", "scheduler", "optimizer", "data-position"):
        assert worth[name]["bitwise"] is False, name


def test_a_recipe_that_cannot_be_imported_is_a_usage_error(capsys):
    assert main(["faults", "--recipe", "no_such_module_here:recipe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --recipe no_such_module_here:recipe: cannot import") and err.count("\n") == 1


def test_recipe_and_fixture_are_exclusive(capsys):
    assert main(["faults", "--recipe", "user_recipes:resnet_sgd", "--fixture", "mlp"]) == 2
    assert "give --recipe MODULE:FUNCTION (your training recipe) or --fixture NAME|all" in capsys.readouterr().err
