"""Neural-network ONNX ops: Gemm, MatMul, Conv, pooling, normalization, Softmax, reductions.

ONNX is channels-first; TF's CPU kernels for convolution and pooling are
channels-last, so those ops transpose in and out around the TF kernel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import (normalize_axis, rank_of, register,
                                                             unsupported)


@register("MatMul")
def matmul(node, ctx):
    """numpy matmul semantics: 1-D operands are promoted, then the added dim dropped."""
    a, b = ctx.input(0), ctx.input(1)
    a_vec, b_vec = a.shape.rank == 1, b.shape.rank == 1
    if a_vec:
        a = a[None, :]
    if b_vec:
        b = b[:, None]
    out = tf.linalg.matmul(a, b)
    if a_vec:
        out = tf.squeeze(out, -2)
    if b_vec:
        out = tf.squeeze(out, -1)
    return out


@register("Gemm")
def gemm(node, ctx):
    a, b, c = ctx.input(0), ctx.input(1), ctx.input(2)
    out = tf.linalg.matmul(a, b, transpose_a=bool(ctx.attr("transA", 0)),
                           transpose_b=bool(ctx.attr("transB", 0)))
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        out = out * tf.cast(alpha, out.dtype)
    if c is not None:
        out = out + (c if beta == 1.0 else c * tf.cast(beta, c.dtype))
    return out


def _spatial(node, ctx, x):
    rank = rank_of(node, x)
    if rank not in (3, 4):
        raise unsupported(node, f"{rank - 2}-D spatial input (1-D and 2-D are supported)")
    return rank - 2


def _to_channels_last(x, spatial):
    """NC[H]W -> N[H]WC, with 1-D inputs lifted to 2-D (H=1)."""
    if spatial == 1:
        x = x[:, :, None, :]
    return tf.transpose(x, [0, 2, 3, 1])


def _to_channels_first(y, spatial):
    y = tf.transpose(y, [0, 3, 1, 2])
    return y[:, :, 0, :] if spatial == 1 else y


def _pads(node, ctx, spatial):
    """Explicit (begin, end) padding per spatial dim, or the string 'SAME'/'VALID'."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [(0, 0)] * 2
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if auto_pad == "SAME_LOWER":
            raise unsupported(node, "auto_pad SAME_LOWER")
        return "SAME"
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    pairs = [(pads[i], pads[i + spatial]) for i in range(spatial)]
    return ([(0, 0)] + pairs) if spatial == 1 else pairs


def _lift(values, spatial, fill):
    values = list(values)
    return ([fill] + values) if spatial == 1 else values


@register("Conv")
def conv(node, ctx):
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    spatial = _spatial(node, ctx, x)
    group = ctx.attr("group", 1)
    strides = _lift(ctx.attr("strides", [1] * spatial), spatial, 1)
    dilations = _lift(ctx.attr("dilations", [1] * spatial), spatial, 1)
    xh = _to_channels_last(x, spatial)
    if spatial == 1:
        w = w[:, :, None, :]
    pads = _pads(node, ctx, spatial)
    padding = pads if isinstance(pads, str) else [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
    kernel_hwio = tf.transpose(w, [2, 3, 1, 0])
    if group == 1:
        y = tf.nn.conv2d(xh, kernel_hwio, strides=strides, padding=padding, dilations=dilations)
    else:
        xs = tf.split(xh, group, axis=3)
        ks = tf.split(kernel_hwio, group, axis=3)
        y = tf.concat([tf.nn.conv2d(xi, ki, strides=strides, padding=padding, dilations=dilations)
                       for xi, ki in zip(xs, ks)], axis=3)
    if b is not None:
        y = y + b
    return _to_channels_first(y, spatial)


def _pool_setup(node, ctx, x):
    spatial = _spatial(node, ctx, x)
    if any(d != 1 for d in ctx.attr("dilations", [1] * spatial)):
        raise unsupported(node, "dilated pooling")
    kernel = _lift(ctx.attr("kernel_shape"), spatial, 1)
    strides = _lift(ctx.attr("strides", [1] * spatial), spatial, 1)
    xh = _to_channels_last(x, spatial)
    pads = _pads(node, ctx, spatial)
    if isinstance(pads, str):
        return spatial, kernel, strides, xh, pads
    pads = [list(p) for p in pads]
    if ctx.attr("ceil_mode", 0):
        for i in range(2):
            size = xh.shape[1 + i]
            if size is None:
                raise unsupported(node, "ceil_mode with a dynamic spatial size")
            covered = size + pads[i][0] + pads[i][1] - kernel[i]
            if covered % strides[i]:
                pads[i][1] += strides[i] - covered % strides[i]
    return spatial, kernel, strides, xh, pads


@register("MaxPool")
def max_pool(node, ctx):
    if ctx.output_count() > 1:
        raise unsupported(node, "the Indices output")
    x = ctx.input(0)
    spatial, kernel, strides, xh, pads = _pool_setup(node, ctx, x)
    if not isinstance(pads, str):
        if any(p for pair in pads for p in pair):
            low = tf.constant(-np.inf, xh.dtype) if xh.dtype.is_floating else xh.dtype.min
            xh = tf.pad(xh, [[0, 0], pads[0], pads[1], [0, 0]], constant_values=low)
        pads = "VALID"
    y = tf.nn.max_pool2d(xh, kernel, strides, pads)
    return _to_channels_first(y, spatial)


@register("AveragePool")
def average_pool(node, ctx):
    """count_include_pad=0 (the default) divides by the number of real elements."""
    x = ctx.input(0)
    spatial, kernel, strides, xh, pads = _pool_setup(node, ctx, x)
    if isinstance(pads, str) or not any(p for pair in pads for p in pair):
        y = tf.nn.avg_pool2d(xh, kernel, strides, pads if isinstance(pads, str) else "VALID")
        return _to_channels_first(y, spatial)
    paddings = [[0, 0], pads[0], pads[1], [0, 0]]
    window = float(kernel[0] * kernel[1])
    sums = tf.nn.avg_pool2d(tf.pad(xh, paddings), kernel, strides, "VALID") * window
    if ctx.attr("count_include_pad", 0):
        # Padding added for ceil_mode is never counted.
        explicit = list(ctx.attr("pads", [0] * (2 * spatial)))
        pads_explicit = [[explicit[i], explicit[i + spatial]] for i in range(spatial)]
        pads_explicit = ([[0, 0]] + pads_explicit) if spatial == 1 else pads_explicit
        ones = tf.pad(tf.ones_like(xh[:1, :, :, :1]), [[0, 0], *pads_explicit, [0, 0]],
                      constant_values=1.0)
        extra = [[0, 0], [0, pads[0][1] - pads_explicit[0][1]], [0, pads[1][1] - pads_explicit[1][1]], [0, 0]]
        counts = tf.nn.avg_pool2d(tf.pad(ones, extra), kernel, strides, "VALID") * window
    else:
        ones = tf.pad(tf.ones_like(xh[:1, :, :, :1]), paddings)
        counts = tf.nn.avg_pool2d(ones, kernel, strides, "VALID") * window
    return _to_channels_first(sums / counts, spatial)


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
    """Inference form: (x - mean) / sqrt(var + eps) * scale + bias over axis 1."""
    if ctx.attr("training_mode", 0) or ctx.output_count() > 1:
        raise unsupported(node, "training mode (export the model in eval mode)")
    x, scale, bias, mean, var = (ctx.input(i) for i in range(5))
    shape = _channel_shape(x, rank_of(node, x))
    eps = tf.cast(ctx.attr("epsilon", 1e-5), var.dtype)
    inv = tf.math.rsqrt(tf.reshape(var, shape) + eps)
    return (x - tf.reshape(mean, shape)) * inv * tf.reshape(scale, shape) + tf.reshape(bias, shape)


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
