"""Neural-network ONNX ops: Gemm, MatMul, Conv, pooling, normalization, Softmax, reductions.

ONNX is channels-first; TF's CPU kernels for convolution and pooling are
channels-last, so those ops transpose in and out around the TF kernel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register, unsupported


@register("MatMul")
def matmul(node, ctx):
    """numpy matmul semantics: 1-D operands are promoted, then the added dim dropped.

    A third input is what an Add added to the product (``matmul_bias.py``): added to
    the 2-D product's rows when it is one entry per column, else after, broadcast."""
    a, b = ctx.input(0), ctx.input(1)
    bias = ctx.input(2) if len(node.input) > 2 else None
    a_vec, b_vec = a.shape.rank == 1, b.shape.rank == 1
    if a_vec:
        a = a[None, :]
    if b_vec:
        b = b[:, None]
    row_bias = None
    if bias is not None and not (a_vec or b_vec) and _is_row(bias.shape, b.shape, a.shape.rank):
        row_bias = tf.reshape(bias, [-1])
    if a.shape.rank is not None and a.shape.rank >= 3 and b.shape.rank == 2:
        out = _rows_times_matrix(a, b, row_bias)
    else:
        out = tf.linalg.matmul(a, b)
        if row_bias is not None:
            out = tf.nn.bias_add(out, row_bias)
    if a_vec:
        out = tf.squeeze(out, -2)
    if b_vec:
        out = tf.squeeze(out, -1)
    if bias is not None and row_bias is None:
        out = out + bias
    return out


def _is_row(bias: tf.TensorShape, matrix: tf.TensorShape, rank: int | None) -> bool:
    """Whether a bias of this shape adds one entry per column of ``matrix``'s product with an
    operand of ``rank``, without widening it (static shapes)."""
    if bias.rank is None or rank is None or not 1 <= bias.rank <= rank or matrix.rank is None:
        return False
    dims = bias.as_list()
    columns = matrix.as_list()[-1]
    return columns is not None and dims[-1] == columns and all(d == 1 for d in dims[:-1])


def _rows_times_matrix(a, b, bias=None):
    """``a @ b`` (+ ``bias`` per row) for a of rank 3 or more and a matrix b, as one 2-D
    MatMul over a's rows: TF's BatchMatMulV2 broadcasting b runs it several times slower,
    and over ten times slower once Grappler folds a transpose of b into it."""
    rows = tf.reshape(a, [-1, a.shape[-1] if a.shape[-1] is not None else tf.shape(a)[-1]])
    out = tf.linalg.matmul(rows, b)
    if bias is not None:
        out = tf.nn.bias_add(out, bias)
    static = a.shape[:-1].concatenate(b.shape[-1:])
    if static.is_fully_defined():
        return tf.reshape(out, static.as_list())
    out = tf.reshape(out, tf.concat([tf.shape(a)[:-1], tf.shape(b)[-1:]], 0))
    out.set_shape(static)
    return out


@register("Gemm")
def gemm(node, ctx):
    """alpha * A' @ B' + beta * C, with A' = A^T if transA, B' = B^T if transB, C broadcast.

    The transposes are explicit ops, and a C of shape [1, N] is added as its rank-1 row.
    The row is what matters: in a traced graph grappler folds a transpose back into
    MatMul's transpose_a and fuses the Add into _FusedMatMul; with transpose_a, TF keeps
    the Eigen fused kernel (oneDNN's refuses a transposed A), which takes only a rank-1
    bias, so a [1, N] C failed at run time: "InvalidArgumentError: Graph execution error
    ... bias must be 1-dimensional" (tensorflow/tensorflow#126661, TF 2.21). Grappler
    fuses a 2-D bias only where oneDNN is on (TF_ENABLE_ONEDNN_OPTS=1, on by default on
    some x86 CPUs only). A rank-1 C broadcasts the same way, so the result is unchanged.
    """
    a, c = ctx.input(0), ctx.input(2)
    known_b = ctx.static_value(1)
    if ctx.attr("transA", 0):
        a = tf.transpose(a)
    if known_b is not None and ctx.attr("transB", 0):  # transposed now, not per call
        b = tf.constant(np.ascontiguousarray(np.asarray(known_b).T))
    else:
        b = tf.transpose(ctx.input(1)) if ctx.attr("transB", 0) else ctx.input(1)
    out = tf.linalg.matmul(a, b)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        out = out * tf.cast(alpha, out.dtype)
    if c is not None:
        if c.shape.rank == 2 and c.shape[0] == 1:
            c = tf.squeeze(c, axis=0)
        out = out + (c if beta == 1.0 else c * tf.cast(beta, c.dtype))
    return out


@register("GlobalAveragePool", "GlobalMaxPool")
def global_pool(node, ctx):
    x = ctx.input(0)
    axes = list(range(2, rank_of(node, x)))
    reduce = tf.reduce_mean if node.op_type == "GlobalAveragePool" else tf.reduce_max
    return reduce(x, axis=axes, keepdims=True)


def _channel_shape(x, rank):
    return [1, -1] + [1] * (rank - 2)


@register("BatchNormalization")
def batch_norm(node, ctx):
    """(x - mean) / sqrt(var + eps) * scale + bias over axis 1.

    In training mode (opset 14+) the batch's own statistics normalize, and the
    running statistics come out blended by ``momentum``."""
    x, scale, bias, mean, var = (ctx.input(i) for i in range(5))
    rank = rank_of(node, x)
    shape = _channel_shape(x, rank)
    eps = tf.cast(ctx.attr("epsilon", 1e-5), var.dtype)
    training = ctx.attr("training_mode", 0)
    if ctx.output_count() > 1 and not training:
        raise unsupported(node, "statistics outputs outside training mode")
    if training:
        batch_mean, batch_var = tf.nn.moments(x, axes=[0] + list(range(2, rank)))
        momentum = tf.cast(ctx.attr("momentum", 0.9), mean.dtype)
        running_mean = mean * momentum + tf.cast(batch_mean, mean.dtype) * (1 - momentum)
        running_var = var * momentum + tf.cast(batch_var, var.dtype) * (1 - momentum)
        mean, var = batch_mean, batch_var
    inv = tf.math.rsqrt(tf.reshape(var, shape) + eps)
    y = (x - tf.reshape(mean, shape)) * inv * tf.reshape(scale, shape) + tf.reshape(bias, shape)
    return (y, running_mean, running_var) if training else y


@register("InstanceNormalization")
def instance_norm(node, ctx):
    """Per sample and channel over the spatial axes: (x - mean) / sqrt(var + eps) * scale + B."""
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    rank = rank_of(node, x)
    mean, var = tf.nn.moments(x, axes=list(range(2, rank)), keepdims=True)
    shape = _channel_shape(x, rank)
    eps = tf.cast(ctx.attr("epsilon", 1e-5), x.dtype)
    return (x - mean) * tf.math.rsqrt(var + eps) * tf.reshape(scale, shape) + tf.reshape(bias, shape)


@register("LayerNormalization")
def layer_norm(node, ctx):
    """Normalize over axes [axis, rank); the statistics use stash_type (float32)."""
    x, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    rank = rank_of(node, x)
    axes = list(range(normalize_axis(ctx.attr("axis", -1), rank), rank))
    eps = ctx.attr("epsilon", 1e-5)
    compute = tf.float32 if ctx.attr("stash_type", 1) == 1 and x.dtype != tf.float64 else x.dtype
    xc = tf.cast(x, compute)
    mean = tf.reduce_mean(xc, axis=axes, keepdims=True)
    centered = xc - mean
    var = tf.reduce_mean(tf.square(centered), axis=axes, keepdims=True)
    inv_std = tf.math.rsqrt(var + tf.cast(eps, compute))
    y = tf.cast(centered * inv_std, x.dtype) * scale
    if bias is not None:
        y = y + bias
    extra = ctx.output_count() - 1
    return (y, mean, inv_std)[: 1 + extra] if extra else y


def _softmax(node, ctx, fn):
    x = ctx.input(0)
    rank = rank_of(node, x)
    if ctx.opset >= 13:
        return fn(x, axis=normalize_axis(ctx.attr("axis", -1), rank))
    axis = normalize_axis(ctx.attr("axis", 1), rank)
    dims = tf.shape(x, out_type=tf.int64)
    flat = tf.reshape(x, tf.stack([tf.reduce_prod(dims[:axis]), tf.reduce_prod(dims[axis:])]))
    return tf.reshape(fn(flat, axis=-1), dims)


@register("Softmax")
def softmax(node, ctx):
    return _softmax(node, ctx, tf.nn.softmax)


@register("LogSoftmax")
def log_softmax(node, ctx):
    return _softmax(node, ctx, tf.nn.log_softmax)


@register("Einsum")
def einsum(node, ctx):
    return tf.einsum(ctx.attr("equation"), *ctx.inputs())
