"""portability: move checkpoints between PyTorch, safetensors, ONNX and TensorFlow,
and check that the model survived the move.

Importing this package imports no framework; adapters load theirs on first use.
"""

from __future__ import annotations

# The faults package is callable: portability.faults(recipe=...) runs the campaign.
from portability import faults
from portability.core.checkpoint import Checkpoint, OptimizerState, TrainingState
from portability.errors import (
    FormatError,
    IntegrityError,
    ModelError,
    PortabilityError,
    ToleranceError,
    UnsafeCheckpointError,
    UnsupportedOpError,
    UsageError,
    WriteError,
)
from portability.training.recipe import TrainingRecipe

__version__ = "0.1.0"


def _guard_import_order() -> None:
    from portability.core import import_order

    import_order.guard()


_guard_import_order()


def convert(src, dst, **kwargs):
    """Convert a checkpoint; see ``portability.core.conversion.convert`` (``weights_only=True``
    writes the weights alone where the training state would otherwise be refused)."""
    from portability.core.conversion import convert as _convert

    return _convert(src, dst, **kwargs)


def load(path, fmt=None, *, trust_pickle=False, weights_only=False):
    """Read any supported checkpoint into a ``Checkpoint`` (``weights_only``: no training state)."""
    from portability.core.conversion import read_checkpoint
    from portability.core.formats import ReadOptions

    return read_checkpoint(path, fmt, ReadOptions(trust_pickle=trust_pickle, weights_only=weights_only))[0]


def check(checkpoint=None, **kwargs):
    """Check every conversion route; returns a ``Report`` (truthy iff all passed).
    See ``portability.api.check``."""
    from portability.api import check as _check

    return _check(checkpoint, **kwargs)


def compare(reference, candidate, **kwargs):
    """Judge one artifact against another; see ``portability.api.compare``."""
    from portability.api import compare as _compare

    return _compare(reference, candidate, **kwargs)


__all__ = [
    "Checkpoint", "OptimizerState", "TrainingState", "TrainingRecipe", "convert", "faults", "load", "check", "compare",
    "PortabilityError", "FormatError", "IntegrityError", "UnsafeCheckpointError",
    "ToleranceError", "UnsupportedOpError", "UsageError", "WriteError", "ModelError",
]
