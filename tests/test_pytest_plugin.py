"""The pytest plugin, exercised through pytester: one test per (checkpoint, route)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import toy_models

# Imported here, in the outer process, once: pytester's in-process runs remove the modules they
# imported when they end, and neither ml_dtypes ("DType <class 'ml_dtypes.bfloat16'> appears
# already registered?") nor torch's inductor test operators ("Only a single TORCH_LIBRARY can be
# used to register the namespace _inductor_test", from an ONNX export) can register twice; either
# broke every later in-process run, and the training tests after this file.
pytest.importorskip("ml_dtypes")
pytest.importorskip("torch._inductor.test_operators")

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """``-p portability.pytest_plugin`` unless the pytest11 entry point already loads it."""
    from importlib.metadata import entry_points

    registered = any(ep.value == "portability.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "portability.pytest_plugin"]


@pytest.fixture
def toy_files(pytester):
    model = toy_models.mlp()
    torch.save(model.state_dict(), pytester.path / "toy.pt")
    np.savez(pytester.path / "inputs.npz", **toy_models.inputs())
    return pytester.path / "toy.pt", pytester.path / "inputs.npz"


@pytest.mark.slow
def test_portability_option_adds_one_passing_test_per_route(pytester, toy_files):
    ckpt, inputs = toy_files
    result = pytester.runpytest(*_plugin_args(), "--portability", str(ckpt),
                                "--portability-model", "toy_models:mlp", "--portability-inputs", str(inputs),
                                "--portability-formats", "torch,safetensors", "--portability-workers", "0",
                                "--portability-json", "report.json", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*portability*toy.pt|torch->safetensors* PASSED*",
                                 "*portability*toy.pt|torch->safetensors->torch* PASSED*"])
    assert (pytester.path / "report.json").exists()


@pytest.mark.slow
def test_a_failing_route_prints_the_drift_table(pytester, toy_files):
    ckpt, inputs = toy_files
    result = pytester.runpytest(*_plugin_args(), "--portability", str(ckpt),
                                "--portability-model", "toy_models:noisy", "--portability-inputs", str(inputs),
                                "--portability-routes", "torch->safetensors", "--portability-workers", "0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*toy.pt torch->safetensors: fail - output 'output':*",
                                 "*output*max abs*max rel*min atol*cosine*",
                                 "*output*FAIL (vs float64 *, floor 1.00e-03, source's own *, rtol 1e-05)*"])


@pytest.mark.slow
def test_metric_labels_and_html_options_reach_the_routes(pytester, toy_files):
    ckpt, _ = toy_files
    x = toy_models.inputs()["x"]
    with torch.no_grad():
        labels = toy_models.mlp()(torch.from_numpy(x)).argmax(-1).numpy()
    np.savez(pytester.path / "labelled.npz", x=x, y=labels)
    result = pytester.runpytest(*_plugin_args(), "--portability", str(ckpt),
                                "--portability-model", "toy_models:mlp", "--portability-inputs", "labelled.npz",
                                "--portability-labels", "y", "--portability-metric", "accuracy",
                                "--portability-routes", "torch->safetensors", "--portability-workers", "0",
                                "--portability-json", "report.json", "--portability-html", "report.html")
    result.assert_outcomes(passed=1)
    import json

    (route,) = json.loads((pytester.path / "report.json").read_text())["routes"]
    assert route["recoverability"]["metric"] == "accuracy" and route["recoverability"]["value"] == 1.0
    assert (pytester.path / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_portability_matrix_fixture_parametrizes_a_user_test(pytester, toy_files):
    ckpt, inputs = toy_files
    pytester.makepyfile(test_matrix=f"""
        portability_check = {{"checkpoint": {str(ckpt)!r}, "model": "toy_models:mlp",
                              "inputs": {str(inputs)!r}, "routes": "torch->safetensors,torch->onnx"}}

        def test_route(portability_matrix):
            portability_matrix.assert_passed()
            assert portability_matrix.result.weights.bitwise_equal == 8
    """)
    result = pytester.runpytest(*_plugin_args(), "--portability-workers", "0", "-v", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 2 and "failed" not in outcomes
    result.stdout.fnmatch_lines(["*test_route?*toy.pt|torch->safetensors?* PASSED*"])


def test_options_live_in_one_portability_group(pytester):
    result = pytester.runpytest(*_plugin_args(), "--help")
    result.stdout.fnmatch_lines(["*checkpoint portability checks:*", "*--portability=CHECKPOINT*",
                                 "*--portability-model=SPEC*"])


def test_pytest_help_lists_every_check_option(pytester):
    from portability.cli.options import CHECK_OPTIONS

    result = pytester.runpytest(*_plugin_args(), "--help")
    assert result.ret == 0
    text = result.stdout.str()
    missing = [opt.name for opt in CHECK_OPTIONS if f"--portability-{opt.name}" not in text]
    assert not missing, f"pytest --help lacks --portability-{missing}"


def test_cli_check_help_lists_every_check_option():
    from typer.testing import CliRunner

    from portability.cli import app
    from portability.cli.options import CHECK_OPTIONS

    result = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0
    missing = [opt.name for opt in CHECK_OPTIONS if f"--{opt.name}" not in result.output]
    assert not missing


@pytest.mark.slow
def test_portability_recipe_runs_every_fault_kind_as_a_test(pytester):
    result = pytester.runpytest(*_plugin_args(), "--portability-recipe", "portability.training.torch_recipes:toy_sgd",
                                "-v", "-rs")
    from portability.faults.campaign import KINDS
    from portability.faults.resume_parity import ROUTES

    result.assert_outcomes(passed=len(KINDS) + len(ROUTES))
    result.stdout.fnmatch_lines(["*toy_sgd|fault:kill-mid-step* PASSED*",
                                 "*toy_sgd|resume:torch->safetensors->torch* PASSED*",
                                 "*what each piece of training state is worth*",
                                 "*toy_sgd*scaler*not applicable*the recipe has no scaler*"])


def test_portability_recipe_that_cannot_be_imported_is_a_usage_error(pytester):
    result = pytester.runpytest(*_plugin_args(), "--portability-recipe", "no_such_module_here:recipe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*portability: --recipe no_such_module_here:recipe: cannot import*"])


@pytest.mark.slow
def test_env_rows_are_tests_of_their_own(pytester, toy_files, ort116_env, monkeypatch, tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "envs").symlink_to(ort116_env[1])  # the session's environment, already built
    monkeypatch.setenv("PORTABILITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # toy_models, in the subprocess
    ckpt, inputs = toy_files
    # In a subprocess: an in-process run re-imports torch's exporter after earlier runs removed it.
    result = pytester.runpytest_subprocess(*_plugin_args(), "--portability", str(ckpt),
                                "--portability-model", "toy_models:mlp", "--portability-inputs", str(inputs),
                                "--portability-routes", "torch->onnx", "--portability-opset", "17",
                                "--portability-env", "ort116=onnxruntime==1.16.3,numpy<2",
                                "--portability-workers", "0", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*portability*toy.pt|torch->onnx* PASSED*",
                                 "*portability*toy.pt|torch->onnx|env=ort116* PASSED*"])
