"""Bring old ONNX graphs to the opset our translators are written for.

Files from older exporters (paddle2onnx and tf2onnx default to opset 9-11)
use ops whose inputs moved into attributes or back (``Squeeze`` axes, ``Split``
sizes, ``ReduceSum`` axes). ``onnx.version_converter`` rewrites them to opset
13 before translation. The converter cannot upgrade every graph; the reason is
then logged and kept, and the graph is translated as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import onnx

logger = logging.getLogger(__name__)
TARGET_OPSET = 13


@dataclass
class Upgrade:
    """The graph to translate and what happened to its opset.

    Attributes:
        model: the upgraded model, or the original when no upgrade was needed or possible.
        from_opset / to_opset: the default-domain opset before and after.
        failure: why the converter failed (empty when it did not).
    """

    model: onnx.ModelProto
    from_opset: int
    to_opset: int
    failure: str = ""

    def describe(self) -> str:
        """One sentence for error messages and notes ('' when nothing was attempted)."""
        if self.failure:
            return (f"opset {self.from_opset} could not be upgraded to {TARGET_OPSET} "
                    f"({self.failure}); translated as opset {self.from_opset}")
        if self.to_opset != self.from_opset:
            return f"upgraded from opset {self.from_opset} to {self.to_opset} with onnx.version_converter"
        return ""


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset for the default (``ai.onnx``) domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def upgrade_opset(model: onnx.ModelProto, source: str = "ONNX model") -> Upgrade:
    """Upgrade ``model`` to opset 13 when it is older; never raises for a failed upgrade.

    Args:
        model: the model (not modified).
        source: how log messages name it.

    Returns:
        The ``Upgrade``; ``failure`` says why the converter gave up.
    """
    from onnx import version_converter

    before = default_opset(model)
    if before >= TARGET_OPSET:
        return Upgrade(model, before, before)
    try:
        upgraded = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the converter raises RuntimeError, ValueError and C++ errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        logger.warning("%s: opset %d could not be upgraded to %d: %s", source, before, TARGET_OPSET, reason)
        return Upgrade(model, before, before, reason)
    logger.info("%s: upgraded from opset %d to %d", source, before, TARGET_OPSET)
    return Upgrade(upgraded, before, TARGET_OPSET)
