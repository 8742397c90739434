"""Shape and data-movement ONNX ops: Shape, Reshape, Slice, Gather, Concat...

Shapes are int64 tensors computed when the graph runs, so dynamic batch and
sequence dimensions flow through; only axes must be known when translating.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from onnx import numpy_helper

from portability.adapters.tf_savedmodel.ops.carriers import to_carrier_array
from portability.adapters.tf_savedmodel.ops.dtypes import tf_dtype
from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register, unsupported


def _axes(node, ctx, input_index: int, since: int):
    """Axes given as an attribute (before opset ``since``) or as an input: a list
    when known at translation time, else an int64 tensor (None when absent)."""
    if ctx.opset < since:
        axes = ctx.attr("axes")
        return None if axes is None else list(axes)
    value = ctx.static_value(input_index)
    if value is None:
        if ctx.has_input(input_index):
            return tf.reshape(tf.cast(ctx.input(input_index), tf.int64), [-1])
        return None
    return [int(a) for a in np.atleast_1d(value)]


def _runtime_axes(axes: tf.Tensor, rank) -> tf.Tensor:
    """Runtime axes made non-negative for a tensor of rank ``rank``."""
    rank = tf.cast(rank, tf.int64)
    return tf.where(axes < 0, axes + rank, axes)


@register("Constant")
def constant(node, ctx):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = ctx.attr(key)
        if value is None:
            continue
        if key == "value":
            array = numpy_helper.to_array(value)
        elif key.startswith("value_float"):
            array = np.asarray(value, dtype=np.float32)
        else:
            array = np.asarray(value, dtype=np.int64)
        ctx.static[node.output[0]] = array
        return tf.constant(to_carrier_array(array))  # a type TF cannot compute with: its carrier
    raise unsupported(node, "only tensor, float(s) and int(s) constants are supported")


@register("ConstantOfShape")
def constant_of_shape(node, ctx):
    value = ctx.attr("value")
    fill = numpy_helper.to_array(value).reshape(()) if value is not None else np.float32(0)
    return tf.fill(ctx.input(0), tf.constant(fill))


@register("Shape")
def shape(node, ctx):
    x = ctx.input(0)
    full = tf.shape(x, out_type=tf.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end")
    if start == 0 and end is None:
        return full
    rank = rank_of(node, x)
    start = max(0, min(rank, normalize_axis(start, rank)))
    end = rank if end is None else max(0, min(rank, normalize_axis(end, rank)))
    return full[start:end]


@register("Size")
def size(node, ctx):
    return tf.size(ctx.input(0), out_type=tf.int64)


@register("Reshape")
def reshape(node, ctx):
    """0 copies the input's dimension (unless allowzero=1); -1 is inferred."""
    x = ctx.input(0)
    if ctx.opset < 5:
        target = tf.constant(ctx.attr("shape"), tf.int64)
    else:
        target = tf.cast(ctx.input(1), tf.int64)
    static = ctx.static_value(1) if ctx.opset >= 5 else np.asarray(ctx.attr("shape"))
    if not ctx.attr("allowzero", 0) and (static is None or (static == 0).any()):
        length = target.shape[0]
        if length is None:
            raise unsupported(node, "a shape input of unknown length")
        in_shape = tf.shape(x, out_type=tf.int64)
        rank = x.shape.rank
        if rank is None or length > rank:
            padded = tf.concat([in_shape, tf.zeros([length], tf.int64)], 0)[:length]
        else:
            padded = in_shape[:length]
        target = tf.where(tf.equal(target, 0), padded, target)
    return tf.reshape(x, target)


@register("Flatten")
def flatten(node, ctx):
    x = ctx.input(0)
    rank = rank_of(node, x)
    axis = normalize_axis(ctx.attr("axis", 1), rank)
    dims = tf.shape(x, out_type=tf.int64)
    outer = tf.reduce_prod(dims[:axis])
    return tf.reshape(x, tf.stack([outer, tf.constant(-1, tf.int64)]))


@register("Transpose")
def transpose(node, ctx):
    x = ctx.input(0)
    perm = ctx.attr("perm")
    if perm is None:
        perm = list(reversed(range(rank_of(node, x))))
    return tf.transpose(x, perm=list(perm))


@register("Squeeze")
def squeeze(node, ctx):
    """Runtime axes drop their dims from the shape (the rank stays static when
    the number of axes is)."""
    x = ctx.input(0)
    axes = _axes(node, ctx, 1, since=13)
    if axes is None:
        return tf.squeeze(x)
    rank = rank_of(node, x)
    if isinstance(axes, list):
        return tf.squeeze(x, axis=[normalize_axis(a, rank) for a in axes])
    axes = _runtime_axes(axes, rank)
    dropped = tf.reduce_any(tf.equal(tf.range(rank, dtype=tf.int64)[:, None], axes[None, :]), axis=1)
    out = tf.reshape(x, tf.boolean_mask(tf.shape(x, out_type=tf.int64), tf.logical_not(dropped)))
    count = axes.shape[0]
    return out if count is None else tf.ensure_shape(out, [None] * (rank - count))


@register("Unsqueeze")
def unsqueeze(node, ctx):
    """Static axes expand one at a time; runtime axes build the new shape."""
    x = ctx.input(0)
    axes = _axes(node, ctx, 1, since=13)
    if axes is None:
        raise unsupported(node, "axes are required")
    if isinstance(axes, list):
        out_rank = rank_of(node, x) + len(axes)
        for axis in sorted(normalize_axis(a, out_rank) for a in axes):
            x = tf.expand_dims(x, axis)
        return x
    count = axes.shape[0]
    if count is None:
        raise unsupported(node, "axes of unknown length")
    out_rank = rank_of(node, x) + count
    axes = _runtime_axes(axes, out_rank)
    new = tf.reduce_any(tf.equal(tf.range(out_rank, dtype=tf.int64)[:, None], axes[None, :]), axis=1)
    source = tf.cumsum(tf.cast(tf.logical_not(new), tf.int64)) - 1
    dims = tf.concat([tf.shape(x, out_type=tf.int64), [1]], 0)
    shape = tf.where(new, tf.ones([out_rank], tf.int64), tf.gather(dims, tf.maximum(source, 0)))
    return tf.ensure_shape(tf.reshape(x, shape), [None] * out_rank)


@register("Concat")
def concat(node, ctx):
    return tf.concat(ctx.inputs(), axis=ctx.attr("axis"))


@register("Expand")
def expand(node, ctx):
    """Bidirectional broadcast of the input and the requested shape."""
    x = ctx.input(0)
    target = tf.cast(ctx.input(1), tf.int64)
    out_shape = tf.broadcast_dynamic_shape(tf.shape(x, out_type=tf.int64), target)
    return tf.broadcast_to(x, out_shape)


@register("Tile")
def tile(node, ctx):
    return tf.tile(ctx.input(0), tf.cast(ctx.input(1), tf.int64))


@register("Range")
def range_op(node, ctx):
    start, limit, delta = ctx.input(0), ctx.input(1), ctx.input(2)
    return tf.range(start, limit, delta, dtype=start.dtype)


@register("Slice")
def slice_op(node, ctx):
    """starts/ends are clamped like Python slices (TF's strided_slice does the same)."""
    x = ctx.input(0)
    rank = rank_of(node, x)
    if ctx.opset < 10:
        starts = tf.constant(ctx.attr("starts"), tf.int64)
        ends = tf.constant(ctx.attr("ends"), tf.int64)
        axes = ctx.attr("axes", list(range(len(ctx.attr("starts")))))
        steps = None
    else:
        starts, ends = tf.cast(ctx.input(1), tf.int64), tf.cast(ctx.input(2), tf.int64)
        count = starts.shape[0]
        if count is None:
            raise unsupported(node, "starts of unknown length")
        axes = ctx.static_value(3)
        axes = list(range(count)) if axes is None and not ctx.has_input(3) else axes
        steps = tf.cast(ctx.input(4), tf.int64) if ctx.has_input(4) else None
        if axes is None:
            return _slice_runtime_axes(x, rank, starts, ends, steps, tf.cast(ctx.input(3), tf.int64))
    axes = [normalize_axis(int(a), rank) for a in np.atleast_1d(axes)]
    untouched = [a for a in range(rank) if a not in axes]
    order = axes + untouched
    zeros = tf.zeros([len(untouched)], tf.int64)
    begin = tf.concat([starts, zeros], 0)
    end = tf.concat([ends, zeros], 0)
    stride = tf.concat([steps if steps is not None else tf.ones([len(axes)], tf.int64),
                        tf.ones([len(untouched)], tf.int64)], 0)
    inverse = np.argsort(order)
    begin, end, stride = (tf.gather(v, inverse) for v in (begin, end, stride))
    mask = sum(1 << a for a in untouched)
    begin, end = _clamp_slice_bounds(begin, end, stride, tf.shape(x, out_type=tf.int64))
    return tf.strided_slice(x, begin, end, stride, begin_mask=mask, end_mask=mask)


def _slice_runtime_axes(x, rank, starts, ends, steps, axes):
    """Slice whose axes are known only at run time: scatter the bounds into full-rank vectors."""
    axes = _runtime_axes(axes, rank)[:, None]
    dims = tf.shape(x, out_type=tf.int64)
    begin = tf.tensor_scatter_nd_update(tf.zeros([rank], tf.int64), axes, starts)
    end = tf.tensor_scatter_nd_update(dims, axes, ends)
    stride = tf.ones([rank], tf.int64)
    if steps is not None:
        stride = tf.tensor_scatter_nd_update(stride, axes, steps)
    begin, end = _clamp_slice_bounds(begin, end, stride, dims)
    return tf.strided_slice(x, begin, end, stride)


def _clamp_slice_bounds(begin, end, stride, dims):
    """ONNX clamping: negatives count from the end, then clamp into [0, dim] for
    forward steps and [-1, dim - 1] for backward ones (-1 = before the start,
    which TF spells as -dim - 1)."""
    begin = tf.where(begin < 0, begin + dims, begin)
    end = tf.where(end < 0, end + dims, end)
    forward = stride > 0
    begin = tf.where(forward, tf.clip_by_value(begin, 0, dims), tf.clip_by_value(begin, -1, dims - 1))
    end = tf.where(forward, tf.clip_by_value(end, 0, dims), tf.clip_by_value(end, -1, dims - 1))
    before_start = tf.logical_and(tf.logical_not(forward), end < 0)
    end = tf.where(before_start, -dims - 1, end)
    begin = tf.where(tf.logical_and(tf.logical_not(forward), begin < 0), -dims - 1, begin)
    return begin, end


@register("Split")
def split(node, ctx):
    """Sizes from the 'split' input/attribute, or num_outputs (last chunk may be smaller)."""
    x = ctx.input(0)
    rank = rank_of(node, x)
    axis = normalize_axis(ctx.attr("axis", 0), rank)
    sizes = ctx.attr("split") if ctx.opset < 13 else ctx.static_value(1)
    count = ctx.output_count()
    if sizes is None and ctx.opset >= 13 and ctx.has_input(1):
        runtime = tf.reshape(tf.cast(ctx.input(1), tf.int64), [count])
        return tuple(tf.split(x, runtime, num=count, axis=axis))
    if sizes is None:
        dim = x.shape[axis]
        if dim is None:
            # ceil(dim / count) per chunk, the last one takes the rest (computed at run time).
            dynamic = tf.shape(x, out_type=tf.int64)[axis]
            chunk = (dynamic + count - 1) // count
            sizes = tf.concat([tf.fill([count - 1], chunk), [dynamic - chunk * (count - 1)]], 0)
            return tuple(tf.split(x, sizes, num=count, axis=axis))
        chunk = -(-dim // count)
        sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
    return tuple(tf.split(x, [int(s) for s in np.atleast_1d(sizes)], axis=axis))


@register("EyeLike")
def eye_like(node, ctx):
    x = ctx.input(0)
    dtype = tf_dtype(ctx.attr("dtype"), node.name) if ctx.attr("dtype") is not None else x.dtype
    dims = tf.shape(x, out_type=tf.int64)
    rows, cols = tf.range(dims[0])[:, None], tf.range(dims[1])[None, :]
    return tf.cast(tf.equal(cols - rows, ctx.attr("k", 0)), dtype)
