"""Resize translations: every mode, rounding and coordinate mode; scales, sizes, roi; opsets 10-19."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs
from onnx import helper

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


def _function_ops(module) -> set[str]:
    """Every op type of the serving graph, the branches of its conditionals included."""
    graph_def = module.serve.get_concrete_function().graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def _sized_like(batch_source):
    """Conv -> bilinear Resize to sizes = [batch of ``batch_source``, the Conv's channels,
    5, 9]: the form an exporter writes for ``interpolate(x, size=(5, 9))`` with a dynamic
    batch (the sizes tensor is only partly constant)."""
    return [onnx_graphs.node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Shape", [batch_source], ["n"], name="shape_n", start=0, end=1),
            helper.make_node("Shape", ["c"], ["ch"], name="shape_ch", start=1, end=2),
            helper.make_node("Concat", ["n", "ch", "hw"], ["sizes"], name="concat_sizes", axis=0),
            onnx_graphs.node("Resize", ["c", "", "", "sizes"], mode="linear")]


def test_sizes_read_from_the_input_shape_take_tf_bilinear_kernel():
    from portability.adapters.tf_savedmodel.graph import translate

    constants = {"w": np.random.default_rng(1).standard_normal((4, 2, 1, 1)).astype(np.float32),
                 "hw": np.array([5, 9], np.int64)}
    nodes = _sized_like("c")
    for batch in (1, 3):  # one traced graph, two batch sizes
        x = np.random.default_rng(batch).standard_normal((batch, 2, 4, 5)).astype(np.float32)
        got = onnx_graphs.check(nodes, {"x": x}, constants, opset=19, rtol=1e-5, atol=1e-5)
        assert got[0].shape == (batch, 4, 5, 9)
    module = translate(onnx_graphs.make_model(nodes, {"x": X}, constants, opset=19))
    assert "ResizeBilinear" in _function_ops(module)


def test_sizes_changing_the_batch_take_the_separable_resize():
    """The same graph where the batch entry comes from another input of a different
    batch: ONNX interpolates across the batch, which ResizeBilinear cannot."""
    rng = np.random.default_rng(4)
    constants = {"w": rng.standard_normal((4, 2, 1, 1)).astype(np.float32), "hw": np.array([5, 9], np.int64)}
    feeds = {"x": rng.standard_normal((2, 2, 4, 5)).astype(np.float32),
             "other": rng.standard_normal((3, 1)).astype(np.float32)}
    got = onnx_graphs.check(_sized_like("other"), feeds, constants, opset=19, rtol=1e-5, atol=1e-5)
    assert got[0].shape == (3, 4, 5, 9)
