"""Recover state_dict names from a torch-exported ONNX graph that has no record.

The torch exporter leaves, on each node, the module path it came from
(``pkg.torch.onnx.name_scopes``) and the FX node it lowered
(``pkg.torch.onnx.fx_node``), which names the parameters it read as
``%p_<path_with_underscores>`` and buffers as ``%b_...``. Following the graph
from each initializer to the node that consumes it, and knowing which input of
that op is a weight, a bias or a running statistic, gives the original name and
layout: a Linear weight consumed by MatMul was stored transposed. Whatever does
not resolve this way is listed, never guessed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np
import onnx

_TOKEN = re.compile(r"%([pb])_(\w+)")
# op -> {input index: (parameter suffix, stored transposed?)}; Gemm is handled apart.
_ROLES: dict[str, dict[int, tuple[str, bool]]] = {
    "MatMul": {1: ("weight", True)},
    "Conv": {1: ("weight", False), 2: ("bias", False)},
    "ConvTranspose": {1: ("weight", False), 2: ("bias", False)},
    "LayerNormalization": {1: ("weight", False), 2: ("bias", False)},
    "BatchNormalization": {1: ("weight", False), 2: ("bias", False), 3: ("running_mean", False),
                           4: ("running_var", False)},
    "Gather": {0: ("weight", False)},
    "Add": {0: ("bias", False), 1: ("bias", False)},
}
# The FX op a node must have been lowered from for its roles to hold. A Conv that
# carries a BatchNorm's FX node is the two fused: its weight is neither's.
_FX_TARGETS: dict[str, tuple[str, ...]] = {
    "Gemm": ("aten.linear", "aten.addmm"),
    "MatMul": ("aten.linear", "aten.addmm", "aten.mm.", "aten.matmul"),
    "Add": ("aten.linear", "aten.addmm"),
    "Conv": ("aten.convolution", "aten.conv"),
    "ConvTranspose": ("aten.convolution", "aten.conv_transpose"),
    "LayerNormalization": ("aten.layer_norm", "aten.native_layer_norm"),
    "BatchNormalization": ("batch_norm",),
    "Gather": ("aten.embedding",),
}


@dataclass
class Recovered:
    """Tensors under recovered names plus what could not be mapped.

    Attributes:
        tensors: state_dict name -> array in the state_dict layout.
        unmapped: initializers tied to no parameter name (name -> shape).
        missing: parameters the graph's nodes read whose data was not found
            (folded away or merged), in the exporter's ``p_``/``b_`` spelling.
    """

    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    unmapped: dict[str, list[int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def is_torch_export(proto: onnx.ModelProto) -> bool:
    """Whether the torch exporter wrote this file."""
    return proto.producer_name == "pytorch"


def recover_torch_names(proto: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> Recovered:
    """Map a torch-exported graph's initializers back to state_dict names.

    Args:
        proto: the model.
        arrays: its initializers, decoded.

    Returns:
        A ``Recovered``.
    """
    out = Recovered()
    tokens: dict[str, str] = {}  # munged token -> kind
    used: set[str] = set()
    for node in proto.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        fx = meta.get("pkg.torch.onnx.fx_node", "")
        for kind, munged in _TOKEN.findall(fx):
            tokens.setdefault(munged, kind)
        module = _module_path(meta.get("pkg.torch.onnx.name_scopes", ""))
        for index, name in enumerate(node.input):
            if name not in arrays:
                continue
            role = _role(node, index, fx)
            if role is None:
                continue
            suffix, transposed = role
            full = f"{module}.{suffix}" if module else suffix
            if _munge(full) not in tokens:
                continue
            arr = arrays[name]
            out.tensors.setdefault(full, np.ascontiguousarray(arr.T) if transposed and arr.ndim == 2 else arr)
            used.add(name)
    recovered = {_munge(n) for n in out.tensors}
    for name, arr in arrays.items():
        if name in used:
            continue
        if _munge(name) in tokens and name not in out.tensors:
            out.tensors[name] = arr
            recovered.add(_munge(name))
        elif name not in out.tensors:
            out.unmapped[name] = list(arr.shape)
    out.missing = sorted(f"{kind}_{m}" for m, kind in tokens.items() if m not in recovered)
    return out


def _munge(name: str) -> str:
    return name.replace(".", "_").lower()


def _module_path(scopes: str) -> str:
    try:
        parts = ast.literal_eval(scopes) if scopes else []
    except (ValueError, SyntaxError):
        return ""
    return parts[-2] if isinstance(parts, list) and len(parts) >= 2 else ""


def _role(node: onnx.NodeProto, index: int, fx: str) -> tuple[str, bool] | None:
    target = fx.partition("target=")[2].partition("]")[0]
    if not any(t in target for t in _FX_TARGETS.get(node.op_type, ())):
        return None
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return {1: ("weight", not trans_b), 2: ("bias", False)}.get(index)
    if node.op_type == "MatMul" and "aten.linear" not in target:
        return ("weight", False) if index == 1 else None  # addmm (GPT-2's Conv1D) keeps (in, out)
    return _ROLES.get(node.op_type, {}).get(index)
