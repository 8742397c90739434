"""ONNX's node conformance cases through the TF translator (the ``conformance`` tier).

One test per single-op case of the yardstick's op types, compared at the ONNX
backend runner's tolerances. Cases in ``ops/known_gaps.py`` are strict xfail:
when one starts passing, the tier fails until it is removed from that list.
Collecting the cases runs ONNX's case generators (~20 s); deselecting the
tier with ``-m "not conformance"`` skips that.
"""

from __future__ import annotations

import numpy as np
import onnx_cast_spec as spec
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tensorflow")
from portability.adapters.tf_savedmodel import conformance, ops
from portability.adapters.tf_savedmodel.ops.known_gaps import KNOWN_GAPS

# The tier is part of the whole suite (.ci/run), not of the fast tier.
pytestmark = [pytest.mark.conformance, pytest.mark.slow]


def _deselected(config) -> bool:
    """Skip building ~750 cases (about 20 s) when the run deselects them anyway."""
    expression = config.getoption("markexpr", "") or ""
    return "not conformance" in expression or "not slow" in expression


def pytest_generate_tests(metafunc):
    if "case_name" not in metafunc.fixturenames:
        return
    names = [] if _deselected(metafunc.config) else sorted(conformance.yardstick_cases())
    params = [pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_GAPS[name], strict=True))
              if name in KNOWN_GAPS else name for name in names]
    metafunc.parametrize("case_name", params)


def test_case(case_name):
    outcome = conformance.run_case(conformance.yardstick_cases()[case_name])
    assert outcome.passed, outcome.error


def test_every_yardstick_op_is_registered():
    assert set(conformance.YARDSTICK_OPS) <= set(ops.supported_ops())
    assert len(conformance.YARDSTICK_OPS) == 99


def test_known_gaps_name_real_cases():
    stale = set(KNOWN_GAPS) - set(conformance.yardstick_cases())
    assert not stale, f"known_gaps lists cases the suite no longer has: {sorted(stale)}"


def test_outcome_reports_the_failure():
    case = conformance.yardstick_cases()["test_relu"]
    broken = conformance.Case(case.name, case.op, case.model, case.inputs, [case.outputs[0] + 1])
    outcome = conformance.run_case(broken)
    assert not outcome.passed and "output 0" in outcome.error


def test_spec_expected_names_real_cases():
    stale = set(conformance.SPEC_EXPECTED) - set(conformance.yardstick_cases())
    assert not stale, f"SPEC_EXPECTED lists cases the suite no longer has: {sorted(stale)}"


def test_cast_to_int4_is_held_to_the_spec_value():
    """onnx's input is -9..15; the spec saturates to [-8, 7] (ml_dtypes gave -7 or 0 for 9.0)."""
    case = conformance.yardstick_cases()["test_cast_FLOAT_to_INT4"]
    want = np.clip(np.arange(-9, 16), -8, 7).reshape(5, 5)
    got = case.outputs[0]
    assert got.dtype == onnx.helper.tensor_dtype_to_np_dtype(onnx.TensorProto.INT4)
    np.testing.assert_array_equal(got.astype(np.int64), want)


_FORMATS = {"FLOAT8E4M3FN": spec.E4M3FN, "FLOAT8E5M2": spec.E5M2, "FLOAT8E4M3FNUZ": spec.E4M3FNUZ,
            "FLOAT8E5M2FNUZ": spec.E5M2FNUZ, "FLOAT4E2M1": spec.E2M1}
_INTEGERS = {"INT4": (4, True), "UINT4": (4, False), "INT2": (2, True), "UINT2": (2, False)}


def _cast_cases_to_narrow_types():
    for case in conformance.yardstick_cases().values():
        node = case.model.graph.node[0]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        target = onnx.TensorProto.DataType.Name(attrs.get("to", 0))
        if case.op == "Cast" and (target in _FORMATS or target in _INTEGERS):
            yield case, target, bool(attrs.get("saturate", 1))


def test_every_cast_to_a_narrow_type_is_held_to_the_spec():
    """Recomputed cases (SPEC_EXPECTED) hold the spec's values; the others keep onnx's
    outputs, which must then agree with the spec, or the case belongs in SPEC_EXPECTED."""
    checked = []
    for case, target, saturate in _cast_cases_to_narrow_types():
        x = onnx.numpy_helper.to_array(case.inputs[0])
        want = np.asarray(conformance._as_array(case.outputs[0]))
        with np.errstate(invalid="ignore"):
            if target in _INTEGERS:
                np.testing.assert_array_equal(want.astype(np.int64), spec.integer_from_real(x, *_INTEGERS[target]),
                                              err_msg=case.name)
            else:
                fmt = _FORMATS[target]
                spec.same_values(want.astype(np.float64), spec.decode(spec.encode(x, fmt, saturate), fmt))
        checked.append(case.name)
    assert set(conformance.SPEC_EXPECTED) <= set(checked)
    assert len(checked) >= 18, checked
