"""Per-op rules of the layout pass for element-wise ops and ops that carry axes.

Each rule takes ``(node, ctx, env)`` and returns ``(result, channels_last)``
(``channels_last`` says in which layout the outputs are) or None when the node
should read channels-first values instead. A rule only applies when its data
operand is already held channels-last; it then runs the op's own translator on
a view of the node whose axes (attributes or constant inputs) are remapped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import translator_for
from portability.adapters.tf_savedmodel.ops.channels_last import view_context
from portability.adapters.tf_savedmodel.ops.reduce_ops import _AXES_INPUT_SINCE, _REDUCERS
from portability.adapters.tf_savedmodel.ops.registry import normalize_axis
from portability.adapters.tf_savedmodel.ops.spatial import permute, to_first_perm, to_last_perm

# Ops computing each output element from the same element of every (broadcast) operand.
ELEMENTWISE = frozenset({
    "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sigmoid", "Tanh", "Erf", "Relu", "Floor", "Ceil",
    "Sign", "Sin", "Cos", "Not", "IsNaN", "IsInf", "Softplus", "Softsign", "Round", "Gelu", "LeakyRelu",
    "Elu", "HardSigmoid", "PRelu", "Selu", "HardSwish", "Identity", "Cast", "Clip",
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd",
})


def _held(node, env, i: int = 0) -> tf.Tensor | None:
    """Input ``i`` if it is held channels-last (rank 3 or more), else None."""
    name = node.input[i] if i < len(node.input) else ""
    value = env.last.get(name) if name else None
    return value if value is not None and value.shape.rank is not None and value.shape.rank >= 3 else None


def elementwise(node, ctx, env):
    """Run on channels-last operands when one of the widest operands is held so."""
    names = [n for n in node.input if n]
    ranks = {n: env.rank(n) for n in names}
    if not names or any(r is None for r in ranks.values()):
        return None
    rank = max(ranks.values())
    if rank < 3 or not any(n in env.last and ranks[n] == rank for n in names):
        return None
    perm = to_last_perm(rank)
    overrides: dict[str, Any] = {}
    static: dict[str, np.ndarray] = {}
    for name in names:
        k = ranks[name]
        if name in ctx.static:
            array = np.asarray(ctx.static[name])
            if array.size != 1:
                static[name] = np.ascontiguousarray(array.reshape((1,) * (rank - k) + array.shape).transpose(perm))
                overrides[name] = tf.constant(static[name])
        elif k == rank:
            overrides[name] = env.channels_last(name, ctx.static)
        elif not all(d == 1 for d in env[name].shape.as_list()):
            value = env[name]
            widened = tf.reshape(value, tf.concat([tf.ones([rank - k], tf.int32), tf.shape(value)], 0))
            widened.set_shape([1] * (rank - k) + value.shape.as_list())
            overrides[name] = permute(widened, perm)
    return translator_for(node)(node, view_context(ctx, node, overrides, static)), True


def _concat(node, ctx, env):
    names = [n for n in node.input if n]
    ranks = [env.rank(n) for n in names]
    rank = ranks[0]
    if rank is None or rank < 3 or any(k != rank for k in ranks):
        return None
    held = sum(n in env.last for n in names)
    plain = sum(n not in env.last and n not in ctx.static for n in names)
    if held == 0 or held < plain:
        return None
    overrides = {n: env.channels_last(n, ctx.static) for n in names}
    axis = to_last_perm(rank).index(normalize_axis(ctx.bind(node).attr("axis"), rank))
    return translator_for(node)(node, view_context(ctx, node, overrides).with_attrs(axis=axis)), True


def _axis_op(node, ctx, env):
    """Split, Softmax (opset 13+), LogSoftmax: one ``axis`` attribute."""
    x = _held(node, env)
    ctx.bind(node)
    if x is None or (node.op_type != "Split" and ctx.opset < 13):
        return None
    rank = x.shape.rank
    default = 0 if node.op_type == "Split" else -1
    axis = to_last_perm(rank).index(normalize_axis(ctx.attr("axis", default), rank))
    view = view_context(ctx, node, {node.input[0]: x}).with_attrs(axis=axis)
    return translator_for(node)(node, view), True


def _with_input(node: onnx.NodeProto, index: int, name: str) -> onnx.NodeProto:
    """A copy of ``node`` whose input ``index`` is ``name`` (absent inputs padded empty)."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    inputs = list(node.input) + [""] * max(0, index + 1 - len(node.input))
    inputs[index] = name
    del copy.input[:]
    copy.input.extend(inputs)
    return copy


def _remapped_axes_view(node, ctx, x, axes, since, index):
    """A view of ``node`` reading ``x`` with its axes remapped, given as an attribute
    before opset ``since`` and as input ``index`` from it."""
    if ctx.opset < since:
        return view_context(ctx, node, {node.input[0]: x}).with_attrs(axes=axes)
    name = f"{node.name or node.op_type}/channels_last_axes"
    array = np.asarray(axes, np.int64)
    rewritten = _with_input(node, index, name)
    return view_context(ctx, rewritten, {node.input[0]: x, name: tf.constant(array)}, {name: array})


def _kept_in_order(axes: list[int], rank: int) -> bool:
    """Whether the axes left after dropping ``axes`` keep their ONNX order channels-last."""
    kept = [p for p in to_last_perm(rank) if p not in axes]
    return kept == sorted(kept)


def _reduce(node, ctx, env):
    x = _held(node, env)
    ctx.bind(node)
    if x is None:
        return None
    rank = x.shape.rank
    since = _AXES_INPUT_SINCE.get(node.op_type, 18)
    if ctx.opset < since:
        axes = ctx.attr("axes")
    else:
        axes = ctx.static_value(1) if ctx.has_input(1) else None
        if axes is None and ctx.has_input(1):
            return None
    if axes is None or np.size(axes) == 0:
        if ctx.attr("noop_with_empty_axes", 0):
            return None
        # Every axis: the result ([1, ..., 1] or a scalar) reads the same in both layouts.
        axes = list(range(rank))
    axes = [normalize_axis(int(a), rank) for a in np.atleast_1d(axes)]
    keepdims = bool(ctx.attr("keepdims", 1))
    if not keepdims and not _kept_in_order(axes, rank):
        return None
    remapped = [to_last_perm(rank).index(a) for a in axes]
    view = _remapped_axes_view(node, ctx, x, remapped, since, 1)
    return translator_for(node)(node, view), keepdims and len(axes) < rank


def _arg_reduce(node, ctx, env):
    x = _held(node, env)
    ctx.bind(node)
    if x is None:
        return None
    rank = x.shape.rank
    axis = normalize_axis(ctx.attr("axis", 0), rank)
    keepdims = bool(ctx.attr("keepdims", 1))
    if not keepdims and not _kept_in_order([axis], rank):
        return None
    view = view_context(ctx, node, {node.input[0]: x}).with_attrs(axis=to_last_perm(rank).index(axis))
    return translator_for(node)(node, view), keepdims


def _slice(node, ctx, env):
    x = _held(node, env)
    ctx.bind(node)
    if x is None:
        return None
    rank = x.shape.rank
    if ctx.opset < 10:
        starts = ctx.attr("starts")
        axes = ctx.attr("axes", list(range(len(starts))))
    else:
        count = ctx.input(1).shape[0]
        axes = ctx.static_value(3) if ctx.has_input(3) else (None if count is None else list(range(count)))
        if axes is None:
            return None
    remapped = [to_last_perm(rank).index(normalize_axis(int(a), rank)) for a in np.atleast_1d(axes)]
    return translator_for(node)(node, _remapped_axes_view(node, ctx, x, remapped, 10, 3)), True


def _transpose(node, ctx, env):
    """Transpose(perm) of a channels-last value is one transpose of what is held."""
    x = _held(node, env)
    if x is None:
        return None
    rank = x.shape.rank
    perm = ctx.bind(node).attr("perm")
    perm = list(reversed(range(rank))) if perm is None else list(perm)
    first = to_first_perm(rank)
    return permute(x, [first[p] for p in perm]), False


def _shape(node, ctx, env):
    x = _held(node, env)
    if x is None:
        return None
    rank = x.shape.rank
    full = tf.gather(tf.shape(x, out_type=tf.int64), to_first_perm(rank))
    ctx.bind(node)
    start, end = ctx.attr("start", 0), ctx.attr("end")
    start = max(0, min(rank, normalize_axis(start, rank)))
    end = rank if end is None else max(0, min(rank, normalize_axis(end, rank)))
    return full[start:end], False


def _size(node, ctx, env):
    x = _held(node, env)
    return None if x is None else (tf.size(x, out_type=tf.int64), False)


AXIS_RULES = {
    "Concat": _concat, "Split": _axis_op, "Softmax": _axis_op, "LogSoftmax": _axis_op,
    "Slice": _slice, "ArgMax": _arg_reduce, "ArgMin": _arg_reduce, "Transpose": _transpose,
    "Shape": _shape, "Size": _size, **{op: _reduce for op in _REDUCERS},
}
