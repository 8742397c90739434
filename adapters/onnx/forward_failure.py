"""Why a model's forward failed on the example inputs: the inputs, or the model's own code.

A framework that rejects inputs (wrong shape, dtype, an index past the vocabulary)
raises a ``RuntimeError`` or ``IndexError`` from one of its C++ ops, or a
``ValueError``/``TypeError``/``AssertionError`` from its own Python code (a missing
``input_ids``, an attention mask of the wrong size). Anything else (an
``AttributeError``, a ``ZeroDivisionError``, ``NotImplementedError``, an ``assert`` in
the model's own file) is a fault of the model, and saying that the inputs are wrong
would send the user the wrong way.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import numpy as np

from portability.errors import ModelError, PortabilityError, UsageError

# What torch's C++ ops raise for inputs they cannot take (wherever the call was written),
# and what a framework's Python code raises when it validates its inputs.
_OP_INPUT_ERRORS = (RuntimeError, IndexError)
_VALIDATION_ERRORS = (ValueError, TypeError, AssertionError)
_MODEL_FAULTS = (NotImplementedError, RecursionError)
_FRAMEWORKS = ("torch", "transformers", "numpy")


def forward_failure(exc: BaseException, where: str, inputs: dict[str, np.ndarray],
                    summary: str) -> PortabilityError:
    """The typed error for a forward pass that raised ``exc`` (the caller chains it).

    Args:
        exc: what the forward raised.
        where: how messages name the model.
        inputs: the example inputs, described in the message.
        summary: ``exc`` in one line (``Type: first line``).

    Returns:
        ``UsageError`` when a framework rejected the inputs, ``ModelError`` when the
        model's own code failed; both name the innermost line that raised.
    """
    described = ", ".join(f"{n} {a.dtype}{list(a.shape)}" for n, a in inputs.items())
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (raised at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    rejected = isinstance(exc, _OP_INPUT_ERRORS) or (
        isinstance(exc, _VALIDATION_ERRORS) and bool(frames) and _in_a_framework(frames[-1].filename))
    if rejected and not isinstance(exc, _MODEL_FAULTS):
        return UsageError(f"{where} does not run on the example inputs ({described}): {summary}{at}")
    return ModelError(f"{where}: the model's forward raised {summary}{at} on the example inputs "
                      f"({described}); the fault is in the model's code, not in the inputs")


def _in_a_framework(filename: str) -> bool:
    """Whether a traceback frame's file belongs to torch, transformers or numpy (imported ones)."""
    path = Path(filename).resolve()
    for name in _FRAMEWORKS:
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None)
        if origin and Path(origin).resolve().parent in path.parents:
            return True
    return False
