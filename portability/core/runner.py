"""The runner protocol: load an artifact in its own runtime and run inference.

Subclasses override only the ``*_impl`` hooks. Inputs and outputs are dicts of
numpy arrays keyed by name, so the harness compares any two runners alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class BaseRunner:
    """Activate once, infer many times, deactivate.

    Usable as a context manager: ``with runner: outputs = runner.infer(feed)``.
    """

    name = "runner"

    def __init__(self) -> None:
        self.is_active = False

    def activate(self) -> None:
        """Load the artifact (session creation, model build)."""
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on named numpy inputs; return named numpy outputs."""
        if not self.is_active:
            self.activate()
        return self.infer_impl(feed)

    def deactivate(self) -> None:
        """Release the runtime's resources."""
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass

    def __enter__(self) -> BaseRunner:
        self.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()
