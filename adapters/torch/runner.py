"""Torch eager runner: the reference every converted artifact is compared with."""

from __future__ import annotations

import numpy as np
import torch

from portability.adapters.torch import models as torch_models
from portability.core.checkpoint import Checkpoint
from portability.core.model_spec import ModelSpec, parse_model_spec
from portability.core.runner import BaseRunner


class TorchRunner(BaseRunner):
    """Runs the model a spec names (with a checkpoint's weights) in torch eager mode.

    Args:
        spec: model spec, or None when ``model`` is given.
        checkpoint: weights to load; None takes the spec's own.
        model: an already built ``nn.Module`` to run instead of building one.
        output_names: names for the flattened outputs (a fixture's own by default).

    Outputs are named as the ONNX export names them, so the two compare by name.
    """

    name = "torch"

    def __init__(self, spec: str | ModelSpec | None = None, checkpoint: Checkpoint | None = None, *,
                 model: torch.nn.Module | None = None,
                 output_names: tuple[str, ...] | list[str] | None = None) -> None:
        super().__init__()
        if spec is None and model is None:
            raise ValueError("TorchRunner needs a model spec or a model")
        self.spec = parse_model_spec(spec) if isinstance(spec, str) else spec
        self.checkpoint = checkpoint
        self.model = model
        self.output_names = output_names
        self.fit_notes: list[str] = []
        self.weights_key: str | None = None

    def activate_impl(self) -> None:
        """Build the model and load the weights.

        Raises:
            UsageError, FormatError: see ``torch_models.build_model``.
        """
        if self.model is None:
            self.model, fit = torch_models.build_fitted_model(self.spec, self.checkpoint)
            if fit is not None:
                self.fit_notes, self.weights_key = list(fit.notes), fit.weights_key
        self.model.eval()
        if self.output_names is None and self.spec is not None and self.spec.kind == "fixture":
            from portability.fixtures import get_fixture

            self.output_names = tuple(get_fixture(self.spec.target).output_names)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on named inputs (bound to forward's parameters by name, else by position)."""
        return torch_models.run_model(self.model, feed, self.output_names)

    def deactivate_impl(self) -> None:
        if self.spec is not None:
            self.model = None
