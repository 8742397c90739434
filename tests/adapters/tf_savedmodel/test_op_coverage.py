"""Every ONNX op the TensorFlow translator registers is named in at least one test of its own.

ONNX's conformance cases exercise every registered op as well, but a translator
also needs a test written against it (its attributes, its error messages), so
the conformance tier does not count here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

from portability.adapters.tf_savedmodel.ops.registry import supported_ops

TESTS_DIR = Path(__file__).resolve().parent
# spec_oracles.py names activation functions (Relu, Elu...) that are not tests of those ops.
NOT_COUNTED = {Path(__file__).name, "test_conformance.py", "spec_oracles.py", "test_spec_oracles.py"}


def _named_ops() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(TESTS_DIR.glob("*.py"))
                     if p.name not in NOT_COUNTED)
    return set(re.findall(r"""["']([A-Z][A-Za-z0-9]*)["']""", text))


def test_every_registered_op_is_named_in_a_test():
    untested = sorted(set(supported_ops()) - _named_ops())
    assert not untested, f"registered ONNX ops named in no test under {TESTS_DIR}: {untested}"
