"""Keep TensorFlow's, absl's, Keras' and onnxruntime's start-up chatter out of our output.

Called before any framework is imported (by the CLI unless ``--debug``, and by
every worker process). Each framework has its own switch:

- TensorFlow's C++ notices (CPU features, oneDNN) read ``TF_CPP_MIN_LOG_LEVEL``
  once, when TF loads; 2 keeps errors only.
- TensorFlow's and absl's Python warnings go through the ``tensorflow`` and
  ``absl`` loggers; Keras and TF also raise ``UserWarning``s from their modules.
- onnxruntime has no environment variable for its log level, so the severity is
  set right after ``onnxruntime`` is imported, by a one-shot import hook; no
  framework is imported here.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable

_NOISY_MODULES = r"(keras|tensorflow|tf_keras|tf2onnx|absl|onnxruntime)(\.|$)"
ORT_ERROR_SEVERITY = 3


class _AfterImport(importlib.abc.MetaPathFinder):
    """Run ``action(module)`` once, right after ``name`` is first imported."""

    def __init__(self, name: str, action: Callable) -> None:
        self.name = name
        self.action = action

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module
        action = self.action

        def exec_module(module):
            original(module)
            action(module)

        spec.loader.exec_module = exec_module
        return spec


def _quiet_onnxruntime(module) -> None:
    setter = getattr(module, "set_default_logger_severity", None)
    if setter is not None:
        setter(ORT_ERROR_SEVERITY)


def quiet_frameworks() -> None:
    """Silence the frameworks' start-up and informational output (errors still show).

    Environment variables already set by the user win over ours.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    for name in ("tensorflow", "absl", "keras", "tf2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=_NOISY_MODULES)
    if "onnxruntime" in sys.modules:
        _quiet_onnxruntime(sys.modules["onnxruntime"])
    elif not any(isinstance(f, _AfterImport) and f.name == "onnxruntime" for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("onnxruntime", _quiet_onnxruntime))
