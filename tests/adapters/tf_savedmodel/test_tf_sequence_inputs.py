"""Sequence and optional graph inputs: the translated module takes them when called,
and a SavedModel, whose serving signature takes tensors only, refuses them by name."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
tf = pytest.importorskip("tensorflow")
from onnx import TensorProto, helper

from portability.adapters.tf_savedmodel.graph import translate
from portability.errors import UnsupportedOpError

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = -np.arange(4, dtype=np.float32).reshape(2, 2)


def _identity_model(value_info):
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["y"])], "g", [value_info("s")],
                              [value_info("y")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _sequence(name):
    return helper.make_tensor_sequence_value_info(name, TensorProto.FLOAT, None)


def _optional_sequence(name):
    element = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    return helper.make_value_info(name, helper.make_optional_type_proto(element))


def test_identity_passes_a_sequence_input_through_element_by_element():
    module = translate(_identity_model(_sequence))
    for items in ([A, B], [B]):  # another length is another trace, not an error
        got = module(s=items)["y"]
        assert isinstance(got, list) and len(got) == len(items)
        for value, want in zip(got, items, strict=True):
            np.testing.assert_array_equal(value.numpy(), want)


def test_identity_passes_an_optional_through_present_or_empty():
    module = translate(_identity_model(_optional_sequence))
    got = module(s=[A])["y"]
    assert len(got) == 1
    np.testing.assert_array_equal(got[0].numpy(), A)
    assert module(s=None)["y"] is None


@pytest.mark.parametrize("value_info,kind", [(_sequence, "sequence"), (_optional_sequence, "optional")])
def test_saving_names_the_input_no_signature_can_take(tmp_path, value_info, kind):
    from portability.adapters.tf_savedmodel.savedmodel_io import save_module

    module = translate(_identity_model(value_info))
    assert module.serve.input_signature is None
    with pytest.raises(UnsupportedOpError, match=rf"graph input 's' is an ONNX {kind}: TF serving signatures "
                                                 r"take tensors only; nothing was written"):
        save_module(module, None, tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
