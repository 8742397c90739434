"""Cast and CastLike to the float8 types TF computes with (E4M3FN, E5M2), against the
Cast operator's saturate=1 and saturate=0 tables (``onnx_cast_spec``).

A double is rounded once: narrowing it to float32 first would move values just past a
tie onto the tie, and ties-to-even would then pick the wrong neighbour.
"""

from __future__ import annotations

import numpy as np
import onnx_cast_spec as spec
import pytest

tf = pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402

RNG = np.random.default_rng(21)
FORMATS = [pytest.param(TensorProto.FLOAT8E4M3FN, spec.E4M3FN, id="e4m3fn"),
           pytest.param(TensorProto.FLOAT8E5M2, spec.E5M2, id="e5m2")]


def _probes(fmt: spec.Format) -> np.ndarray:
    """float64 values: the format's values, their midpoints, and doubles a hair either side
    of each midpoint (float32 cannot hold those), beyond the range, specials; both signs."""
    finite = spec.decode(np.arange(fmt.finite), fmt)
    ties = (finite[:-1] + finite[1:]) / 2
    values = np.concatenate([
        finite, ties, ties * (1 + 2.0 ** -40), ties * (1 - 2.0 ** -40),
        RNG.standard_normal(5000) * 2.0 ** RNG.integers(-20, 20, 5000),
        finite[-1] * np.array([1.01, 1.5, 2.0, 1e3]), [0.0, np.inf, np.nan],
    ])
    return np.concatenate([values, -values])


def _cast_model(op: str, source: int, to: int, saturate: int):
    inputs = [helper.make_tensor_value_info("x", source, ["n"])]
    initializers = []
    names = ["x"]
    if op == "CastLike":
        like = helper.make_tensor("like", to, [1], [0.0])
        initializers, names = [like], ["x", "like"]
        node = helper.make_node("CastLike", names, ["y"], saturate=saturate)
    else:
        node = helper.make_node("Cast", names, ["y"], to=to, saturate=saturate)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", to, ["n"])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("to,fmt", FORMATS)
@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("source", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE],
                         ids=TensorProto.DataType.Name)
@pytest.mark.parametrize("op", ["Cast", "CastLike"])
def test_float8_casts_follow_the_cast_operator_tables(op, source, saturate, to, fmt):
    with np.errstate(over="ignore"):
        x = _probes(fmt).astype(helper.tensor_dtype_to_np_dtype(source))
    got = translate(_cast_model(op, source, to, saturate))(x=x)["y"]
    want = spec.decode(spec.encode(x, fmt, bool(saturate)), fmt)
    spec.same_values(np.asarray(got).astype(np.float64), want)
