"""Where an export keeps the checkpoint tensors its graph does not read.

The export writes the graph unfolded (no BatchNorm folded into a Conv), so every
tensor the graph computes with is an initializer under its state_dict name, held
once. What no node reads (a BatchNorm's ``num_batches_tracked``, a head the
forward pass skips) cannot be an initializer: onnxruntime drops every unused
initializer with a warning each time it opens the file. Those tensors become
``Constant`` nodes of a model-local function, ``portability.originals``, that
no node calls: runtimes leave it alone, ``onnx.checker`` accepts it, and the
reader takes the values back from it, each under the value name the name map
records (``portability/<name>``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnx_ir as ir

DOMAIN = "portability"
NAME = "originals"


def attach_originals(model: ir.Model, tensors: Mapping[str, np.ndarray]) -> None:
    """Keep ``tensors`` (value name -> array) in the model as the ``portability.originals``
    function (nothing is added when there are none).

    Args:
        model: the exported model, changed in place.
        tensors: the tensors no node reads, by the value name the name map gives them.
    """
    if not tensors:
        return
    values, nodes = [], []
    for name, array in tensors.items():
        value = ir.Value(name=name)
        nodes.append(ir.Node("", "Constant", inputs=(), attributes=[
            ir.AttrTensor("value", ir.tensor(np.asarray(array, order="C"), name=name))], outputs=[value]))
        values.append(value)
    opset = int(model.opset_imports.get("", 0)) or onnx.defs.onnx_opset_version()
    graph = ir.Graph(inputs=(), outputs=values, nodes=nodes, opset_imports={"": opset}, name=NAME)
    function = ir.Function(DOMAIN, NAME, graph=graph, attributes=[])
    model.functions[function.identifier()] = function
    model.opset_imports.setdefault(DOMAIN, 1)


def read_originals(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The tensors kept by ``attach_originals``, by value name (empty when there are none).

    Raises:
        FormatError: a tensor with a type numpy cannot hold (names it).
    """
    from portability.adapters.onnx.tensors import tensor_to_numpy  # imports ml_dtypes: only when reading

    out: dict[str, np.ndarray] = {}
    for function in proto.functions:
        if function.domain != DOMAIN or function.name != NAME:
            continue
        for node in function.node:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if node.op_type == "Constant" and value is not None and node.output:
                out[node.output[0]] = tensor_to_numpy(value)
    return out


def kept_bytes(model: ir.Model) -> int:
    """Bytes the ``portability.originals`` function holds: inline in the graph file, since
    external data covers initializers only."""
    function = model.functions.get((DOMAIN, NAME, ""))
    if function is None:
        return 0
    return sum(int(attr.value.nbytes) for node in function for attr in node.attributes.values()
               if attr.type == ir.AttributeType.TENSOR)
