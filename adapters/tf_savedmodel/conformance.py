"""Run ONNX's own node conformance cases through the TF translator.

``onnx.backend.test.case.node.collect_testcases()`` builds, for every op, small
one-node models with inputs and the outputs of ONNX's reference implementation.
:func:`run_case` translates one such model (traced as a ``tf.function``, the
way a SavedModel serves it), runs it and compares at the ONNX backend runner's
tolerances. The conformance test tier and ``benchmarks/onnx_conformance.py``
both use this module; expected failures live in ``ops/known_gaps.py``. The cases
of ``SPEC_EXPECTED`` are held to the ONNX spec's values (``spec_casts``) rather
than to the outputs onnx's generator took from ml_dtypes.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterable

import numpy as np

# The op types of the conformance yardstick (the ops real exporters emit most).
YARDSTICK_OPS = (
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil",
    "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Cos", "CumSum",
    "DepthToSpace", "Div", "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten",
    "Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "LogSoftmax", "LSTM", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mod", "Mul", "Neg", "NonZero",
    "Not", "Or", "PRelu", "Pad", "Pow", "Range", "Reciprocal", "ReduceL2", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape", "Resize", "RNN", "ScatterElements",
    "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Softplus",
    "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "TopK", "Transpose",
    "Trilu", "Unsqueeze", "Where", "Xor",
)
# The ONNX backend test runner's tolerances for node cases.
RTOL, ATOL = 1e-3, 1e-7

_ML_DTYPES_INTEGERS = ("onnx computes it with ml_dtypes, which truncates toward zero and keeps the low bits "
                       "(up to 0.6: 9.0 -> int4 -7) or zeroes out-of-range values (0.7: 9.0 -> 0); int4.md and "
                       "int2.md round half to even and saturate (9.0 -> 7)")
_ML_DTYPES_FLOAT4_NAN = "onnx computes it with ml_dtypes, which casts NaN to -0; float4.md casts NaN to 6"
# Cases whose expected outputs are recomputed from the ONNX spec's rule (spec_casts), and why.
# The other casts to narrow types agree with the spec on every ml_dtypes release we test
# (a test in the conformance tier checks that), so they keep onnx's outputs.
SPEC_EXPECTED: dict[str, str] = {
    "test_cast_FLOAT_to_INT4": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT16_to_INT4": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT_to_UINT4": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT16_to_UINT4": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT_to_INT2": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT16_to_INT2": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT_to_UINT2": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT16_to_UINT2": _ML_DTYPES_INTEGERS,
    "test_cast_FLOAT_to_FLOAT4E2M1": _ML_DTYPES_FLOAT4_NAN,
    "test_cast_FLOAT16_to_FLOAT4E2M1": _ML_DTYPES_FLOAT4_NAN,
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One single-op conformance case: the model, its inputs and expected outputs."""

    name: str
    op: str
    model: object
    inputs: list
    outputs: list


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Whether a case passed; ``error`` says why not."""

    case: str
    op: str
    passed: bool
    error: str = ""


def collect(ops: Iterable[str] = YARDSTICK_OPS) -> list[Case]:
    """Every single-node, default-domain case of ``ops`` (``*_expanded`` function cases skipped)."""
    from onnx.backend.test.case.node import collect_testcases

    wanted = set(ops)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = collect_testcases(None)  # None: every op (the argument has a default only from onnx 1.23)
    cases = []
    for case in raw:
        nodes = list(case.model.graph.node) if case.model is not None else []
        if case.name.endswith("_expanded") or len(nodes) != 1:
            continue
        node = nodes[0]
        if node.domain not in ("", "ai.onnx") or node.op_type not in wanted:
            continue
        inputs, outputs = case.data_sets[0]
        if case.name in SPEC_EXPECTED:
            outputs = [spec_cast_output(node, inputs[0])]
        cases.append(Case(case.name, node.op_type, case.model, list(inputs), list(outputs)))
    return cases


def spec_cast_output(node, given):
    """The ONNX spec's output of Cast ``node`` on input ``given`` (a TensorProto or array), as the
    array type onnx uses for the target: for the targets ``spec_casts`` defines.

    Raises:
        ValueError: a target ``spec_casts`` does not define.
    """
    from onnx import TensorProto, helper

    from portability.adapters.tf_savedmodel import spec_casts

    to = next(a.i for a in node.attribute if a.name == "to")
    name = TensorProto.DataType.Name(to)
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(to))
    x = _as_array(given)
    if name in spec_casts.NARROW_INTEGERS:
        return spec_casts.narrow_integer(x, *spec_casts.NARROW_INTEGERS[name]).astype(dtype)  # in range: exact
    if name == "FLOAT4E2M1":
        return spec_casts.float4_codes(x).view(dtype)
    raise ValueError(f"{node.op_type} to {name}: no spec rule here")


@functools.cache
def yardstick_cases() -> dict[str, Case]:
    """The yardstick's cases by name, collected once per process (~20 s)."""
    return {case.name: case for case in collect()}


def _as_array(value):
    """A case's value as numpy: arrays, lists of them (sequences) and None (empty optionals)."""
    from onnx import TensorProto, numpy_helper

    if isinstance(value, list):
        return [_as_array(item) for item in value]
    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


def _as_numpy(value):
    """A module output as numpy: tensors converted, sequences element-wise, None kept."""
    if isinstance(value, list):
        return [_as_numpy(item) for item in value]
    return value.numpy() if hasattr(value, "numpy") else value


def compare(got, want) -> None:
    """Raise AssertionError unless ``got`` matches ``want`` in dtype, shape and value;
    sequences (lists) match element-wise, as ONNX's backend runner compares them."""
    if want is None or isinstance(want, list):
        if want is None or got is None:
            if got is not want:
                raise AssertionError(f"got {type(got).__name__}, expected {type(want).__name__}")
            return
        if not isinstance(got, list) or len(got) != len(want):
            raise AssertionError(f"got {type(got).__name__} of {len(got) if isinstance(got, list) else '?'} "
                                 f"items, expected a sequence of {len(want)}")
        for index, (item, wanted) in enumerate(zip(got, want, strict=True)):
            try:
                compare(item, wanted)
            except AssertionError as exc:
                raise AssertionError(f"item {index}: {str(exc).strip()}") from None
        return
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype:
        raise AssertionError(f"dtype {got.dtype} != expected {want.dtype}")
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape}")
    if want.dtype.kind == "V":  # ml_dtypes' bfloat16, float8, float4 and int4 types: compare as float32
        got, want = got.astype(np.float32), want.astype(np.float32)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def run_case(case: Case) -> Outcome:
    """Translate, run and compare one case; any exception is a failure with its message.

    The module is called by name, so inputs and outputs are what ONNX declares:
    sequences as lists, ml_dtypes arrays for types TF holds in carriers.
    """
    from portability.adapters.tf_savedmodel.graph import translate

    try:
        module = translate(case.model)
        feeds = dict(zip(module.input_names, [_as_array(v) for v in case.inputs], strict=True))
        result = module(**feeds)
        got = [_as_numpy(result[key]) for key in module.output_names]
        if len(got) != len(case.outputs):
            raise AssertionError(f"{len(got)} outputs, expected {len(case.outputs)}")
        for index, (value, want) in enumerate(zip(got, case.outputs, strict=False)):
            try:
                compare(value, _as_array(want))
            except AssertionError as exc:
                raise AssertionError(f"output {index}: {str(exc).strip()}") from None
    except Exception as exc:  # every failure is an outcome, reported by name
        first = (str(exc).strip().splitlines() or [""])[0]
        return Outcome(case.name, case.op, False, f"{type(exc).__name__}: {first}"[:300])
    return Outcome(case.name, case.op, True)
