"""The op registry refuses a second translator for an op, as the format registry refuses a
second adapter for a format name."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

from onnx import helper

from portability.adapters.tf_savedmodel.ops import registry


def _relu_node():
    return helper.make_node("Relu", ["x"], ["y"], name="relu_node")


def test_a_second_translator_for_a_registered_op_is_refused():
    original = registry.translator_for(_relu_node())

    def impostor(node, ctx):
        return None

    with pytest.raises(ValueError, match=r"ONNX op 'Relu' is registered twice: .*\.impostor"):
        registry.register("Relu")(impostor)
    assert registry.translator_for(_relu_node()) is original


def test_a_refused_registration_registers_none_of_its_op_types():
    def both(node, ctx):
        return None

    with pytest.raises(ValueError, match="'Relu' is registered twice"):
        registry.register("NoSuchOpForThisTest", "Relu")(both)
    assert "NoSuchOpForThisTest" not in registry.supported_ops()


def test_registering_the_same_translator_again_changes_nothing():
    original = registry.translator_for(_relu_node())
    assert registry.register("Relu")(original) is original
    assert registry.translator_for(_relu_node()) is original
