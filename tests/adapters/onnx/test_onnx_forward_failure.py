"""A forward pass that fails before the export says whose fault it is: inputs the framework
rejects are a UsageError about the inputs; a fault in the model's own code is a ModelError
naming the exception and the line, not a complaint about the inputs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxscript")

from portability.adapters.onnx.export import export_model
from portability.errors import ModelError, UsageError

X = {"x": np.ones((2, 8), np.float32)}


class Buggy(nn.Module):
    """A Linear whose forward reads an attribute it never set."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale  # no such attribute


class Asserting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[0] > 2, "needs a batch of three or more"
        return self.fc(x)


def _line_of(cls, text: str) -> int:
    lines, start = inspect.getsourcelines(cls.forward)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_a_fault_in_the_models_code_is_a_model_error(tmp_path):
    with pytest.raises(ModelError) as info:
        export_model(Buggy().eval(), X, tmp_path / "m.onnx", where="model buggy")
    # torch raises a missing attribute from Module.__getattr__, the innermost frame.
    lines, start = inspect.getsourcelines(nn.Module.__getattr__)
    raised = start + next(i for i, line in enumerate(lines) if "raise AttributeError" in line)
    assert str(info.value) == (
        "model buggy: the model's forward raised AttributeError: 'Buggy' object has no attribute 'scale' "
        f"(raised at module.py:{raised}) on the example inputs (x float32[2, 8]); the fault is in the "
        "model's code, not in the inputs")
    assert isinstance(info.value.__cause__, AttributeError)
    assert not (tmp_path / "m.onnx").exists()


def test_an_assert_in_the_models_code_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=rf"raised AssertionError: needs a batch of three or more \(raised at "
                                         rf"test_onnx_forward_failure.py:{_line_of(Asserting, 'assert')}\)"):
        export_model(Asserting().eval(), X, tmp_path / "m.onnx")


def test_inputs_the_framework_rejects_are_a_usage_error_about_the_inputs(tmp_path):
    wrong = {"x": np.ones((2, 5), np.float32)}
    with pytest.raises(UsageError, match=r"model does not run on the example inputs \(x float32\[2, 5\]\): "
                                         r"RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        export_model(nn.Linear(8, 4).eval(), wrong, tmp_path / "m.onnx")
