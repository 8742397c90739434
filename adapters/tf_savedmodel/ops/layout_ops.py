"""Layout ONNX ops: Pad, DepthToSpace, SpaceToDepth.

Pad maps every output position of a padded axis to a source index (or to the
fill value), so pads may be runtime tensors or wider than the input, in every
mode ONNX defines; negative pads crop before the padding.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.channels_last import register_last
from portability.adapters.tf_savedmodel.ops.registry import rank_of, register, unsupported


def _source_index(index: tf.Tensor, size: tf.Tensor, mode: str) -> tf.Tensor:
    """Where output position ``index`` (input coordinates) reads from, per padding mode."""
    if mode == "edge":
        return tf.clip_by_value(index, 0, size - 1)
    if mode == "wrap":
        return tf.math.floormod(index, size)
    period = tf.maximum(2 * (size - 1), 1)  # reflect: mirror without repeating the edge
    folded = tf.math.floormod(index, period)
    return tf.where(folded > size - 1, period - folded, folded)


def _pad_axis(x, axis, begin, end, mode, fill):
    """Crop for negative pads first (as onnxruntime does), then pad per mode."""
    size = tf.shape(x, out_type=tf.int64)[axis]
    keep = tf.range(tf.maximum(-begin, 0), size - tf.maximum(-end, 0))
    x = tf.gather(x, keep, axis=axis)
    begin, end = tf.maximum(begin, 0), tf.maximum(end, 0)
    size = tf.shape(x, out_type=tf.int64)[axis]
    index = tf.range(-begin, size + end, dtype=tf.int64)
    if mode == "constant":
        inside = tf.logical_and(index >= 0, index < size)
        taken = tf.gather(x, tf.clip_by_value(index, 0, tf.maximum(size - 1, 0)), axis=axis)
        shape = [1] * x.shape.rank
        shape[axis] = -1
        return tf.where(tf.reshape(inside, shape), taken, fill)
    return tf.gather(x, _source_index(index, size, mode), axis=axis)


def _static_pairs(ctx, rank):
    """The pads as a [rank, 2] int64 array when known while translating, else None."""
    pads = np.asarray(ctx.attr("pads"), np.int64) if ctx.opset < 11 else ctx.static_value(1)
    if pads is None:
        return None
    pairs = np.asarray(pads, np.int64).reshape(2, -1).T
    if ctx.opset >= 11 and ctx.has_input(3):
        axes = ctx.static_value(3)
        if axes is None:
            return None
        full = np.zeros((rank, 2), np.int64)
        full[[int(a) + rank if a < 0 else int(a) for a in np.reshape(axes, -1)]] = pairs
        pairs = full
    return pairs


def _pads_and_fill(node, ctx, x, rank):
    """(pads as a [rank, 2] int64 tensor, their value when known, the constant fill value)."""
    if ctx.opset < 11:
        fill = tf.constant(ctx.attr("value", 0.0), x.dtype)
    else:
        value = ctx.input(2)
        fill = tf.zeros([], x.dtype) if value is None else tf.reshape(tf.cast(value, x.dtype), [])
    static = _static_pairs(ctx, rank)
    if static is not None:
        return tf.constant(static), static, fill
    pads = tf.reshape(tf.cast(ctx.input(1), tf.int64), [-1])
    pairs = tf.transpose(tf.reshape(pads, [2, -1]))
    if ctx.has_input(3):
        axes = tf.reshape(tf.cast(ctx.input(3), tf.int64), [-1, 1])
        axes = tf.where(axes < 0, axes + rank, axes)
        pairs = tf.tensor_scatter_nd_update(tf.zeros([rank, 2], tf.int64), axes, pairs)
    return pairs, tf.get_static_value(pairs), fill


@register("Pad")
def pad(node, ctx):
    """Modes constant, reflect, edge and wrap; pads and axes may be runtime inputs."""
    x = ctx.input(0)
    rank = rank_of(node, x)
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise unsupported(node, f"mode {mode!r}")
    pairs, static, fill = _pads_and_fill(node, ctx, x, rank)
    return _pad_all(x, pairs, static, mode, fill)


def _pad_all(x, pairs, static, mode, fill):
    """Pad every axis by ``pairs`` ([rank, 2]; ``static`` its value when known):
    one ``tf.pad`` for constant non-negative pads, else axis by axis."""
    if static is not None and mode == "constant" and (static >= 0).all():
        return tf.pad(x, static, constant_values=fill)
    for axis in range(x.shape.rank):
        if static is not None and not static[axis].any():
            continue
        x = _pad_axis(x, axis, pairs[axis, 0], pairs[axis, 1], mode, fill)
    return x


def _pad_last_accepts(node, ctx, x) -> bool:
    rank = x.shape.rank
    return rank is not None and rank >= 3 and ctx.attr("mode", "constant") in ("constant", "reflect", "edge", "wrap")


@register_last("Pad", accepts=_pad_last_accepts)
def pad_last(node, ctx):
    """Pad a channels-last tensor: the pads, listed channels-first, are reordered."""
    x = ctx.input(0)
    rank = x.shape.rank
    pairs, static, fill = _pads_and_fill(node, ctx, x, rank)
    perm = geo.to_last_perm(rank)
    return _pad_all(x, tf.gather(pairs, perm), None if static is None else static[perm],
                    ctx.attr("mode", "constant"), fill)


@register("DepthToSpace")
def depth_to_space(node, ctx):
    """NCHW; DCR (depth-column-row, the default) or CRD channel order."""
    x = ctx.input(0)
    if rank_of(node, x) != 4:
        raise unsupported(node, "only 4-D input")
    b = ctx.attr("blocksize")
    n, c, h, w = tf.unstack(tf.shape(x, out_type=tf.int64))
    if ctx.attr("mode", "DCR") == "CRD":
        y = tf.reshape(x, tf.stack([n, c // (b * b), b, b, h, w]))
        y = tf.transpose(y, [0, 1, 4, 2, 5, 3])
    else:
        y = tf.reshape(x, tf.stack([n, b, b, c // (b * b), h, w]))
        y = tf.transpose(y, [0, 3, 4, 1, 5, 2])
    return tf.reshape(y, tf.stack([n, c // (b * b), h * b, w * b]))


@register("SpaceToDepth")
def space_to_depth(node, ctx):
    """NCHW: each b x b block becomes b*b channels (block position outermost, or
    innermost in CRD mode)."""
    x = ctx.input(0)
    if rank_of(node, x) != 4:
        raise unsupported(node, "only 4-D input")
    b = ctx.attr("blocksize")
    n, c, h, w = tf.unstack(tf.shape(x, out_type=tf.int64))
    y = tf.reshape(x, tf.stack([n, c, h // b, b, w // b, b]))
    crd = ctx.attr("mode", "DCR") == "CRD"
    y = tf.transpose(y, [0, 1, 3, 5, 2, 4] if crd else [0, 3, 5, 1, 2, 4])
    return tf.reshape(y, tf.stack([n, c * b * b, h // b, w // b]))
