"""Give a MatMul the bias an Add puts on its output, so TF computes both in one kernel.

A Linear layer exported to ONNX is MatMul(x, W) then Add(., b). With ``x`` of rank 3
or more the MatMul runs as one 2-D matrix product over x's rows, reshaped back
(``ops/nn_ops.py``), so the Add lands after a Reshape, where Grappler cannot fuse
it into the product (_FusedMatMul takes MatMul + BiasAdd only). Each MatMul whose
output only an Add reads becomes one MatMul node carrying the Add's other operand
as a third input. Its translator adds a row bias (one entry per column) to the
2-D product before reshaping, and adds anything else after, as the Add did: the
sum is the Add's either way, each output element the same float32 product plus
the same bias element. Which operands are constants is often only known while
translating (a torch Linear's weight reaches MatMul through a Transpose the
translator folds), so that is where the choice is made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import onnx


def fuse_matmul_bias(nodes: Sequence[onnx.NodeProto], outputs: Collection[str]) -> list[onnx.NodeProto]:
    """``nodes`` (in order; ``outputs`` the graph's output names) with each MatMul ->
    Add pair made one three-input MatMul writing the Add's output, where the MatMul's
    output feeds that Add alone and is not a graph output."""
    readers = Counter(name for node in nodes for name in node.input if name)
    producer = {node.output[0]: node for node in nodes
                if node.op_type == "MatMul" and len(node.input) == 2 and node.output}
    fused: dict[str, onnx.NodeProto] = {}  # MatMul output -> the MatMul that replaces the pair
    for node in nodes:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        for side in (0, 1):
            matmul = producer.get(node.input[side])
            if (matmul is None or readers[matmul.output[0]] != 1 or matmul.output[0] in outputs
                    or matmul.output[0] in fused):
                continue
            merged = onnx.NodeProto()
            merged.CopyFrom(matmul)
            merged.input.append(node.input[1 - side])
            merged.output[0] = node.output[0]
            fused[matmul.output[0]] = merged
            break
    if not fused:
        return list(nodes)
    kept = []
    for node in nodes:
        if node.op_type == "MatMul" and node.output and node.output[0] in fused:
            continue  # emitted where its Add was
        if node.op_type == "Add" and any(name in fused for name in node.input):
            kept.append(fused[next(name for name in node.input if name in fused)])
            continue
        kept.append(node)
    return kept
