"""The TF SavedModel adapter (``TFSavedModelAdapter``).

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

``translate(model)`` turns an in-memory ``onnx.ModelProto`` into a callable TF
module (``module(**named_inputs)`` or ``module.serve``). Importing this package
imports no framework; ``translate`` loads TensorFlow on first use.
"""

from __future__ import annotations

from typing import Any

from portability.adapters.tf_savedmodel.adapter import TFSavedModelAdapter

ADAPTER = TFSavedModelAdapter()
read, write, runner, detect = ADAPTER.read, ADAPTER.write, ADAPTER.runner, ADAPTER.detect

__all__ = ["TFSavedModelAdapter", "read", "write", "runner", "detect", "translate"]


def __getattr__(name: str) -> Any:
    if name == "translate":
        from portability.adapters.tf_savedmodel.graph import translate

        return translate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
