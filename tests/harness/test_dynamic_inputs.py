"""Several --inputs files and --dynamic axes: a second shape is run and judged, not assumed."""

from __future__ import annotations

import fcn_models
import numpy as np
import onnx
import pytest
import torch

from portability.api import check
from portability.cli import main
from portability.core.conversion import convert


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The FCN's checkpoint and two image batches of different sizes (odd and even, so the
    ceil-mode pool's rounding differs too)."""
    root = tmp_path_factory.mktemp("fcn")
    torch.save(fcn_models.fcn().state_dict(), root / "fcn.pt")
    torch.save(fcn_models.size_branch().state_dict(), root / "branch.pt")
    np.savez(root / "small.npz", **fcn_models.images(2, 12, 16))
    np.savez(root / "large.npz", **fcn_models.images(3, 17, 21, seed=1))
    return root


def _sizes(report):
    return {(o.inputs, tuple(o.shape)) for route in report.routes for o in route.outputs}


@pytest.mark.slow
def test_declared_axes_run_at_two_sizes_in_onnxruntime_and_tensorflow_and_match_torch(files):
    pytest.importorskip("tensorflow")
    inputs = [files / "small.npz", files / "large.npz"]
    report = check(files / "fcn.pt", model="fcn_models:fcn", inputs=inputs, dynamic=["image=0,2,3"],
                   routes="torch->onnx,torch->tf-savedmodel", workers=0)
    assert [r.status for r in report.routes] == ["pass", "pass"], [r.reason for r in report.routes]
    small, large = str(inputs[0]), str(inputs[1])
    assert _sizes(report) == {(small, (2, 2, 6, 8)), (large, (3, 2, 9, 11))}
    for route in report.routes:  # each file judged against torch's own float64 run on it
        assert all(o.floor is not None and o.error_vs_float64 <= o.floor for o in route.outputs)


@pytest.mark.slow
def test_without_dynamic_axes_the_second_size_fails_the_export_with_onnxruntime_s_reason(files):
    report = check(files / "fcn.pt", model="fcn_models:fcn", inputs=[files / "small.npz", files / "large.npz"],
                   routes="torch->onnx,torch->safetensors", workers=0)
    onnx_route, weights_route = report.routes
    assert onnx_route.status == "fail"
    assert "onnx artifact cannot run" in onnx_route.reason and "Got invalid dimensions" in onnx_route.reason
    assert weights_route.status == "pass"  # the torch model itself takes any size


@pytest.mark.slow
def test_a_model_that_cannot_take_a_declared_axis_fails_its_export_with_the_reason(files):
    report = check(files / "branch.pt", model="fcn_models:size_branch", dynamic={"image": [2, 3]},
                   inputs=files / "small.npz", routes="torch->onnx", workers=0)
    (route,) = report.routes
    assert route.status == "fail"
    assert "cannot keep --dynamic image=2,3 in the ONNX export of fcn_models:size_branch: torch.export fixed " \
           "axis 2 to 12" in route.reason


@pytest.mark.slow
def test_an_artifact_that_fixes_a_declared_axis_fails_naming_it(files, tmp_path):
    pytest.importorskip("tensorflow")
    fixed = tmp_path / "fixed.onnx"
    convert(files / "fcn.pt", fixed, model="fcn_models:fcn", inputs=files / "small.npz")
    report = check(fixed, inputs=files / "small.npz", dynamic="image=0,2,3", routes="onnx->tf-savedmodel",
                   workers=0)
    (route,) = report.routes
    assert route.status == "fail"
    assert ("the tf-savedmodel artifact fixes axis 2 to 12, axis 3 to 16 of input 'image', declared dynamic "
            "(--dynamic image=0,2,3)") in route.reason


@pytest.mark.slow
def test_convert_with_dynamic_axes_writes_symbolic_dims_in_both_graph_formats(files, tmp_path):
    tf = pytest.importorskip("tensorflow")
    for dst in (tmp_path / "fcn.onnx", tmp_path / "fcn_sm"):
        assert main(["convert", str(files / "fcn.pt"), str(dst), "--to", "onnx" if dst.suffix else "tf-savedmodel",
                     "--model", "fcn_models:fcn", "--inputs", str(files / "small.npz"),
                     "--dynamic", "image=0,2,3"]) == 0
    shape = onnx.load(tmp_path / "fcn.onnx").graph.input[0].type.tensor_type.shape
    dims = [d.dim_param or d.dim_value for d in shape.dim]
    assert dims == ["batch", 3, "image_2", "image_3"]
    spec = tf.saved_model.load(str(tmp_path / "fcn_sm")).signatures["serving_default"].structured_input_signature[1]
    assert spec["image"].shape.as_list() == [None, 3, None, None]


def test_dynamic_is_refused_where_no_graph_is_exported(files, tmp_path, capsys):
    code = main(["convert", str(files / "fcn.pt"), str(tmp_path / "w.safetensors"), "--dynamic", "image=2"])
    assert code == 2
    assert "error: --dynamic applies to graph exports from a model" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()
    code = main(["check", str(files / "fcn.pt"), "--model", "fcn_models:fcn", "--dynamic", "image"])
    assert code == 2 and "--dynamic 'image': expected NAME=AXES" in capsys.readouterr().err


def test_a_second_inputs_file_must_feed_the_same_inputs(files, tmp_path):
    np.savez(tmp_path / "other.npz", pixels=np.zeros((1, 3, 4, 4), np.float32))
    report = check(files / "fcn.pt", model="fcn_models:fcn", inputs=[files / "small.npz", tmp_path / "other.npz"],
                   routes="torch->safetensors", workers=0)
    (route,) = report.routes
    assert route.status == "fail" and "holds inputs ['pixels'], the first --inputs file" in route.reason
