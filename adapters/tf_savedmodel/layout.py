"""The layout pass: keep channels-last what TF computes channels-last.

ONNX tensors of rank 3 to 5 are channels-first (N, C, spatial...); TF's CPU
convolutions, pools and batch normalization are channels-last. Translating op
by op, each layout-sensitive node would transpose its input in and its output
back. Instead, while the graph is translated in order, each value may be held
channels-last (``LayoutEnv.last``); the plain (ONNX-layout) form is made only
when a node reads it, once, and so are graph outputs.

Per node, in order:

- an op with a channels-last translator (``ops.channels_last``) whose
  attributes allow it takes its data input channels-last (transposing it if it
  is not held so yet) and leaves its outputs channels-last;
- an element-wise op with an operand held channels-last runs on channels-last
  operands: constants are transposed while translating, runtime operands in the
  graph (a broadcast operand of lower rank is first given its leading ones);
- Concat, Split, Slice, Softmax, LogSoftmax, the reductions, ArgMax/ArgMin,
  Transpose, Shape and Size remap their axes onto the channels-last operand;
- any other op reads channels-first values, converted where they meet.

A conversion that moves only dimensions of size 1 ([N, 1, 1, C] <-> [N, C, 1, 1])
is a reshape, not a transpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import tensorflow as tf

from portability.adapters.tf_savedmodel.layout_rules import AXIS_RULES, ELEMENTWISE, elementwise
from portability.adapters.tf_savedmodel.ops.channels_last import last_translator_for, view_context
from portability.adapters.tf_savedmodel.ops.registry import OpContext
from portability.adapters.tf_savedmodel.ops.spatial import permute, to_first_perm, to_last_perm


class LayoutEnv(dict):
    """Value name -> its TF value in ONNX layout, made on first read for values
    held only channels-last (``last``) and for constants (``lazy``: a constant
    only the translator reads, folded into others, never enters the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, tf.Tensor] = {}
        self.lazy: dict[str, np.ndarray] = {}

    def __missing__(self, name: str) -> Any:
        if name in self.lazy:
            value = tf.constant(self.lazy[name])
        elif name in self.last:
            value = permute(self.last[name], to_first_perm(self.last[name].shape.rank))
        else:
            raise KeyError(name)
        self[name] = value
        return value

    def rank(self, name: str) -> int | None:
        """A value's static rank (None when unknown or not a tensor), without converting it."""
        if name in self.lazy and name not in self:
            return np.ndim(self.lazy[name])
        value = self.last.get(name) if name in self.last else self.get(name)
        if value is None and name not in self and name not in self.last:
            value = self[name]  # raises KeyError for an undefined name
        return value.shape.rank if isinstance(value, tf.Tensor) else None

    def channels_last(self, name: str, static: dict[str, np.ndarray]) -> tf.Tensor:
        """A value held channels-last, transposed once (while translating, for a constant)."""
        if name not in self.last:
            if name in static:
                array = np.asarray(static[name])
                self.last[name] = tf.constant(np.ascontiguousarray(array.transpose(to_last_perm(array.ndim))))
            else:
                self.last[name] = permute(self[name], to_last_perm(self[name].shape.rank))
        return self.last[name]

    def hold_last(self, name: str, value: tf.Tensor) -> None:
        """Record a node output computed channels-last."""
        self.last[name] = value
        self.pop(name, None)


def translate_channels_last(node: onnx.NodeProto, ctx: OpContext, env: LayoutEnv) -> bool:
    """Translate ``node`` on channels-last values where a rule applies, recording its
    outputs in ``env``; False when the node should run on channels-first values.

    Raises:
        The translator's own errors (the caller names the node).
    """
    if any(name in ctx.carried for name in [*node.input, *node.output] if name):
        return False
    entry = last_translator_for(node.op_type)
    if entry is not None:
        return _anchor(node, ctx, env, entry)
    if node.op_type in ELEMENTWISE:
        return _record(node, env, elementwise(node, ctx, env))
    rule = AXIS_RULES.get(node.op_type)
    return rule is not None and _record(node, env, rule(node, ctx, env))


def _anchor(node, ctx, env, entry) -> bool:
    data = [node.input[i] for i in entry.data_inputs if i < len(node.input) and node.input[i]]
    if not data or any(name in ctx.static for name in data):
        return False
    first = env.last.get(data[0]) if data[0] in env.last else env[data[0]]
    if not isinstance(first, tf.Tensor) or not entry.accepts(node, ctx.bind(node), first):
        return False
    overrides = {name: env.channels_last(name, ctx.static) for name in data}
    result = entry.fn(node, view_context(ctx, node, overrides))
    return _record(node, env, (result, True))


def _record(node, env: LayoutEnv, outcome) -> bool:
    """Store a rule's outputs: ``(result, True)`` channels-last, ``(result, False)``
    in ONNX layout, None when the rule did not apply."""
    if outcome is None:
        return False
    result, is_last = outcome
    results = result if isinstance(result, tuple) else (result,)
    for name, value in zip(node.output, results, strict=False):
        if not name:
            continue
        if is_last:
            env.hold_last(name, value)
        else:
            env[name] = value
    return True
