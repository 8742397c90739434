"""TF SavedModel adapter.

Export: PyTorch -> ONNX (the ONNX adapter) -> a ``tf.Module`` built op by op
from TF ops (``ops/``), whose ``tf.Variable``s are the checkpoint's tensors
under their state_dict names, saved with a ``serving_default`` signature with
dynamic batch and sequence dimensions. Nothing is written unless the whole
graph translated.

``translate(model)`` is the translator itself: it turns an ONNX ModelProto
into a ``tf.Module`` called as ``module(**named_inputs)`` or ``module.serve``.
``ops.supported_ops()`` lists the op types it covers; ``conformance`` runs
ONNX's own node test cases through it (``python benchmarks/onnx_conformance.py``
prints the census), and ``ops/known_gaps.py`` lists the cases it cannot do.

Import: the variables are read from the SavedModel's variables checkpoint
without loading or running the graph. Ours come back bitwise under their
state_dict names; Keras-native ones under Keras names (see ``keras_mapping``
to port them onto a PyTorch twin).
"""

from __future__ import annotations

from pathlib import Path

from portability.checkpoint import Checkpoint
from portability.formats import ReadOptions, WriteOptions
from portability.adapters.tf_savedmodel.export_route import onnx_graph_for
from portability.adapters.tf_savedmodel.graph import translate
from portability.adapters.tf_savedmodel.runner import TFSavedModelRunner
from portability.adapters.tf_savedmodel.savedmodel_io import read_savedmodel, save_module

__all__ = ["read", "write", "runner", "detect", "translate"]


def detect(path: str | Path) -> bool:
    """Whether ``path`` is a SavedModel directory."""
    path = Path(path)
    return path.is_dir() and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


def read(path: str | Path, options: ReadOptions = ReadOptions()) -> Checkpoint:
    """Read a SavedModel's variables (never its graph) into a Checkpoint.

    Raises:
        FormatError: not a SavedModel, or its variables cannot be read.
        IntegrityError: a variable differs from the checksum our export recorded.
    """
    return read_savedmodel(Path(path), verify=options.verify)


def write(ckpt: Checkpoint, path: str | Path, options: WriteOptions = WriteOptions()) -> None:
    """Export ``ckpt`` as a SavedModel computing its model's forward pass.

    Args:
        ckpt: the weights (and optional training state).
        path: the directory to create (the caller publishes it atomically).
        options: ``model`` (a model spec) is required unless
            ``extra["onnx"]`` names an ONNX file to translate; ``opset`` is
            passed to the ONNX export.

    Raises:
        UsageError: no model spec.
        UnsupportedOpError: an ONNX op (named, with its node) has no translation.
    """
    graph = onnx_graph_for(ckpt, options)
    module = translate(graph, ckpt)
    save_module(module, ckpt, Path(path))


def runner(path: str | Path) -> TFSavedModelRunner:
    """A runner calling the SavedModel's ``serving_default`` signature."""
    return TFSavedModelRunner(path)
