"""A short, seeded mutation-fuzzing run of every reader (the long run is
``python benchmarks/fuzz.py --seconds N``): every mutated input loads bitwise
or raises one of our typed errors; none raises anything else, hangs, loads a
checksummed file with other values, or allocates far beyond its size."""

from __future__ import annotations

import pytest
from fuzz_engine import FAILURE_KINDS, fuzz

pytest.importorskip("hypothesis")

# Inputs per reader: a few seconds each on one core.
READERS = [
    pytest.param("torch-zip", 120, marks=pytest.mark.fuzz),
    pytest.param("torch-legacy", 150, marks=pytest.mark.fuzz),
    pytest.param("safetensors-file", 150, marks=pytest.mark.fuzz),
    pytest.param("safetensors-index", 150, marks=pytest.mark.fuzz),
    pytest.param("onnx-external", 120, marks=pytest.mark.fuzz),
    pytest.param("savedmodel", 100, marks=[pytest.mark.fuzz, pytest.mark.slow]),
]
NEEDS = {"safetensors-file": "safetensors", "onnx-external": "onnx", "savedmodel": "tensorflow"}


@pytest.mark.parametrize("reader,examples", READERS)
def test_mutated_inputs_load_bitwise_or_raise_a_typed_error(reader, examples, tmp_path):
    if reader in NEEDS:
        pytest.importorskip(NEEDS[reader])
    report = fuzz(reader, tmp_path, max_examples=examples, seed=0)
    counts = report.as_dict()
    assert counts["tried"] == examples
    assert {kind: counts[kind] for kind in FAILURE_KINDS} == dict.fromkeys(FAILURE_KINDS, 0), report.examples
    # The mutations reach both outcomes: some inputs survive intact, most are refused.
    assert counts["typed_errors"] > 0 and counts["loaded_bitwise"] > 0, counts
