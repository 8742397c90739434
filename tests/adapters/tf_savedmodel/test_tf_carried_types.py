"""ONNX types TF cannot compute with, carried through translated graphs and SavedModels.

Casts to and from FNUZ float8, FLOAT4E2M1, FLOAT8E8M0 and the 2/4-bit integers
match onnx's reference evaluator bit for bit; callers pass and get the ml_dtypes
arrays ONNX declares, while the serving signature takes and returns carriers.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
ml_dtypes = pytest.importorskip("ml_dtypes")
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from portability.adapters.tf_savedmodel.graph import translate
from portability.errors import UnsupportedOpError

X = np.array([0.3, -0.49, 2.5, -3.5, 7.0, 250.0, 1e6, -1e-9, -0.0, np.inf, -np.inf, np.nan, 15.0, -9.0],
             np.float32)
CARRIED = [TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2FNUZ, TensorProto.FLOAT8E8M0,
           TensorProto.FLOAT4E2M1, TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2, TensorProto.UINT2]


def _model(nodes, inputs, outputs, initializers=(), opset=25):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name, elem_type, rank=1):
    return helper.make_tensor_value_info(name, elem_type, [f"{name}_{i}" for i in range(rank)])


def _same_bits(got, want):
    got, want = np.ascontiguousarray(got), np.ascontiguousarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def _check_against_reference(model, feeds):
    module = translate(model)
    got = module(**feeds)
    want = ReferenceEvaluator(model).run(None, feeds)
    for key, expected in zip(module.output_names, want, strict=True):
        _same_bits(got[key], expected)
    return module


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("to", CARRIED, ids=TensorProto.DataType.Name)
def test_cast_there_and_back_matches_the_reference(to, saturate):
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to, saturate=saturate),
             helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)]
    model = _model(nodes, [_value("x", TensorProto.FLOAT)], [_value("n", to), _value("y", TensorProto.FLOAT)])
    with np.errstate(invalid="ignore", over="ignore"):
        _check_against_reference(model, {"x": X})


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
def test_e8m0_cast_honours_round_mode(round_mode):
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E8M0, round_mode=round_mode)]
    x = np.array([0.0, 0.124, 0.25, 0.75, 1.1, 1.5, 3.0, 6.0, -3.0, 2.0 ** 127 * 1.5], np.float32)
    _check_against_reference(_model(nodes, [_value("x", TensorProto.FLOAT)], [_value("y", TensorProto.FLOAT8E8M0)]),
                             {"x": x})


@pytest.mark.parametrize("source", CARRIED, ids=TensorProto.DataType.Name)
def test_carried_inputs_are_read_through_ops_that_move_them(source):
    """An input of a carried type, reshaped before its Cast: shape inference types the
    intermediate value, so the Cast still decodes its carrier."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=TensorProto.FLOAT16)]
    shape = numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    model = _model(nodes, [_value("x", source)], [_value("y", TensorProto.FLOAT16, 2)], [shape])
    dtype = helper.tensor_dtype_to_np_dtype(source)
    with np.errstate(invalid="ignore", over="ignore"):
        x = X[:12].astype(dtype) if source != TensorProto.FLOAT8E8M0 else np.abs(X[:12]).astype(dtype)
    _check_against_reference(model, {"x": x})


def test_carried_initializers_and_constants_fold_through_cast():
    weights = numpy_helper.from_array(X.astype(ml_dtypes.float8_e4m3fnuz), "w")
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.array([-8, 7, 3], ml_dtypes.int4), "c")),
             helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT4)]
    outputs = [_value("wf", TensorProto.FLOAT), _value("cf", TensorProto.FLOAT), _value("y", TensorProto.UINT4)]
    _check_against_reference(_model(nodes, [_value("x", TensorProto.FLOAT)], outputs, [weights]),
                             {"x": np.arange(-4, 20, dtype=np.float32)})


def test_the_serving_signature_and_a_saved_model_use_the_carrier(tmp_path):
    from portability.adapters.tf_savedmodel.savedmodel_io import save_module
    from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E5M2FNUZ)]
    model = _model(nodes, [_value("x", TensorProto.FLOAT4E2M1)], [_value("y", TensorProto.FLOAT8E5M2FNUZ)])
    module = translate(model)
    assert [spec.dtype for spec in module.serve.input_signature] == [tf.uint8]
    x = np.array([0.5, -6.0, 1.5, -0.0], ml_dtypes.float4_e2m1fn)
    codes = module.serve(tf.constant(x.view(np.uint8)))[module.output_names[0]]
    assert codes.dtype == tf.uint8
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(codes.numpy(), want.view(np.uint8))

    save_module(module, None, tmp_path / "saved")
    with TFSavedModelRunner(tmp_path / "saved") as runner:
        got = runner.infer({"x": x})
    _same_bits(got[module.output_names[0]], want)


def test_ops_that_would_compute_with_a_carried_type_name_op_node_and_reason():
    nodes = [helper.make_node("EyeLike", ["x"], ["y"], name="eye_node", dtype=TensorProto.FLOAT8E4M3FNUZ)]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                   [_value("y", TensorProto.FLOAT8E4M3FNUZ, 2)])
    refused = r"EyeLike \(node 'eye_node'\) would compute on values of type FLOAT8E4M3FNUZ \('y'\)"
    with pytest.raises(UnsupportedOpError, match=refused):
        translate(model)


@pytest.mark.parametrize("op", ["IsNaN", "Relu", "Neg"])
def test_an_op_computing_on_carrier_codes_is_refused_naming_op_node_value_and_type(op):
    # On the uint8 codes these ops would give a plausible, wrong answer: refuse instead.
    out_type = TensorProto.BOOL if op == "IsNaN" else TensorProto.FLOAT8E4M3FNUZ
    nodes = [helper.make_node("Cast", ["x"], ["q"], to=TensorProto.FLOAT8E4M3FNUZ),
             helper.make_node(op, ["q"], ["y"], name="on_codes")]
    model = _model(nodes, [_value("x", TensorProto.FLOAT)], [_value("y", out_type)])
    refused = (rf"ONNX op {op} \(node 'on_codes'\) would compute on values of type FLOAT8E4M3FNUZ \('q'\): "
               r"TF has no kernels.*nothing was written")
    with pytest.raises(UnsupportedOpError, match=refused):
        translate(model)


def test_ops_that_only_move_elements_keep_carried_values_exact():
    nodes = [helper.make_node("Cast", ["x"], ["q"], to=TensorProto.FLOAT8E5M2FNUZ),
             helper.make_node("Reshape", ["q", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
             helper.make_node("Concat", ["t", "t"], ["c"], axis=0),
             helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)]
    shape = numpy_helper.from_array(np.array([2, 7], np.int64), "shape")
    model = _model(nodes, [_value("x", TensorProto.FLOAT)], [_value("y", TensorProto.FLOAT, 2)], [shape])
    with np.errstate(invalid="ignore", over="ignore"):
        _check_against_reference(model, {"x": X})
