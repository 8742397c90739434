"""ONNX adapter, installed as ``portability.adapters.onnx``.

- ``write(ckpt, path, options)``: export the model ``options.model`` names,
  holding ``ckpt``'s weights, with the torch.export-based exporter;
- ``read(path, options)``: the weights back under their state_dict names and
  layouts, bitwise (see ``reader.py``);
- ``runner(path)``: onnxruntime on CPU, after ``onnx.checker`` passes.

``export_model`` and ``export_checkpoint`` are the entry points for other
adapters that need an ONNX graph (the TF adapter converts from it).
"""

from __future__ import annotations

from pathlib import Path

from portability.core.checkpoint import Checkpoint
from portability.errors import UsageError
from portability.core.formats import WriteOptions
from portability.adapters.onnx.export import ExportResult, export_checkpoint, export_model
from portability.adapters.onnx.reader import UnmappedWeightsWarning, read
from portability.adapters.onnx.runtime import OnnxRuntimeRunner, check_model

__all__ = ["ExportResult", "OnnxRuntimeRunner", "UnmappedWeightsWarning", "check_model",
           "export_checkpoint", "export_model", "read", "runner", "write"]


def write(ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
    """Export ``ckpt`` as the graph of the model ``options.model`` names.

    ``options.extra`` may hold ``inputs`` (an ``.npz`` path) and
    ``external_data`` (bool, directory destinations only). Training state is
    not stored: ONNX holds weights and graph only (``FormatSpec.keeps_training_state``
    says so, and ``portability convert`` tells the user).

    Raises:
        UsageError: no ``--model`` given, or a bad destination.
        FormatError, UnsupportedOpError: the model cannot be built or exported.
    """
    if not options.model:
        raise UsageError("writing ONNX needs the model's code: pass --model SPEC "
                         "(fixture:NAME, hf:DIR or package.module:factory)")
    export_checkpoint(ckpt, options.model, path, opset=options.opset,
                      inputs=options.extra.get("inputs"), external_data=options.extra.get("external_data"))


def runner(path: str | Path) -> OnnxRuntimeRunner:
    """An onnxruntime CPU runner for an ``.onnx`` file or a directory holding one."""
    return OnnxRuntimeRunner(path)
