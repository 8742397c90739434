"""Channels-last pooling and normalization: TF's own kernels where ONNX's attributes allow.

MaxPool and AveragePool without dilations or an Indices output run as one
``tf.nn.max_pool`` / ``avg_pool``. A 2-D MaxPool whose pads are known while
translating gives them to the kernel (explicit paddings, never a tap); other
inputs are padded explicitly: with -inf for
MaxPool, with zeros for AveragePool, whose window sums are then divided by the
number of counted taps (explicit pads count only with count_include_pad, the
ceil_mode extension never). BatchNormalization in inference runs as TF's fused
kernel (4-D float32) or as one multiply-add per element with per-channel
factors; InstanceNormalization and the global pools reduce over the spatial axes.
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.channels_last import register_last

_POOL_TYPES = (tf.float32, tf.float16)


def _pool_accepts(node, ctx, x) -> bool:
    rank = x.shape.rank
    if rank is None or not 3 <= rank <= 5 or x.dtype not in _POOL_TYPES:
        return False
    dilations = ctx.attr("dilations") or [1]
    return ctx.output_count() < 2 and all(d == 1 for d in dilations)


def _static_dims(xl, spatial):
    dims = [xl.shape[1 + i] for i in range(spatial)]
    return dims if all(d is not None for d in dims) else None


def _ceil_extension(size, begin, end, kernel, stride):
    """Zeros (or -inf) added after the end pad so that ceil_mode's last window fits:
    the last window must start inside the input or its begin padding."""
    span = size + begin + end - kernel
    out = -(-span // stride) + 1
    if isinstance(out, int):
        out = out - 1 if (out - 1) * stride >= size + begin else out
        return max((out - 1) * stride + kernel - (size + begin + end), 0)
    out = tf.where((out - 1) * stride >= size + begin, out - 1, out)
    return tf.maximum((out - 1) * stride + kernel - (size + begin + end), 0)


def _pool_geometry(node, ctx, xl):
    """(spatial, kernel, strides, pads, extensions): pads and extensions are Python
    ints when the input's spatial dims and the pads are static, else int64 tensors."""
    spatial = xl.shape.rank - 2
    kernel = list(ctx.attr("kernel_shape"))
    strides, _, extents = geo.geometry(ctx, spatial, kernel)
    dims = _static_dims(xl, spatial)
    pads = geo.static_pads(ctx, spatial)
    if pads is None or dims is None:
        pads = geo.padding(node, ctx, xl, spatial, strides, extents, first_axis=1)
        dims = [tf.shape(xl, out_type=tf.int64)[1 + i] for i in range(spatial)]
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    extensions = [_ceil_extension(dims[i], pads[i][0], pads[i][1], kernel[i], strides[i]) if ceil_mode else 0
                  for i in range(spatial)]
    return spatial, kernel, strides, pads, extensions


def _pad(x, pads, extensions, value):
    """Pad the spatial dims of a channels-last tensor (nothing when every pad is 0)."""
    pairs = [[b, e + x_] for (b, e), x_ in zip(pads, extensions, strict=True)]
    if all(isinstance(v, int) and v == 0 for pair in pairs for v in pair):
        return x
    return tf.pad(x, [[0, 0], *pairs, [0, 0]], constant_values=value)


@register_last("MaxPool", accepts=_pool_accepts)
def max_pool_last(node, ctx):
    xl = ctx.input(0)
    spatial, kernel, strides, pads, extensions = _pool_geometry(node, ctx, xl)
    pairs = [[b, e + x_] for (b, e), x_ in zip(pads, extensions, strict=True)]
    if spatial == 2 and all(isinstance(v, int) for pair in pairs for v in pair):
        # The kernel's own explicit padding never picks a padded tap: no padded copy.
        padding = [[0, 0], *pairs, [0, 0]] if any(v for pair in pairs for v in pair) else "VALID"
        return tf.nn.max_pool2d(xl, ksize=kernel, strides=strides, padding=padding)
    padded = _pad(xl, pads, extensions, float("-inf"))
    return tf.nn.max_pool(padded, ksize=kernel, strides=strides, padding="VALID")


@register_last("AveragePool", accepts=_pool_accepts)
def average_pool_last(node, ctx):
    xl = ctx.input(0)
    spatial, kernel, strides, pads, extensions = _pool_geometry(node, ctx, xl)
    padded = _pad(xl, pads, extensions, 0.0)
    means = tf.nn.avg_pool(padded, ksize=kernel, strides=strides, padding="VALID")
    if padded is xl:
        return means
    # The share of each window's taps that count, as the same pool over a mask.
    if all(isinstance(v, int) for pair in pads for v in pair) and _static_dims(xl, spatial):
        with tf.init_scope():
            counted = _counted_share(_static_dims(xl, spatial), pads, extensions, kernel, strides, ctx, xl.dtype)
            counted = counted.numpy()
        return means / tf.constant(counted)
    dims = tf.shape(xl, out_type=tf.int64)[1:1 + spatial]
    return means / _counted_share(dims, pads, extensions, kernel, strides, ctx, xl.dtype)


def _counted_share(dims, pads, extensions, kernel, strides, ctx, dtype):
    ones = tf.ones(tf.concat([[1], tf.cast(dims, tf.int64), [1]], 0), dtype)
    if ctx.attr("count_include_pad", 0):
        mask = _pad(_pad(ones, pads, [0] * len(pads), 1.0), [(0, 0)] * len(pads), extensions, 0.0)
    else:
        mask = _pad(ones, pads, extensions, 0.0)
    return tf.nn.avg_pool(mask, ksize=kernel, strides=strides, padding="VALID")


@register_last("GlobalAveragePool", "GlobalMaxPool")
def global_pool_last(node, ctx):
    xl = ctx.input(0)
    axes = list(range(1, xl.shape.rank - 1))
    reduce = tf.reduce_mean if node.op_type == "GlobalAveragePool" else tf.reduce_max
    return reduce(xl, axis=axes, keepdims=True)


def _inference_norm(node, ctx, x) -> bool:
    rank = x.shape.rank
    return rank is not None and 3 <= rank <= 5 and not ctx.attr("training_mode", 0) and ctx.output_count() < 2


@register_last("BatchNormalization", accepts=_inference_norm)
def batch_norm_last(node, ctx):
    """Inference: y = x * s + (bias - mean * s) with s = scale / sqrt(var + eps),
    the form onnxruntime computes."""
    xl, scale, bias, mean, var = (ctx.input(i) for i in range(5))
    eps = ctx.attr("epsilon", 1e-5)
    params = (scale, bias, mean, var)
    if xl.shape.rank == 4 and xl.dtype == tf.float32 and all(p.dtype == tf.float32 for p in params):
        # The raw op: tf.nn's wrapper raises epsilon to cuDNN's minimum of 1.001e-5.
        return tf.raw_ops.FusedBatchNormV3(x=xl, scale=scale, offset=bias, mean=mean, variance=var,
                                           epsilon=eps, is_training=False, data_format="NHWC")[0]
    factor = tf.math.rsqrt(var + tf.cast(eps, var.dtype)) * scale
    return xl * tf.cast(factor, xl.dtype) + tf.cast(bias - mean * factor, xl.dtype)


@register_last("InstanceNormalization")
def instance_norm_last(node, ctx):
    xl, scale, bias = ctx.input(0), ctx.input(1), ctx.input(2)
    mean, var = tf.nn.moments(xl, axes=list(range(1, xl.shape.rank - 1)), keepdims=True)
    eps = tf.cast(ctx.attr("epsilon", 1e-5), xl.dtype)
    return (xl - mean) * tf.math.rsqrt(var + eps) * scale + bias
