"""Fold an inference BatchNormalization into the Conv that feeds it, in a compiled graph.

Grappler's remapper fuses Conv2D + BiasAdd + activation into one kernel, but
not Conv2D + BiasAdd + FusedBatchNorm: a BatchNorm after a biased Conv (VGG-BN,
U-Nets, most detectors exported from torch) runs as passes of its own over the
feature map (Mul and Add, or oneDNN's BatchNorm kernel), and the activation
after it can no longer join the convolution. Where the kernel, the bias and
the BatchNorm's statistics are all known while translating (constants, or
weights the serving graph compiles in), the BatchNorm is folded into the
kernel and bias, as onnxruntime does when it opens a session:

    s = scale / sqrt(var + epsilon)      W' = W * s (per output channel)
    b' = (b - mean) * s + B

computed in float64 and rounded once to the kernel's dtype. The graph that reads
its weights from variables is left as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

# Folded values are named under this prefix, which no exporter writes.
FOLDED_PREFIX = "portability.folded/"


def fold_conv_batchnorm(nodes: Sequence[onnx.NodeProto], outputs: Collection[str],
                        known: Mapping[str, np.ndarray]) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    """``nodes`` (a graph's, in order; ``outputs`` its output names) with each foldable
    Conv -> BatchNormalization pair made one Conv (writing the BatchNorm's output), and
    the new kernels and biases by name.

    A pair folds when the Conv's output feeds that BatchNorm alone and is not a graph
    output, the BatchNorm runs in inference mode with its one output, every weight
    involved is in ``known`` and floating point, and the statistics have one entry
    per output channel.
    """
    readers = Counter(name for node in nodes for name in node.input if name)
    producer = {node.output[0]: node for node in nodes if node.op_type == "Conv" and node.output}
    folded: dict[str, onnx.NodeProto] = {}  # Conv output -> the Conv that replaces the pair
    values: dict[str, np.ndarray] = {}
    for node in nodes:
        conv = producer.get(node.input[0]) if node.op_type == "BatchNormalization" and node.input else None
        if conv is None or readers[conv.output[0]] != 1 or conv.output[0] in outputs:
            continue
        pair = _folded(conv, node, known)
        if pair is None:
            continue
        kernel_name, bias_name = (f"{FOLDED_PREFIX}{node.output[0]}/{part}" for part in ("kernel", "bias"))
        values[kernel_name], values[bias_name] = pair
        merged = onnx.NodeProto()
        merged.CopyFrom(conv)
        del merged.input[:]
        merged.input.extend([conv.input[0], kernel_name, bias_name])
        merged.output[0] = node.output[0]
        folded[conv.output[0]] = merged
    if not folded:
        return list(nodes), {}
    kept = []
    for node in nodes:
        if node.op_type == "Conv" and node.output and node.output[0] in folded:
            continue  # emitted where its BatchNorm was, reading what it read
        if node.op_type == "BatchNormalization" and node.input and node.input[0] in folded:
            kept.append(folded[node.input[0]])
            continue
        kept.append(node)
    return kept, values


def _folded(conv: onnx.NodeProto, bn: onnx.NodeProto, known: Mapping[str, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """(kernel, bias) of the Conv with the BatchNorm folded in, or None where it cannot fold."""
    attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
    if attrs.get("training_mode", 0) or attrs.get("spatial", 1) != 1 or len([o for o in bn.output if o]) != 1:
        return None
    statistics = list(bn.input[1:5])
    has_bias = len(conv.input) > 2 and conv.input[2] != ""
    needed = [*conv.input[1:3 if has_bias else 2], *statistics]
    if len(statistics) != 4 or len(conv.input) < 2 or not all(n and n in known for n in needed):
        return None
    kernel = np.asarray(known[conv.input[1]])
    if kernel.dtype not in (np.float16, np.float32, np.float64) or kernel.ndim < 3:
        return None
    channels = kernel.shape[0]
    scale, shift, mean, var = (np.asarray(known[n], np.float64).reshape(-1) for n in statistics)
    if any(v.size != channels for v in (scale, shift, mean, var)):
        return None
    bias = np.asarray(known[conv.input[2]], np.float64).reshape(-1) if has_bias else np.zeros(channels)
    if bias.size != channels:
        return None
    factor = scale / np.sqrt(var + np.float64(attrs.get("epsilon", 1e-5)))
    new_kernel = kernel.astype(np.float64) * factor.reshape((-1,) + (1,) * (kernel.ndim - 1))
    new_bias = (bias - mean) * factor + shift
    return new_kernel.astype(kernel.dtype), new_bias.astype(kernel.dtype)
