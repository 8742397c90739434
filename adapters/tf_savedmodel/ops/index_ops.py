"""Indexing ONNX ops: Gather*, Scatter*, TopK, NonZero, CumSum.

ONNX indices may be negative (counted from the end of their axis); TF's
gather and scatter kernels may not, so indices are wrapped first.
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register, unsupported


def _nonnegative_indices(indices: tf.Tensor, dim: tf.Tensor) -> tf.Tensor:
    """Negative indices wrapped by the size of their axis."""
    dim = tf.cast(dim, indices.dtype)
    return tf.where(indices < 0, indices + dim, indices)


def _element_coords(indices: tf.Tensor, axis: int, rank: int) -> tf.Tensor:
    """Full coordinates [..., rank] for *Elements ops: each element's own
    position, with its ``axis`` coordinate replaced by the index."""
    idx_shape = tf.shape(indices, out_type=tf.int64)
    grids = tf.meshgrid(*[tf.range(idx_shape[d]) for d in range(rank)], indexing="ij")
    grids[axis] = tf.cast(indices, tf.int64)
    return tf.stack(grids, axis=-1)


@register("Gather")
def gather(node, ctx):
    x, indices = ctx.input(0), ctx.input(1)
    axis = normalize_axis(ctx.attr("axis", 0), rank_of(node, x))
    indices = _nonnegative_indices(indices, tf.shape(x, out_type=indices.dtype)[axis])
    return tf.gather(x, indices, axis=axis)


@register("GatherElements")
def gather_elements(node, ctx):
    """out[i..] = data[i.. with index[axis] replaced by indices[i..]]."""
    x, indices = ctx.input(0), ctx.input(1)
    rank = rank_of(node, x)
    axis = normalize_axis(ctx.attr("axis", 0), rank)
    indices = _nonnegative_indices(indices, tf.shape(x, out_type=indices.dtype)[axis])
    return tf.gather_nd(x, _element_coords(indices, axis, rank))


@register("GatherND")
def gather_nd(node, ctx):
    x, indices = ctx.input(0), ctx.input(1)
    batch_dims = ctx.attr("batch_dims", 0)
    depth = indices.shape[-1]
    if depth is None:
        raise unsupported(node, "indices whose last dimension is unknown")
    dims = tf.shape(x, out_type=indices.dtype)[batch_dims:batch_dims + depth]
    indices = _nonnegative_indices(indices, dims)
    return tf.gather_nd(x, indices, batch_dims=batch_dims)



_SCATTER = {"none": tf.tensor_scatter_nd_update, "add": tf.tensor_scatter_nd_add,
            "max": tf.tensor_scatter_nd_max, "min": tf.tensor_scatter_nd_min}


def _scatter(node, data, coords, updates, reduction):
    """Scatter ``updates`` at ``coords`` (full or leading coordinates of ``data``)."""
    if reduction in _SCATTER:
        return _SCATTER[reduction](data, coords, updates)
    if reduction != "mul":
        raise unsupported(node, f"reduction {reduction!r}")
    # No scatter-multiply kernel: multiply the updates per target slot, then apply.
    depth = tf.shape(coords, out_type=tf.int64)[-1]
    dims = tf.shape(data, out_type=tf.int64)
    lead = dims[:depth]
    strides = tf.math.cumprod(lead, exclusive=True, reverse=True)
    linear = tf.reduce_sum(coords * strides, axis=-1)
    slots = tf.reduce_prod(lead)
    flat = tf.reshape(data, tf.concat([[slots], dims[depth:]], 0))
    grouped = tf.reshape(updates, tf.concat([[-1], dims[depth:]], 0))
    factors = tf.math.unsorted_segment_prod(grouped, tf.reshape(linear, [-1]), slots)
    return tf.reshape(flat * factors, dims)


@register("ScatterND")
def scatter_nd(node, ctx):
    data, indices, updates = ctx.input(0), tf.cast(ctx.input(1), tf.int64), ctx.input(2)
    depth = tf.shape(indices, out_type=tf.int64)[-1]
    indices = _nonnegative_indices(indices, tf.shape(data, out_type=tf.int64)[:depth])
    return _scatter(node, data, indices, updates, ctx.attr("reduction", "none"))


@register("ScatterElements", "Scatter")
def scatter_elements(node, ctx):
    data, indices, updates = ctx.input(0), tf.cast(ctx.input(1), tf.int64), ctx.input(2)
    rank = rank_of(node, data)
    axis = normalize_axis(ctx.attr("axis", 0), rank)
    indices = _nonnegative_indices(indices, tf.shape(data, out_type=tf.int64)[axis])
    return _scatter(node, data, _element_coords(indices, axis, rank), updates,
                    ctx.attr("reduction", "none"))


@register("TopK")
def top_k(node, ctx):
    """k largest (or smallest) along ``axis``; equal values keep their index order."""
    x = ctx.input(0)
    rank = rank_of(node, x)
    axis = normalize_axis(ctx.attr("axis", -1), rank)
    k = tf.reshape(tf.cast(ctx.input(1), tf.int32), []) if ctx.opset >= 10 else ctx.attr("k")
    perm = [d for d in range(rank) if d != axis] + [axis]
    moved = tf.transpose(x, perm) if axis != rank - 1 else x
    direction = "DESCENDING" if ctx.attr("largest", 1) else "ASCENDING"
    order = tf.argsort(moved, axis=-1, direction=direction, stable=True)[..., :k]
    values = tf.gather(moved, order, batch_dims=rank - 1)
    inverse = [perm.index(d) for d in range(rank)]
    if axis != rank - 1:
        values, order = tf.transpose(values, inverse), tf.transpose(order, inverse)
    return values, tf.cast(order, tf.int64)


@register("NonZero")
def non_zero(node, ctx):
    """Indices of the non-zero elements, one row per dimension, in row-major order."""
    x = ctx.input(0)
    mask = x if x.dtype == tf.bool else tf.not_equal(x, tf.zeros([], x.dtype))
    return tf.transpose(tf.where(mask))


@register("CumSum")
def cum_sum(node, ctx):
    """The axis is a (possibly runtime) scalar input; exclusive and reverse map to TF's."""
    x = ctx.input(0)
    axis = tf.reshape(tf.cast(ctx.input(1), tf.int32), [])
    return tf.cumsum(x, axis=axis, exclusive=bool(ctx.attr("exclusive", 0)),
                     reverse=bool(ctx.attr("reverse", 0)))
