"""portability/faults: fault injection, the campaign, resume parity and state components.

The package is also the library entry point: ``portability.faults(recipe=...)``
runs the campaign (``portability.api.faults``), so the name means the same
whether or not a submodule was imported first.
"""

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, recipe: Any = None, **kwargs: Any) -> Any:
        """``portability.faults(recipe=...)``: see ``portability.api.faults``."""
        from portability.api import faults

        return faults(recipe, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
