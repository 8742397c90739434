"""ONNX -> TensorFlow op translators, registered by op type on import."""

import importlib

from portability.adapters.tf_savedmodel.ops.registry import OpContext, register, supported_ops, translator_for

# Each family registers its translators when imported.
FAMILIES = ("channels_last_ops", "conv", "elementwise", "index_ops", "layout_ops", "nn_ops", "pooling", "random_ops",
            "reduce_ops", "resize", "rnn", "sequence_ops", "shape_ops")
for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")

__all__ = ["FAMILIES", "OpContext", "register", "supported_ops", "translator_for"]
