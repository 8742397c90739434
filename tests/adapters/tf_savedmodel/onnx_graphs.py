"""Build small ONNX graphs and check the TF translation against onnx's reference evaluator.

Feeds become graph inputs with symbolic dims (so the translated module sees
dynamic shapes), ``constants`` become initializers (known at translation
time), and ``runtime`` arrays become extra graph inputs (known only when the
graph runs), so a test can pick how an op receives its axes, pads or sizes.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from portability.adapters.tf_savedmodel.graph import translate

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
          np.dtype(np.bool_): TensorProto.BOOL, np.dtype(np.float16): TensorProto.FLOAT16}


def make_model(nodes, feeds, constants=None, opset=21, outputs=1, static=False, out_type=None):
    """A graph over ``feeds`` (symbolic dims unless ``static``) with ``constants`` as
    initializers; outputs are untyped unless ``out_type`` (an ONNX element type)."""
    inputs = [helper.make_tensor_value_info(n, _TYPES[v.dtype], list(v.shape) if static else
                                            [f"{n}_{i}" for i in range(v.ndim)])
              for n, v in feeds.items()]
    names = [o for o in nodes[-1].output if o][:outputs]
    outs = [helper.make_tensor_value_info(o, out_type or TensorProto.UNDEFINED, None) for o in names]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in (constants or {}).items()]
    graph = helper.make_graph(nodes, "g", inputs, outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_both(nodes, feeds, constants=None, opset=21, outputs=1, static=False, expected=None):
    """(expected outputs, TF outputs) as lists of numpy arrays. The expected outputs are
    onnx's reference evaluator's, unless ``expected`` gives them (from ``spec_oracles``,
    where the evaluator departs from the spec)."""
    model = make_model(nodes, feeds, constants, opset, outputs, static)
    if expected is None:
        expected = ReferenceEvaluator(model).run(None, feeds)
    module = translate(model)
    got = module.serve(*feeds.values())
    return list(expected), [got[k].numpy() for k in module.output_names]


def check(nodes, feeds, constants=None, opset=21, outputs=1, static=False, rtol=1e-5, atol=1e-5,
          expected=None):
    """Assert the translation matches the expected outputs (see ``run_both``) in shape,
    dtype and value."""
    expected, got = run_both(nodes, feeds, constants, opset, outputs, static, expected)
    assert len(got) == len(expected)
    for want, value in zip(expected, got, strict=True):
        assert value.shape == want.shape
        assert value.dtype == want.dtype
        np.testing.assert_allclose(value, want, rtol=rtol, atol=atol)
    return got


def node(op, inputs, outputs=("y",), **attrs):
    """helper.make_node with a name, so errors can name the node."""
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_node", **attrs)
