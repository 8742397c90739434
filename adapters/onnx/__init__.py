"""The ONNX adapter (``OnnxAdapter``), installed as ``portability.adapters.onnx``.

Modules: ``export`` (torch model -> ONNX), ``reader`` (weights back under their
state_dict names, bitwise), ``name_map``/``recover`` (the name records),
``runtime`` (onnxruntime), ``safety`` (external data stays in the model's folder),
``tensors`` (TensorProto <-> numpy with identical bits).

Importing this package imports no framework. The module-level ``read``,
``write``, ``runner`` and ``detect`` are the adapter's methods; ``export_model``,
``export_checkpoint``, ``check_model`` and friends load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from portability.adapters.onnx.adapter import OnnxAdapter

ADAPTER = OnnxAdapter()
read, write, runner, detect = ADAPTER.read, ADAPTER.write, ADAPTER.runner, ADAPTER.detect

_LAZY = {"ExportResult": "export", "export_checkpoint": "export", "export_model": "export",
         "UnmappedWeightsWarning": "reader", "OnnxRuntimeRunner": "runtime", "check_model": "runtime"}

__all__ = ["OnnxAdapter", "read", "write", "runner", "detect", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
