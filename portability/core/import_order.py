"""Import order between frameworks that crash when loaded the other way round.

Measured with torch 2.14.1's CUDA wheel (which brings triton) and tensorflow-cpu 2.21:
``import tensorflow`` followed by ``import triton`` kills the process with a segmentation
fault inside triton's native extension; the other order works. torch imports triton
whenever dynamo loads (``torch.onnx.export(dynamo=True)``, ``torch.export``,
``torch.compile``), so one worker that ran a TensorFlow route and then exported to ONNX
died. ``guard()`` installs a one-shot import hook: when TensorFlow is about to be
imported and triton is installed but not loaded, triton is imported first (about 0.5 s,
paid only where both are installed). Nothing is imported until TensorFlow is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys

logger = logging.getLogger(__name__)

# (module being imported, what must be imported before it)
_FIRST = (("tensorflow", "triton"),)


class ImportFirst(importlib.abc.MetaPathFinder):
    """Before ``trigger`` is first imported, import ``first`` if it is installed and not loaded."""

    def __init__(self, trigger: str, first: str) -> None:
        self.trigger, self.first = trigger, first

    def find_spec(self, fullname, path, target=None):
        if fullname != self.trigger:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if self.first not in sys.modules and importlib.util.find_spec(self.first) is not None:
            try:
                importlib.import_module(self.first)
            except Exception as exc:  # a broken optional package must not stop the import asked for
                logger.debug("could not import %s before %s: %s", self.first, self.trigger, exc)
        return None  # the regular finders import the trigger itself


def guard() -> None:
    """Install the hooks (idempotent); a trigger already imported needs none."""
    for trigger, first in _FIRST:
        if trigger in sys.modules:
            continue
        if not any(isinstance(f, ImportFirst) and f.trigger == trigger for f in sys.meta_path):
            sys.meta_path.insert(0, ImportFirst(trigger, first))
