"""ONNX MaxPool and AveragePool, 1-D to 3-D, by explicit windows.

Each spatial axis is expanded into (output position, kernel tap) by a gather
of the tapped input indices, so dilations, ceil_mode, asymmetric pads,
SAME_LOWER and MaxPool's Indices output all follow from the index arithmetic.
A tap outside the input is padding: ignored by MaxPool, and counted by
AveragePool only with count_include_pad (and never in the ceil_mode extension).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.registry import register, unsupported


def _output_size(size, pad_begin, pad_end, extent, stride, ceil_mode):
    span = size + pad_begin + pad_end - extent
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # The last window must start inside the input or its begin padding.
    return tf.where((out - 1) * stride >= size + pad_begin, out - 1, out)


def _windows(node, ctx, x):
    """x expanded to [N, C, o1, k1, o2, k2, ...] plus per-axis tap indices and masks."""
    spatial = geo.spatial_rank(node, x)
    kernel = list(ctx.attr("kernel_shape"))
    strides, dilations, extents = geo.geometry(ctx, spatial, kernel)
    pads = geo.padding(node, ctx, x, spatial, strides, extents)
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    dims = tf.shape(x, out_type=tf.int64)
    taps, inside, padded = [], [], []
    out = x
    for i in range(spatial):
        size, (begin, end) = dims[2 + i], pads[i]
        count = _output_size(size, begin, end, extents[i], strides[i], ceil_mode)
        index = (tf.range(count)[:, None] * strides[i] - begin
                 + tf.range(kernel[i], dtype=tf.int64)[None, :] * dilations[i])
        taps.append(index)
        inside.append((index >= 0) & (index < size))
        padded.append((index >= -begin) & (index < size + end))
        out = tf.gather(out, tf.clip_by_value(index, 0, tf.maximum(size - 1, 0)), axis=2 + 2 * i)
    return out, spatial, taps, inside, padded


def _joint(masks, spatial):
    """Per-axis [o_i, k_i] masks broadcast to the [o1, k1, o2, k2, ...] layout."""
    joint = None
    for i, mask in enumerate(masks):
        shape = [1] * (2 * spatial)
        shape[2 * i], shape[2 * i + 1] = -1, tf.shape(mask)[1]
        part = tf.reshape(mask, tf.stack([tf.cast(s, tf.int32) for s in shape]))
        joint = part if joint is None else tf.logical_and(joint, part)
    return joint


def _taps_last(t, spatial):
    """[N, C, o1, k1, ...] -> [N, C, o1, o2, ..., K] with K the flattened window."""
    perm = [0, 1] + [2 + 2 * i for i in range(spatial)] + [3 + 2 * i for i in range(spatial)]
    moved = tf.transpose(t, perm)
    shape = tf.shape(moved, out_type=tf.int64)
    return tf.reshape(moved, tf.concat([shape[:2 + spatial], [-1]], 0))


@register("MaxPool")
def max_pool(node, ctx):
    """Max over each window's real taps; Indices are flat row-major (or column-major
    with storage_order=1) offsets into the input."""
    x = ctx.input(0)
    windows, spatial, taps, inside, _ = _windows(node, ctx, x)
    mask = _joint(inside, spatial)[None, None]
    low = tf.constant(-np.inf, x.dtype) if x.dtype.is_floating else tf.constant(x.dtype.min, x.dtype)
    flat = _taps_last(tf.where(mask, windows, low), spatial)
    values = tf.reduce_max(flat, axis=-1)
    if ctx.output_count() < 2:
        return values
    choice = tf.argmax(flat, axis=-1)
    dims = tf.shape(x, out_type=tf.int64)
    offset = tf.zeros_like(choice)
    kernel = list(ctx.attr("kernel_shape"))
    column_major = ctx.attr("storage_order", 0) == 1
    coords = []
    for i in range(spatial):
        inner = int(np.prod(kernel[i + 1:]))
        tap = (choice // inner) % kernel[i]
        position = tf.reshape(tf.range(tf.shape(taps[i], out_type=tf.int64)[0]),
                              [-1] + [1] * (spatial - 1 - i))
        coords.append(_tap_index(taps[i], position, tap))
    order = list(reversed(range(spatial))) if column_major else list(range(spatial))
    for i in order:
        offset = offset * dims[2 + i] + coords[i]
    plane = tf.reduce_prod(dims[2:])
    channel = tf.range(dims[0] * dims[1])
    channel = tf.reshape(channel, tf.concat([dims[:2], tf.ones([spatial], tf.int64)], 0))
    return values, channel * plane + offset


def _tap_index(taps, position, tap):
    """The input index of tap ``tap`` at output ``position`` along one axis."""
    position = tf.broadcast_to(position, tf.shape(tap, out_type=tf.int64))
    return tf.gather_nd(taps, tf.stack([position, tap], axis=-1))


@register("AveragePool")
def average_pool(node, ctx):
    """Window sums over the number of counted taps."""
    x = ctx.input(0)
    if not x.dtype.is_floating:
        raise unsupported(node, f"{x.dtype.name} input")
    windows, spatial, _, inside, padded = _windows(node, ctx, x)
    real = _joint(inside, spatial)[None, None]
    counted = _joint(padded if ctx.attr("count_include_pad", 0) else inside, spatial)[None, None]
    sums = tf.reduce_sum(_taps_last(tf.where(real, windows, tf.zeros_like(windows)), spatial), -1)
    counts = tf.reduce_sum(_taps_last(tf.cast(counted, x.dtype), spatial), -1)
    return sums / counts
