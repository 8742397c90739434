"""Shared test helpers (``toy_models``, ``onnx_toys``, ``onnx_cases``, ``worker_jobs``) live in
this folder; tests in subfolders import them by module name, and model specs name them
(``toy_models:mlp``), so the folder goes on ``sys.path`` whatever subset of tests runs."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
