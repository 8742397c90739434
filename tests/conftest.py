"""Shared test helpers (``toy_models``, ``onnx_toys``, ``onnx_cases``, ``worker_jobs``) live in
this folder; tests in subfolders import them by module name, and model specs name them
(``toy_models:mlp``), so the folder goes on ``sys.path`` whatever subset of tests runs."""

import sys
from pathlib import Path

import pytest

TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


def pytest_collection_modifyitems(config, items):
    """The ``realworld`` tier downloads wheels and runs for longer than CI allows: it runs
    only when ``-m`` names it (``pytest -m realworld``), whatever else ``-m`` says."""
    if "realworld" in (config.getoption("markexpr", "") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("realworld") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept



ORT116 = "ort116=onnxruntime==1.16.3,numpy<2"


@pytest.fixture(scope="session")
def ort116_env(tmp_path_factory):
    """onnxruntime 1.16.3 + numpy < 2, built once per session with uv into a temporary
    cache; yields (Env, cache folder). Skips when uv cannot reach the package index."""
    from portability.envs.builder import prepare
    from portability.envs.spec import parse_env
    from portability.errors import EnvError

    pytest.importorskip("uv")
    cache = tmp_path_factory.getbasetemp() / "deployment-envs"
    try:
        return prepare(parse_env(ORT116), cache=cache), cache
    except EnvError as exc:
        if "no network" in str(exc):
            pytest.skip(f"cannot build {ORT116}: {exc}")
        raise
