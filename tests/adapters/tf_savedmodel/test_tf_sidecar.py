"""Our record beside a SavedModel (``assets.extra/portability.json``): a damaged one is the
same FormatError whether the reader or the runner opens it; the runner never hands back
raw carrier codes in its place."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tensorflow")
ml_dtypes = pytest.importorskip("ml_dtypes")
from onnx import TensorProto, helper

from portability.adapters.tf_savedmodel.graph import translate
from portability.adapters.tf_savedmodel.savedmodel_io import SIDECAR, read_savedmodel, save_module
from portability.adapters.tf_savedmodel.serving import TFSavedModelRunner
from portability.errors import FormatError

X = np.array([0.5, -6.0, 1.5, -0.0], ml_dtypes.float4_e2m1fn)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A SavedModel whose output is FLOAT8E5M2FNUZ, held in a uint8 carrier."""
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E5M2FNUZ)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT4E2M1, ["n"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT8E5M2FNUZ, ["n"])])
    module = translate(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)]))
    path = tmp_path_factory.mktemp("sidecar") / "saved"
    save_module(module, None, path)
    return path


def _damaged(saved, tmp_path, edit):
    copy = tmp_path / "saved"
    shutil.copytree(saved, copy)
    record = copy / SIDECAR
    record.write_text(edit(record.read_text()))
    return copy


def _with(key, value):
    def edit(text):
        data = json.loads(text)
        data[key] = value
        return json.dumps(data)
    return edit


@pytest.mark.parametrize("edit, why", [
    (lambda text: text[: len(text) // 2], "Unterminated string|Expecting"),
    (_with("carried_outputs", {"y": "FLOAT8E5M2FNUZZ"}), "FLOAT8E5M2FNUZZ"),
    (_with("carried_outputs", ["y"]), "'carried_outputs' is not an object"),
    (_with("variables", None), "'variables' is not an object"),
], ids=["truncated", "unknown-type", "carried-not-object", "variables-not-object"])
def test_a_damaged_record_is_one_error_for_the_reader_and_the_runner(saved, tmp_path, edit, why):
    damaged = _damaged(saved, tmp_path, edit)
    with pytest.raises(FormatError, match=why) as by_reader:
        read_savedmodel(damaged)
    with pytest.raises(FormatError) as by_runner:
        with TFSavedModelRunner(damaged) as runner:
            runner.infer({"x": X})
    assert str(by_runner.value) == str(by_reader.value)
    assert str(by_reader.value).startswith(f"{damaged / SIDECAR}: damaged portability record (")


def test_the_intact_record_gives_the_declared_type_and_none_gives_the_carrier(saved, tmp_path):
    with TFSavedModelRunner(saved) as runner:
        (out,) = runner.infer({"x": X}).values()
    assert out.dtype == ml_dtypes.float8_e5m2fnuz
    bare = tmp_path / "bare"
    shutil.copytree(saved, bare)
    (bare / SIDECAR).unlink()  # a SavedModel another tool wrote: the signature's own types
    with TFSavedModelRunner(bare) as runner:
        (codes,) = runner.infer({"x": X}).values()
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, out.view(np.uint8))
