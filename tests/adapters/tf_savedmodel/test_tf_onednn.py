"""SavedModels run where TF's oneDNN kernels are on (its default on AVX-512 CPUs).

With oneDNN on, Grappler fuses DepthwiseConv2dNative + BiasAdd into a oneDNN kernel
that aborts the whole process when the convolution has explicit paddings (TF 2.21),
as MobileNet-style blocks (PP-OCR's detector) had: depthwise convolutions now pad
with SAME or an explicit Pad. Each SavedModel runs in a fresh process with
TF_ENABLE_ONEDNN_OPTS=1, where an abort is a non-zero exit code, and must match
onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("tensorflow")
onnxruntime = pytest.importorskip("onnxruntime")

from onednn_process import infer_with_onednn  # noqa: E402

from portability.adapters.tf_savedmodel.graph import translate  # noqa: E402
from portability.adapters.tf_savedmodel.savedmodel_io import save_module  # noqa: E402

RNG = np.random.default_rng(8)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _depthwise_blocks():
    """Depthwise Conv + bias at stride 1 (pads TF's SAME) and stride 2 (pads SAME would
    not give), then one without bias followed by a BatchNorm (folded into a bias), each
    followed by the hard-swish MobileNet blocks use."""
    nodes, constants = [], {}
    for i, (stride, bias, norm) in enumerate([(1, True, False), (2, True, False), (1, False, True)]):
        src, out = ("x" if i == 0 else f"h{i - 1}"), f"c{i}"
        inputs = [src, f"w{i}"] + ([f"b{i}"] if bias else [])
        constants[f"w{i}"] = _x(8, 1, 3, 3)
        if bias:
            constants[f"b{i}"] = _x(8)
        nodes.append(helper.make_node("Conv", inputs, [out], name=f"conv{i}", group=8, pads=[1, 1, 1, 1],
                                      strides=[stride, stride]))
        if norm:
            names = [f"{k}{i}" for k in ("scale", "shift", "mean", "var")]
            constants.update({names[0]: _x(8), names[1]: _x(8), names[2]: _x(8), names[3]: np.abs(_x(8)) + 0.5})
            nodes.append(helper.make_node("BatchNormalization", [out, *names], [f"n{i}"], name=f"bn{i}"))
            out = f"n{i}"
        nodes.append(helper.make_node("HardSwish", [out], [f"h{i}"], name=f"hswish{i}"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, "h", "w"])
    y = helper.make_tensor_value_info(f"h{i}", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(v, k) for k, v in constants.items()]
    graph = helper.make_graph(nodes, "depthwise", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.slow
def test_depthwise_convolutions_run_with_onednn_on(tmp_path):
    model = _depthwise_blocks()
    module = translate(model, compile_kernels=True)
    graph = module.serve.get_concrete_function().graph
    depthwise = [op for op in graph.get_operations() if op.type == "DepthwiseConv2dNative"]
    assert len(depthwise) == 3
    assert all(op.get_attr("padding") != b"EXPLICIT" for op in depthwise)
    path = tmp_path / "saved"
    save_module(module, None, path)
    feeds = {"x": _x(2, 8, 9, 12)}
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    got = infer_with_onednn(path, feeds, tmp_path)
    (value,) = got.values()
    np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-4)
