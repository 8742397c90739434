"""ONNX types TF cannot compute with, carried through translated graphs and SavedModels.

Casts to FNUZ float8, FLOAT4E2M1 and the 2/4-bit integers give the ONNX spec's values
(``onnx_cast_spec``; onnx's reference evaluator casts with ml_dtypes, whose results
changed in 0.7), casts to FLOAT8E8M0 match onnx's reference (onnx's own rounding
rules), and casts from every carried type are exact. Callers pass and get the ml_dtypes
arrays ONNX declares, while the serving signature takes and returns carriers.
"""

from __future__ import annotations

import numpy as np
import onnx_cast_spec as spec
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


# Carried ONNX type -> its format in the spec's tables, or (bits, signed) for the integers.
SPEC_FORMATS = {TensorProto.FLOAT8E4M3FNUZ: spec.E4M3FNUZ, TensorProto.FLOAT8E5M2FNUZ: spec.E5M2FNUZ,
                TensorProto.FLOAT4E2M1: spec.E2M1, TensorProto.INT4: (4, True), TensorProto.UINT4: (4, False),
                TensorProto.INT2: (2, True), TensorProto.UINT2: (2, False)}


def _spec_cast(x: np.ndarray, to: int, saturate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(the array of type ``to`` the spec gives for ``x``, its values as float32)."""
    fmt = SPEC_FORMATS[to]
    dtype = helper.tensor_dtype_to_np_dtype(to)
    if isinstance(fmt, spec.Format):
        codes = spec.encode(x, fmt, saturate)
        return codes.view(dtype), spec.decode(codes, fmt).astype(np.float32)
    values = spec.integer_from_real(x, *fmt)
    return values.astype(dtype), values.astype(np.float32)  # in range, so exact with any ml_dtypes


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("to", [t for t in CARRIED if t != TensorProto.FLOAT8E8M0], ids=TensorProto.DataType.Name)
def test_cast_there_and_back_gives_the_spec_values(to, saturate):
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to, saturate=saturate),
             helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)]
    model = _model(nodes, [_value("x", TensorProto.FLOAT)], [_value("n", to), _value("y", TensorProto.FLOAT)])
    module = translate(model)
    got = module(x=X)
    narrow, values = _spec_cast(X, to, bool(saturate))
    _same_bits(got[module.output_names[0]], narrow)
    spec.same_values(got[module.output_names[1]], values)


def _e8m0(codes: np.ndarray) -> np.ndarray:
    """FLOAT8E8M0 values: 2**(code - 127), NaN for 0xFF."""
    return np.where(codes == 0xFF, np.nan, np.ldexp(1.0, codes.astype(np.int32) - 127))


@pytest.mark.parametrize("saturate", [1, 0])
def test_e8m0_cast_there_and_back_follows_onnx_rounding(saturate):
    to = TensorProto.FLOAT8E8M0
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to, saturate=saturate),
             helper.make_node("Cast", ["n"], ["y"], to=TensorProto.FLOAT)]
    model = _model(nodes, [_value("x", TensorProto.FLOAT)], [_value("n", to), _value("y", TensorProto.FLOAT)])
    module = translate(model)
    got = module(x=X)
    codes = spec.encode_e8m0(X, bool(saturate), "up")
    _same_bits(got["n"], codes.view(helper.tensor_dtype_to_np_dtype(to)))
    spec.same_values(got["y"], _e8m0(codes))


@pytest.mark.parametrize("to", [TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2, TensorProto.UINT2],
                         ids=TensorProto.DataType.Name)
@pytest.mark.parametrize("source", [TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8, TensorProto.BOOL],
                         ids=TensorProto.DataType.Name)
def test_integer_casts_to_narrow_integers_keep_the_low_bits(to, source):
    nodes = [helper.make_node("Cast", ["x"], ["n"], to=to)]
    model = _model(nodes, [_value("x", source)], [_value("n", to)])
    x = np.array([0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 200, 255], helper.tensor_dtype_to_np_dtype(source))
    got = translate(model)(x=x)["n"]
    want = spec.integer_from_integer(x, *SPEC_FORMATS[to])
    _same_bits(got, want.astype(helper.tensor_dtype_to_np_dtype(to)))


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
def test_e8m0_cast_honours_round_mode(round_mode):
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E8M0, round_mode=round_mode)]
    x = np.array([0.0, 0.124, 0.25, 0.75, 1.1, 1.5, 2.5, 3.0, 6.0, -3.0, 2.0 ** 127 * 1.5], np.float32)
    got = translate(_model(nodes, [_value("x", TensorProto.FLOAT)], [_value("y", TensorProto.FLOAT8E8M0)]))(x=x)["y"]
    _same_bits(got, spec.encode_e8m0(x, True, round_mode).view(helper.tensor_dtype_to_np_dtype(TensorProto.FLOAT8E8M0)))


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
    """Casts from carried constants fold to their exact values; casts to a carried type give
    the spec's values whether they fold (constant input) or run in the graph."""
    codes = spec.encode(X, spec.E4M3FNUZ)
    weights = numpy_helper.from_array(codes.view(ml_dtypes.float8_e4m3fnuz), "w")
    reals = np.arange(-4.5, 20, 0.5, dtype=np.float32)
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.array([-8, 7, 3], ml_dtypes.int4), "c")),
             helper.make_node("Constant", [], ["r"], value=numpy_helper.from_array(reals, "r")),
             helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["r"], ["rq"], to=TensorProto.INT4),
             helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT4)]
    outputs = [_value("wf", TensorProto.FLOAT), _value("cf", TensorProto.FLOAT), _value("rq", TensorProto.INT4),
               _value("y", TensorProto.UINT4)]
    module = translate(_model(nodes, [_value("x", TensorProto.FLOAT)], outputs, [weights]))
    got = module(x=reals)
    spec.same_values(got["wf"], spec.decode(codes, spec.E4M3FNUZ))
    np.testing.assert_array_equal(got["cf"], [-8.0, 7.0, 3.0])
    _same_bits(got["rq"], _spec_cast(reals, TensorProto.INT4)[0])
    _same_bits(got["y"], _spec_cast(reals, TensorProto.UINT4)[0])


def test_the_serving_signature_and_a_saved_model_use_the_carrier(tmp_path):
    from portability.adapters.tf_savedmodel.savedmodel_io import save_module
    from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner

    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E5M2FNUZ)]
    model = _model(nodes, [_value("x", TensorProto.FLOAT4E2M1)], [_value("y", TensorProto.FLOAT8E5M2FNUZ)])
    module = translate(model)
    assert [signature.dtype for signature in module.serve.input_signature] == [tf.uint8]
    values = np.array([0.5, -6.0, 1.5, -0.0], np.float32)
    x = spec.encode(values, spec.E2M1).view(helper.tensor_dtype_to_np_dtype(TensorProto.FLOAT4E2M1))
    codes = module.serve(tf.constant(x.view(np.uint8)))[module.output_names[0]]
    assert codes.dtype == tf.uint8
    want = _spec_cast(values, TensorProto.FLOAT8E5M2FNUZ)[0]
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
    moved = _spec_cast(X, TensorProto.FLOAT8E5M2FNUZ)[1].reshape(2, 7).T
    spec.same_values(translate(model)(x=X)["y"], np.concatenate([moved, moved]))
