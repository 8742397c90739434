"""ONNX's node conformance cases through the TF translator (the ``conformance`` tier).

One test per single-op case of the yardstick's op types, compared at the ONNX
backend runner's tolerances. Cases in ``ops/known_gaps.py`` are strict xfail:
when one starts passing, the tier fails until it is removed from that list.
Collecting the cases runs ONNX's case generators (~20 s); deselecting the
tier with ``-m "not conformance"`` skips that.
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
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
