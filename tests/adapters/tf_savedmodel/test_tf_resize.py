"""Resize translations: every mode, rounding and coordinate mode; scales, sizes, roi; opsets 10-19."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs

X = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)
MODES = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]


@pytest.mark.parametrize("ctm", MODES)
@pytest.mark.parametrize("mode,extra", [
    ("nearest", {"nearest_mode": "round_prefer_floor"}), ("nearest", {"nearest_mode": "round_prefer_ceil"}),
    ("nearest", {"nearest_mode": "floor"}), ("nearest", {"nearest_mode": "ceil"}),
    ("linear", {}), ("cubic", {"cubic_coeff_a": -0.5, "exclude_outside": 1}), ("cubic", {}),
])
# Scales whose source coordinates land on no exact integer: there TF graph-mode float64
# arithmetic may differ from numpy by one ulp and flip a floor.
@pytest.mark.slow
@pytest.mark.parametrize("scales", [[1, 1, 2.0, 1.7], [1, 1, 0.5, 0.7]])
def test_scales_given_as_a_runtime_input(ctm, mode, extra, scales):
    nodes = [onnx_graphs.node("Resize", ["x", "", "scales"], mode=mode,
                              coordinate_transformation_mode=ctm, **extra)]
    onnx_graphs.check(nodes, {"x": X, "scales": np.array(scales, np.float32)}, opset=19)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_sizes_with_axes_and_aspect_ratio_policy(mode, policy):
    nodes = [onnx_graphs.node("Resize", ["x", "", "", "sizes"], mode=mode, axes=[3, 2],
                              keep_aspect_ratio_policy=policy)]
    onnx_graphs.check(nodes, {"x": X}, {"sizes": np.array([7, 3], np.int64)}, opset=19)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_antialiased_downsampling(mode):
    nodes = [onnx_graphs.node("Resize", ["x", "", "scales"], mode=mode, antialias=1)]
    onnx_graphs.check(nodes, {"x": X}, {"scales": np.array([1, 1, 0.5, 0.4], np.float32)}, opset=18)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_tf_crop_and_resize_with_roi_and_extrapolation(mode):
    roi = np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2], np.float32)
    nodes = [onnx_graphs.node("Resize", ["x", "roi", "", "sizes"], mode=mode,
                              coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=7.0)]
    onnx_graphs.check(nodes, {"x": X, "roi": roi}, {"sizes": np.array([1, 2, 5, 6], np.int64)}, opset=19)


def test_opset_11_form_with_roi_scales_and_sizes_inputs():
    """Resize-11 takes roi and scales as required inputs; an empty scales means 'use sizes'."""
    constants = {"roi": np.zeros([0], np.float32), "scales": np.zeros([0], np.float32),
                 "sizes": np.array([1, 2, 8, 3], np.int64)}
    nodes = [onnx_graphs.node("Resize", ["x", "roi", "scales", "sizes"], mode="linear",
                              coordinate_transformation_mode="align_corners")]
    onnx_graphs.check(nodes, {"x": X}, constants, opset=11)
    nodes = [onnx_graphs.node("Resize", ["x", "roi", "scales"], mode="nearest")]
    onnx_graphs.check(nodes, {"x": X}, {"roi": np.zeros([0], np.float32),
                                        "scales": np.array([1, 1, 2, 3], np.float32)}, opset=11)


def test_opset_10_resize_is_asymmetric_and_floors():
    """Resize-10 (which onnx's evaluator cannot run): out[i] = x[floor(i / scale)]."""
    from portability.adapters.tf_savedmodel.graph import translate

    nodes = [onnx_graphs.node("Resize", ["x", "scales"], mode="nearest")]
    model = onnx_graphs.make_model(nodes, {"x": X}, {"scales": np.array([1, 1, 1.5, 2.5], np.float32)}, opset=10)
    module = translate(model)
    got = module.serve(X)[module.output_names[0]].numpy()
    rows, cols = np.floor(np.arange(6) / 1.5).astype(int), np.floor(np.arange(12) / 2.5).astype(int)
    np.testing.assert_array_equal(got, X[:, :, rows][:, :, :, cols])


def test_integer_input_nearest_keeps_dtype():
    x = np.arange(20, dtype=np.int64).reshape(1, 1, 4, 5)
    nodes = [onnx_graphs.node("Resize", ["x", "", "scales"], mode="nearest")]
    onnx_graphs.check(nodes, {"x": x}, {"scales": np.array([1, 1, 2, 0.5], np.float32)}, opset=13)
