"""Reductions: Reduce{Sum,Mean,Max,Min,Prod,L2} and ArgMax/ArgMin.

Axes come as an attribute in early opsets and as an optional input later
(ReduceSum from 13, the others from 18). An axes input need not be a
constant: TF's reductions take a tensor of axes (negative ones included).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register


def _l2(x, axis, keepdims):
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=axis, keepdims=keepdims))


_REDUCERS = {"ReduceMean": tf.reduce_mean, "ReduceSum": tf.reduce_sum, "ReduceMax": tf.reduce_max,
             "ReduceMin": tf.reduce_min, "ReduceProd": tf.reduce_prod, "ReduceL2": _l2}
_BOOL_REDUCERS = {"ReduceMax": tf.reduce_any, "ReduceMin": tf.reduce_all}
# The opset from which each reduction takes its axes as an input, not an attribute.
_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _axes(node, ctx, x):
    """Static list of axes, a runtime int64 tensor of axes, or None for 'every axis'."""
    if ctx.opset < _AXES_INPUT_SINCE.get(node.op_type, 18):
        axes = ctx.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    if not ctx.has_input(1):
        return None
    static = ctx.static_value(1)
    if static is not None:
        return [int(a) for a in np.atleast_1d(static)]
    axes = tf.reshape(tf.cast(ctx.input(1), tf.int64), [-1])
    if ctx.attr("noop_with_empty_axes", 0):
        return axes  # an empty tensor reduces nothing, which is the no-op
    every = tf.range(tf.cast(tf.rank(x), tf.int64))
    return tf.cond(tf.size(axes) > 0, lambda: axes, lambda: every)


@register(*_REDUCERS)
def reduce(node, ctx):
    """Reduce over the axes (all of them when none are given, unless noop_with_empty_axes)."""
    x = ctx.input(0)
    keepdims = bool(ctx.attr("keepdims", 1))
    axes = _axes(node, ctx, x)
    if isinstance(axes, list):
        if not axes:
            if ctx.attr("noop_with_empty_axes", 0):
                return tf.identity(x)
            axes = None
        else:
            rank = rank_of(node, x)
            axes = [normalize_axis(a, rank) for a in axes]
    fn = _REDUCERS[node.op_type]
    if x.dtype == tf.bool:
        fn = _BOOL_REDUCERS.get(node.op_type, fn)
    return fn(x, axis=axes, keepdims=keepdims)


@register("ArgMax", "ArgMin")
def arg_reduce(node, ctx):
    """select_last_index=1 searches the reversed axis and maps the index back."""
    x = ctx.input(0)
    axis = normalize_axis(ctx.attr("axis", 0), rank_of(node, x))
    fn = tf.argmax if node.op_type == "ArgMax" else tf.argmin
    if ctx.attr("select_last_index", 0):
        found = fn(tf.reverse(x, [axis]), axis=axis, output_type=tf.int64)
        out = tf.shape(x, out_type=tf.int64)[axis] - 1 - found
    else:
        out = fn(x, axis=axis, output_type=tf.int64)
    return tf.expand_dims(out, axis) if ctx.attr("keepdims", 1) else out
