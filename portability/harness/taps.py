"""Intermediate tensors of a run, and how they are matched across runtimes.

- torch: a forward hook on every submodule records its output (the first
  tensor of a tuple) per call, keyed ``path`` for the first call and
  ``path#N`` for the N-th (a module used twice), in completion order.
- ONNX: every node output is marked as a graph output, as Polygraphy's
  "mark all" does, and onnxruntime returns them all by value name.
- ONNX nodes name their torch module: the dynamo exporter writes the module
  path into ``metadata_props["pkg.torch.onnx.name_scopes"]`` (``['', 'layers',
  'layers.0', 'layers.0.act', 'gelu']``: the enclosing modules, then the FX
  node); the TorchScript exporter names nodes ``/layers/layers.0/act/Gelu``. A
  module call's value in the graph is the output of the last node of its
  call's run of nodes that has the module output's shape.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
MAX_GRAPH_BYTES = 1_800_000_000  # a graph marked for all outputs must still serialise


@dataclass
class Call:
    """One module call's output: ``key`` (``path`` or ``path#N``), module path, class, and its
    floating tensors in output order (an LSTM's sequence, then its final states)."""

    key: str
    path: str
    op: str
    tensors: list[np.ndarray]

    @property
    def value(self) -> np.ndarray:
        """The first output tensor."""
        return self.tensors[0]


def torch_calls(module: Any, feed: dict[str, np.ndarray], output_names) -> list[Call]:
    """Run a torch module with hooks on every submodule; its calls in completion order."""
    import torch

    from portability.adapters.torch import models as torch_models

    calls: list[Call] = []
    counts: dict[str, int] = {}
    handles = []

    def hook_for(path: str, kind: str) -> Callable:
        def hook(_mod, _args, out) -> None:
            tensors = [t.detach().cpu().numpy().copy() for t in _tensors(out) if t.is_floating_point()]
            if not tensors:
                return
            counts[path] = counts.get(path, 0) + 1
            key = path if counts[path] == 1 else f"{path}#{counts[path]}"
            calls.append(Call(key, path, kind, tensors))
        return hook

    for path, sub in module.named_modules():
        if path:
            handles.append(sub.register_forward_hook(hook_for(path, type(sub).__name__)))
    try:
        with torch.inference_mode():
            torch_models.run_model(module, feed, output_names)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _tensors(out: Any) -> list:
    """Every tensor of a module's output, flattened in order."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _tensors(item)]
    return []


def onnx_values(path: str | Path, feed: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """Run an ONNX file with every node output marked; (the model proto, value name -> array).

    Raises:
        ValueError: the graph is too large to mark (its proto would pass 2 GB).
    """
    import onnx
    import onnxruntime as ort

    from portability.adapters.onnx.safety import model_file

    file = model_file(path)
    # External data stays in its file (ORT reads it from the model's folder): a model past
    # 2 GiB marks as easily as a small one, and its weights are not copied into the proto.
    proto = onnx.load(str(file), load_external_data=False)
    marked = onnx.ModelProto()
    marked.CopyFrom(proto)
    known = {o.name for o in marked.graph.output}
    for node in marked.graph.node:
        for name in node.output:
            if name and name not in known:
                marked.graph.output.append(onnx.ValueInfoProto(name=name))
                known.add(name)
    if marked.ByteSize() > MAX_GRAPH_BYTES:
        raise ValueError("the graph is too large to mark every intermediate output")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(file.parent))
    session = ort.InferenceSession(marked.SerializeToString(), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {k: np.ascontiguousarray(v) for k, v in feed.items() if k in inputs})
    return proto, {n: v for n, v in zip(names, values, strict=True) if isinstance(v, np.ndarray)}


def node_scopes(node: Any) -> list[str] | None:
    """The module paths enclosing an ONNX node, outermost first ('' is the root), or None."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return [s for s in scopes[1:-1] if isinstance(s, str)] if isinstance(scopes, list) else None
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/")[1:-1] if p]
        return [".".join(parts[: i + 1]) for i in range(len(parts))]
    return None


def module_runs(graph: Any) -> dict[str, list[list[Any]]]:
    """Module path -> its calls, each the run of graph nodes (in order) inside it."""
    runs: dict[str, list[list[Any]]] = {}
    open_runs: dict[str, list[Any]] = {}
    for node in graph.node:
        scopes = node_scopes(node)
        if scopes is None:
            continue
        for path in list(open_runs):
            if path not in scopes:
                runs.setdefault(path, []).append(open_runs.pop(path))
        for path in scopes:
            open_runs.setdefault(path, []).append(node)
    for path, run in open_runs.items():
        runs.setdefault(path, []).append(run)
    return runs


# Ops that only move or re-describe elements: a module's op is named after the first other one.
LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Shape", "Slice", "Concat",
                        "Gather", "Cast", "Constant", "Flatten", "Expand", "Split"})


def principal_op(run: list[Any]) -> str:
    """The op that names a module's run of nodes: its first node that computes (an LSTM
    rather than the Reshape after it), else its last node's."""
    return next((n.op_type for n in run if n.op_type not in LAYOUT_OPS), run[-1].op_type)


def match_onnx(calls: list[Call], graph: Any,
               values: dict[str, np.ndarray]) -> list[tuple[Call, str, np.ndarray, int]]:
    """Each torch call with the ONNX value that holds one of its output tensors: (call, op
    type, value, which tensor). The first output tensor is looked for first; an output the
    graph never computes (an LSTM's sequence when only its final state is used) is skipped
    for the next one."""
    runs = module_runs(graph)
    matched = []
    seen: dict[str, int] = {}
    for call in calls:
        index = seen.get(call.path, 0)
        seen[call.path] = index + 1
        path_runs = runs.get(call.path, [])
        if index >= len(path_runs):
            continue
        found = _find(path_runs[index], call, values)
        if found is not None:
            matched.append((call, principal_op(path_runs[index]), *found))
    return matched


def _find(run: list[Any], call: Call, values: dict[str, np.ndarray]) -> tuple[np.ndarray, int] | None:
    """The value of the first output tensor: the run's last value of its shape. A later
    tensor (a final state) is taken only when one value alone in the run has its shape, so
    that ``h`` is never paired with ``c``."""
    for which, tensor in enumerate(call.tensors):
        names = [o for node in run for o in node.output if o in values and values[o].shape == tensor.shape]
        if names and (which == 0 or len(names) == 1):
            return values[names[-1]], which
    return None


def value_order(graph: Any, values: dict[str, np.ndarray]) -> list[tuple[str, str, str | None]]:
    """Every node output with a value, in graph order: (value name, op type, module path or None)."""
    order = []
    for node in graph.node:
        scopes = node_scopes(node)
        for name in node.output:
            if name in values:
                order.append((name, node.op_type, scopes[-1] if scopes else None))
    return order
