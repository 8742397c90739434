"""ONNX -> TensorFlow op translators, registered by op type on import."""

from portability.adapters.tf_savedmodel.ops import (elementwise, nn_ops, sequence_ops,  # noqa: F401
                                                    shape_ops)
from portability.adapters.tf_savedmodel.ops.registry import (OpContext, register, supported_ops,
                                                             translator_for)

__all__ = ["OpContext", "register", "supported_ops", "translator_for"]
