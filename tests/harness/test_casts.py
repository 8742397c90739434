"""Where a route left the checkpoint's own dtype: the lines of the report's ``casts``."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from portability.harness.casts import output_casts, weight_casts
from portability.harness.weights import TensorChange, WeightReport
from portability.reports.check_report import RouteResult


def test_weight_casts_count_each_pair_of_dtypes():
    weights = WeightReport(dtype_changes=[TensorChange("a", "bfloat16", "float32"),
                                          TensorChange("b", "bfloat16", "float32"),
                                          TensorChange("c", "float16", "float32")])
    assert weight_casts(weights) == ["weights: 2 tensors stored as float32 (the checkpoint's bfloat16)",
                                     "weights: 1 tensor stored as float32 (the checkpoint's float16)"]
    assert weight_casts(WeightReport()) == []
    assert weight_casts(None) == []


def test_output_casts_name_floating_outputs_computed_in_another_dtype():
    reference = {"logits": np.zeros((2, 3), ml_dtypes.bfloat16), "ids": np.zeros(2, np.int64),
                 "hidden": np.zeros(3, np.float16)}
    candidate = {"logits": np.zeros((2, 3), np.float32), "ids": np.zeros(2, np.int32),
                 "hidden": np.zeros(3, np.float16)}
    assert output_casts(reference, candidate) == [
        "outputs: 'logits' computed as float32, the reference's as bfloat16"]
    assert output_casts(reference, {}) == []


def test_casts_travel_through_the_report_json():
    result = RouteResult("m", ["safetensors", "onnx"], "pass", casts=["outputs: 'y' computed as float32, "
                                                                       "the reference's as bfloat16"])
    back = RouteResult.from_dict(result.to_dict())
    assert back.casts == result.casts
    assert RouteResult.from_dict({**result.to_dict(), "casts": None}).casts == []
