"""The lowest ONNX IR version a graph can carry, and lowering a model to it.

Exporters stamp the IR version of the onnx release they were built with (torch 2.13
writes IR 10 even at opset 17), and runtimes refuse a file whose IR version is newer
than theirs (onnxruntime 1.16: "Unsupported model IR version: 10, max supported IR
version: 9"), although nothing in the graph needs it. The lowest version a graph
allows is the largest of:

- per opset domain (``ai.onnx``, ``ai.onnx.ml``, ``ai.onnx.training``), the IR
  version of the first onnx release that defined the graph's opset, read from
  ``onnx.helper.VERSION_TABLE``;
- per feature the graph uses, the IR version that introduced it (the comments on
  ``Version`` in ``onnx.proto``): bfloat16 4, sparse initializers 6, model-local
  functions and optional/sparse types 8, float8 and function attribute defaults 9,
  int4/uint4 and function overloads 10, float4 and device configurations 11,
  float8e8m0 12, int2/uint2 13, float6 14.

``metadata_props`` on nodes, values, graphs and functions (IR 10) are annotations:
the torch exporter records each node's module and FX node there, which the import of
a file without our record uses to find folded weights. They do not raise the floor
and lowering keeps them (``onnx.checker`` accepts them at any IR version, and a
reader whose protobuf predates the field skips it), and the note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx_ir as ir

_TYPE_IR = {"BFLOAT16": 4, "FLOAT8E4M3FN": 9, "FLOAT8E4M3FNUZ": 9, "FLOAT8E5M2": 9, "FLOAT8E5M2FNUZ": 9,
            "UINT4": 10, "INT4": 10, "FLOAT4E2M1": 11, "FLOAT8E8M0": 12, "UINT2": 13, "INT2": 13,
            "FLOAT6E2M3": 14, "FLOAT6E3M2": 14}
_DOMAIN_COLUMN = {"": 2, "ai.onnx": 2, "ai.onnx.ml": 3, "ai.onnx.training": 4}
METADATA_IR = 10


@dataclass
class IrNeeds:
    """What a model needs: ``version`` and, per IR version above 3, why (the features)."""

    version: int = 3
    reasons: dict[int, list[str]] = field(default_factory=dict)
    annotated: int = 0  # how many nodes, values, graphs and functions carry metadata_props

    def need(self, version: int, why: str) -> None:
        if version > 3:
            found = self.reasons.setdefault(version, [])
            if why not in found:
                found.append(why)
        self.version = max(self.version, version)

    def why(self, version: int | None = None) -> str:
        """The features that need ``version`` (default: the lowest allowed)."""
        at = self.version if version is None else version
        return ", ".join(self.reasons.get(at, [])) or "the opset"


def opset_ir(domain: str, opset: int) -> int | None:
    """The IR version of the first onnx release that defined ``opset`` of ``domain``
    (None for a domain onnx does not version, or an opset newer than this onnx knows)."""
    import onnx.helper

    column = _DOMAIN_COLUMN.get(domain)
    if column is None:
        return None
    for row in onnx.helper.VERSION_TABLE:
        if len(row) > column and row[column] >= opset:
            return int(row[1])
    return None


def needs(model: ir.Model) -> IrNeeds:
    """The lowest IR version ``model`` allows, with the features behind it.

    Raises:
        ValueError: an opset of a standard domain newer than this onnx release knows.
    """
    found = IrNeeds()
    for domain, opset in model.opset_imports.items():
        version = opset_ir(domain, opset)
        if version is None and domain in _DOMAIN_COLUMN:
            raise ValueError(f"opset {opset} of domain {domain or 'ai.onnx'!r} is newer than this onnx release knows")
        if version is not None:
            found.need(version, f"opset {opset}" + (f" of {domain}" if domain else ""))
    if model.functions:
        found.need(8, "model-local functions")
    for function in model.functions.values():
        if function.overload:
            found.need(10, "function overloads")
        if any(getattr(a, "value", None) is not None for a in function.attributes.values()):
            found.need(9, "function attribute defaults")
        _count_metadata(function, found)
        _walk(function, found)
    if getattr(model, "device_configurations", None):
        found.need(11, "device configurations")
    _walk(model.graph, found)
    return found


def _walk(graph, found: IrNeeds) -> None:
    """Types, attributes, overloads and annotations of a graph, its nodes and subgraphs."""
    _count_metadata(graph, found)
    values = list(getattr(graph, "inputs", [])) + list(getattr(graph, "outputs", []))
    initializers = getattr(graph, "initializers", {})
    values += list(initializers.values())
    for node in ir.traversal.RecursiveGraphIterator(graph):
        values += list(node.outputs)
        _count_metadata(node, found)
        if node.overload:
            found.need(10, "function overloads")
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.TENSOR:
                _need_type(attr.value.dtype, found, "attribute")
            elif attr.type == ir.AttributeType.TENSORS:
                for tensor in attr.value:
                    _need_type(tensor.dtype, found, "attribute")
            elif attr.type in (ir.AttributeType.SPARSE_TENSOR, ir.AttributeType.SPARSE_TENSORS):
                found.need(6, "sparse tensors")
    for value in values:
        if value is None:
            continue
        _count_metadata(value, found)
        _need_value_type(value.type, found)


def _need_value_type(kind, found: IrNeeds) -> None:
    if kind is None:
        return
    if isinstance(kind, ir.OptionalType):
        found.need(8, "optional types")
    elif isinstance(kind, ir.SparseTensorType):
        found.need(8, "sparse tensor types")
    element = getattr(kind, "elem_type", None)
    if isinstance(element, ir.DataType):
        _need_type(element, found, "tensor")
    elif element is not None:
        _need_value_type(element, found)


def _need_type(dtype, found: IrNeeds, where: str) -> None:
    name = getattr(dtype, "name", "")
    if name in _TYPE_IR:
        found.need(_TYPE_IR[name], f"{name.lower()} {'tensors' if where == 'tensor' else 'attributes'}")


def _count_metadata(obj, found: IrNeeds) -> None:
    if getattr(obj, "metadata_props", None):
        found.annotated += 1


def lower(model: ir.Model, max_ir: int | None = None) -> list[str]:
    """Set ``model.ir_version`` to the lowest the graph allows (annotations kept).
    Never raises the version an exporter wrote.

    Args:
        model: the model, changed in place.
        max_ir: the newest IR version the target runtime reads, or None.

    Returns:
        Notes saying what changed (empty when nothing did).

    Raises:
        ValueError: the graph needs an IR version above ``max_ir`` (the message says which
            features need it).
    """
    found = needs(model)
    if max_ir is not None and found.version > max_ir:
        raise ValueError(f"the graph needs ONNX IR version {found.version} ({found.why()}), newer than the "
                         f"target's IR {max_ir}")
    old = int(model.ir_version)
    if found.version >= old:
        return []
    notes = [f"ONNX IR version {old} -> {found.version}, the lowest {found.why()} allows "
             "(per onnx.helper.VERSION_TABLE and the graph's features)"]
    if found.version < METADATA_IR and found.annotated:
        notes.append(f"metadata_props of {found.annotated} nodes/values/graphs kept (an IR {METADATA_IR} field "
                     "that older readers skip)")
    model.ir_version = found.version
    return notes
