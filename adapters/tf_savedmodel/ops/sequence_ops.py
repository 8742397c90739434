"""Sequence and matrix-structure ONNX ops: SplitToSequence, SequenceAt, Trilu.

An ONNX sequence is held as a Python list of tensors while translating; its
positions must therefore be constants.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register, unsupported


@register("SplitToSequence")
def split_to_sequence(node, ctx):
    """A sequence is a Python list of tensors at translation time."""
    x = ctx.input(0)
    rank = rank_of(node, x)
    axis = normalize_axis(ctx.attr("axis", 0), rank)
    sizes = ctx.static_value(1)
    if ctx.has_input(1) and sizes is None:
        raise unsupported(node, "split sizes must be constant")
    if sizes is None:
        parts = tf.unstack(x, axis=axis) if not ctx.attr("keepdims", 1) else None
        if parts is None:
            dim = x.shape[axis]
            if dim is None:
                raise unsupported(node, "splitting a dynamic dimension into single slices")
            parts = tf.split(x, dim, axis=axis)
        return list(parts)
    if np.ndim(sizes) == 0:
        dim = x.shape[axis]
        if dim is None:
            raise unsupported(node, "splitting a dynamic dimension")
        step = int(sizes)
        sizes = [step] * (dim // step) + ([dim % step] if dim % step else [])
    return list(tf.split(x, [int(s) for s in sizes], axis=axis))


@register("SequenceAt")
def sequence_at(node, ctx):
    sequence = ctx.input(0)
    position = int(ctx.require_static(1, "position"))
    return sequence[position]


@register("Trilu")
def trilu(node, ctx):
    """Keep the upper (or lower) triangle of the last two dims, shifted by k."""
    x = ctx.input(0)
    k = tf.cast(ctx.input(1), tf.int64) if ctx.has_input(1) else tf.constant(0, tf.int64)
    dims = tf.shape(x, out_type=tf.int64)
    rows = tf.range(dims[-2])[:, None]
    cols = tf.range(dims[-1])[None, :]
    keep = (cols - rows >= k) if ctx.attr("upper", 1) else (cols - rows <= k)
    return tf.where(keep, x, tf.zeros_like(x))
