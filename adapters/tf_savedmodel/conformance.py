"""Run ONNX's own node conformance cases through the TF translator.

``onnx.backend.test.case.node.collect_testcases()`` builds, for every op, small
one-node models with inputs and the outputs of ONNX's reference implementation.
:func:`run_case` translates one such model (traced as a ``tf.function``, the
way a SavedModel serves it), runs it and compares at the ONNX backend runner's
tolerances. The conformance test tier and ``benchmarks/onnx_conformance.py``
both use this module; expected failures live in ``ops/known_gaps.py``.
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
        raw = collect_testcases()
    cases = []
    for case in raw:
        nodes = list(case.model.graph.node) if case.model is not None else []
        if case.name.endswith("_expanded") or len(nodes) != 1:
            continue
        node = nodes[0]
        if node.domain not in ("", "ai.onnx") or node.op_type not in wanted:
            continue
        inputs, outputs = case.data_sets[0]
        cases.append(Case(case.name, node.op_type, case.model, list(inputs), list(outputs)))
    return cases


@functools.cache
def yardstick_cases() -> dict[str, Case]:
    """The yardstick's cases by name, collected once per process (~20 s)."""
    return {case.name: case for case in collect()}


def _as_array(value):
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


def compare(got, want) -> None:
    """Raise AssertionError unless ``got`` matches ``want`` in dtype, shape and value."""
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype:
        raise AssertionError(f"dtype {got.dtype} != expected {want.dtype}")
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != expected {want.shape}")
    if want.dtype.kind == "V":  # ml_dtypes' bfloat16 and float8 types: compare as float32
        got, want = got.astype(np.float32), want.astype(np.float32)
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def run_case(case: Case) -> Outcome:
    """Translate, run and compare one case; any exception is a failure with its message."""
    from portability.adapters.tf_savedmodel.graph import translate

    try:
        module = translate(case.model)
        feeds = [_as_array(v) for v in case.inputs]
        result = module.serve(*feeds)
        got = [result[key].numpy() for key in module.output_names]
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
