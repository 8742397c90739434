"""Weights that live outside ``graph.initializer``, named after the node that reads them.

paddle2onnx, CNTK, older tf2onnx releases and hand-built ``onnx.helper``
graphs store weights as ``Constant`` nodes, and many exporters put ``Identity``
nodes between an initializer and its reader. Such a graph carries no useful
names, so each weight is named after its consumer: the consumer's op type in
snake case, the consumer's ordinal among nodes of that type, and the role the
weight plays there (``conv_3.weight``, ``batch_normalization_0.running_var``).

Nothing in the graph is renamed: the mapping (our name -> the graph's value
name) is recorded in the checkpoint's metadata, and a translation of the graph
binds the weights through it. ``lift_constants`` gives translators a copy of
the graph in which those ``Constant`` nodes are initializers under their
original value names.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np
import onnx

from portability.adapters.onnx.tensors import tensor_to_numpy

KEY_CONSTANT_NAMES = "portability.onnx.constant_names"

# Role of each input position, per consumer op type; other positions are ``input{i}``.
_ROLES: dict[str, tuple[str, ...]] = {
    "Conv": ("input", "weight", "bias"),
    "ConvTranspose": ("input", "weight", "bias"),
    "Gemm": ("input", "weight", "bias"),
    "MatMul": ("input", "weight"),
    "BatchNormalization": ("input", "weight", "bias", "running_mean", "running_var"),
    "InstanceNormalization": ("input", "weight", "bias"),
    "LayerNormalization": ("input", "weight", "bias"),
    "GroupNormalization": ("input", "weight", "bias"),
    "PRelu": ("input", "weight"),
    "Add": ("input", "bias"),
    "Mul": ("input", "scale"),
    "Gather": ("weight", "indices"),
}
# Ops that read a weight in one of their roles above, whatever its size.
_PARAMETRIC = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "InstanceNormalization",
               "LayerNormalization", "GroupNormalization", "PRelu"}
# Ops that only reshape a weight on its way to its reader: naming looks past them.
_LAYOUT = {"Reshape", "Unsqueeze", "Squeeze", "Transpose", "Cast", "Flatten"}


@dataclass
class ConstantWeight:
    """One weight found outside the initializers (or behind an Identity chain).

    Attributes:
        name: our name, after the consumer (``conv_0.weight``).
        value_name: the graph's name for the value (the Constant's output).
        consumers: the reading nodes' names (or ``op_type#ordinal`` when unnamed).
    """

    name: str
    value_name: str
    consumers: list[str] = field(default_factory=list)


def snake(op_type: str) -> str:
    """``BatchNormalization`` -> ``batch_normalization``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op_type).lower()


def _is_weight(value: np.ndarray, reader_op: str) -> bool:
    """Floating-point tensors are weights, except one-element literals of elementwise
    ops (``Clip`` bounds, ``Div`` by 6); integer ones are shapes, axes and indices."""
    floating = value.dtype.kind == "f" or value.dtype.name == "bfloat16"
    return floating and (value.size > 1 or reader_op in _PARAMETRIC)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
            return tensor_to_numpy(attribute.t)
    return None


def _through_identities(graph: onnx.GraphProto) -> dict[str, str]:
    """Identity output -> the value at the start of its chain."""
    source: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Identity" and node.input and node.output:
            source[node.output[0]] = source.get(node.input[0], node.input[0])
    return source


def _consumers(graph: onnx.GraphProto, chain: dict[str, str]) -> dict[str, list[tuple]]:
    """Value -> [(consumer label, naming stem, role, op type, first output)] in graph order,
    looking through Identity."""
    ordinals: dict[str, int] = {}
    found: dict[str, list[tuple[str, str, str]]] = {}
    for node in graph.node:
        if node.op_type == "Identity":
            continue
        ordinal = ordinals.get(node.op_type, 0)
        ordinals[node.op_type] = ordinal + 1
        stem = f"{snake(node.op_type)}_{ordinal}"
        label = node.name or f"{node.op_type}#{ordinal}"
        roles = _ROLES.get(node.op_type, ())
        for position, value in enumerate(node.input):
            if not value:
                continue
            role = roles[position] if position < len(roles) else f"input{position}"
            output = node.output[0] if node.output else ""
            found.setdefault(chain.get(value, value), []).append((label, stem, role, node.op_type, output))
    return found


def find_constant_weights(model: onnx.ModelProto, initializer_names: set[str]) -> tuple[
        dict[str, np.ndarray], list[ConstantWeight]]:
    """Every floating-point ``Constant`` node that some node reads, named after its first reader.

    Args:
        model: the ONNX model.
        initializer_names: names already taken by initializers (never reused).

    Returns:
        (our name -> value, one ``ConstantWeight`` record each), in graph order.
    """
    graph = model.graph
    chain = _through_identities(graph)
    readers = _consumers(graph, chain)
    taken = set(initializer_names)
    arrays: dict[str, np.ndarray] = {}
    records: list[ConstantWeight] = []
    for node in graph.node:
        if node.op_type != "Constant" or not node.output:
            continue
        value = _constant_value(node)
        value_name = node.output[0]
        if value is None or value_name not in readers:
            continue
        stem, role, op_type = _naming_reader(value_name, readers)
        if not _is_weight(value, op_type):
            continue
        name = _unique(f"{stem}.{role}", taken)
        taken.add(name)
        arrays[name] = value
        records.append(ConstantWeight(name, value_name, [c[0] for c in readers[value_name]]))
    return arrays, records


def _naming_reader(value_name: str, readers: dict[str, list[tuple]]) -> tuple[str, str, str]:
    """(stem, role, op type) of the reader a weight is named after: the first reader,
    or, when that only reshapes it (input 0 of ``Reshape``...), whoever reads the result."""
    _, stem, role, op_type, output = readers[value_name][0]
    seen = {value_name}
    while op_type in _LAYOUT and role == "input0" and output in readers and output not in seen:
        seen.add(output)
        _, stem, role, op_type, output = readers[output][0]
    return stem, role, op_type


def identity_readers(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Initializer name -> the nodes reading it through an Identity chain (for the record)."""
    initializers = {i.name for i in model.graph.initializer}
    chain = _through_identities(model.graph)
    behind = {start for end, start in chain.items() if start in initializers}
    readers = _consumers(model.graph, chain)
    return {name: [c[0] for c in readers.get(name, [])] for name in sorted(behind)}


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    index = 1
    while f"{name}_{index}" in taken:
        index += 1
    return f"{name}_{index}"


def lift_constants(model: onnx.ModelProto, value_names: set[str]) -> onnx.ModelProto:
    """A copy of ``model`` in which the ``Constant`` nodes producing ``value_names`` are
    initializers of the same names (the graph itself is not renamed)."""
    lifted = copy.deepcopy(model)
    keep = []
    for node in lifted.graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] in value_names:
            tensor = next(a.t for a in node.attribute if a.name == "value")
            tensor.name = node.output[0]
            lifted.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del lifted.graph.node[:]
    lifted.graph.node.extend(keep)
    return lifted


def value_names(metadata: dict[str, str]) -> dict[str, str]:
    """The graph's value name -> our name, from a checkpoint read by this module ({} if none).

    Raises:
        FormatError: a damaged record.
    """
    import json

    from portability.errors import FormatError

    text = metadata.get(KEY_CONSTANT_NAMES)
    if not text:
        return {}
    try:
        return {entry["value"]: name for name, entry in json.loads(text).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"metadata {KEY_CONSTANT_NAMES!r} is damaged ({exc})") from exc
