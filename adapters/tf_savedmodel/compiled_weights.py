"""Which weights a serving graph holds as constants (a frozen copy of its variables).

A graph that reads its weights from variables runs every weight's layout change
per call (a Linear weight's transpose, a Conv kernel's OIHW -> HWIO), reads
each variable, and leaves Grappler nothing to fold: it turns ``Transpose(W)``
into a ``MatMul`` with ``transpose_b``, which TF's CPU kernels run up to four
times slower than a plain one on small batches. The serving graph therefore
reads the values the variables hold while it is built, as constants: the
translator folds what depends on weights alone (transposes, reshapes, casts,
per-channel factors) while it translates, and TF never reads a variable at run
time. A model whose floating-point weights take at most ``WHOLE_MODEL_BYTES``
is compiled whole. Of a larger one, Conv kernels come first, then every other
floating-point weight in the order the graph reads it, up to
``COMPILED_WEIGHT_BYTES`` (a GraphDef is a protobuf, limited to 2 GiB, and
tracing holds several copies of what it compiles); weights past it are read
from their variables.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from portability.adapters.tf_savedmodel.bindings import BindingPlan, is_floating
from portability.adapters.tf_savedmodel.ops.carriers import is_carried

# At most this many bytes of weights are compiled into a graph. Tracing and saving a graph
# holds each compiled byte several times over (constants, the GraphDef, the saved copy):
# measured on a 0.45 GB GPT-2, the SavedModel step's worker peaked at 13.8 GB with 1 GiB
# compiled, 3.5 GB with 128 or 256 MiB and 2.1 GB with none: about 11 bytes per compiled byte.
COMPILED_WEIGHT_BYTES = 64 << 20
# A model this small is compiled whole: its SavedModel step stays within a few GB, and reading
# part of it from variables per call cost a VGG16-BN detector and MiniLM (about 92 MB each)
# 1.1x and 1.7x in speed. ``harness/memory_budget.py`` budgets for the same rule.
WHOLE_MODEL_BYTES = 128 << 20


def compiled_weights(model: onnx.ModelProto, plan: BindingPlan, tensors: Mapping[str, np.ndarray],
                     limit: int | None = None) -> dict[str, np.ndarray]:
    """Initializer name -> the value the serving graph holds for it, in ONNX layout.

    Args:
        model: the ONNX model.
        plan: how its initializers are bound to checkpoint tensors (variables).
        tensors: the checkpoint's canonical tensors by name.
        limit: the most bytes compiled in; by default all of them when they take at
            most ``WHOLE_MODEL_BYTES``, else ``COMPILED_WEIGHT_BYTES``.

    Returns:
        Conv kernels first, then the other floating-point bound initializers in the
        order nodes read them, while their total stays within ``limit``.
    """
    candidates = []
    for name in _read_order(model, plan):
        binding = plan.bound[name]
        value = np.asarray(tensors[binding.name])
        if is_floating(value.dtype) and not is_carried(value.dtype):
            candidates.append((name, value.T if binding.transpose else value))
    if limit is None:
        whole = sum(value.nbytes for _, value in candidates)
        limit = whole if whole <= WHOLE_MODEL_BYTES else COMPILED_WEIGHT_BYTES
    out: dict[str, np.ndarray] = {}
    total = 0
    for name, value in candidates:
        if total + value.nbytes > limit:
            continue
        out[name] = value
        total += value.nbytes
    return out


def _read_order(model: onnx.ModelProto, plan: BindingPlan) -> list[str]:
    """Bound initializers in the order nodes read them, Conv kernels first."""
    kernels = [node.input[1] for node in model.graph.node
               if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in plan.bound]
    others = [name for node in model.graph.node for name in node.input if name in plan.bound]
    return list(dict.fromkeys([*kernels, *others]))
