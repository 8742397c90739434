"""ONNX Conv and ConvTranspose, 1-D to 3-D, computed channels-last.

TF's CPU convolutions are channels-last. The layout pass (``layout.py``) hands
these translators channels-last inputs and keeps their outputs channels-last;
the plain translators, used where the pass does not apply, transpose in and out.

A 2-D (or 1-D, run as 2-D) Conv is one TF kernel: ``conv2d`` (grouped when
``group`` > 1), or ``depthwise_conv2d`` when each group reads one input
channel, with explicit pads, followed by ``bias_add`` so that Grappler's
remapper can fuse conv + bias + activation. Pads that depend on the input size
(SAME_LOWER) are applied with ``tf.pad``. TF refuses strides combined with
dilations, so a dilated strided convolution runs at stride 1 and is subsampled.
Kernels known while translating (constants, or variable snapshots the module
compiles in) are transposed to TF's layout then; others are transposed in the
graph. A 2-D ConvTranspose with one group and no dilation is TF's own
``conv2d_transpose``; any other is the convolution of the zero-upsampled input
with the spatially flipped kernel.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.channels_last import register_last, run_channels_last
from portability.adapters.tf_savedmodel.ops.registry import register


def _convolve(xl, kernel, strides, dilations, group):
    """Grouped VALID convolution, channels-last; kernel is [k..., in/group, out]."""
    dilated = any(d != 1 for d in dilations)
    step = [1] * len(strides) if dilated else strides

    def one(xi, ki):
        return tf.nn.convolution(xi, ki, strides=step, padding="VALID", dilations=dilations)
    if group == 1:
        y = one(xl, kernel)
    else:
        xs, ks = tf.split(xl, group, axis=-1), tf.split(kernel, group, axis=-1)
        y = tf.concat([one(xi, ki) for xi, ki in zip(xs, ks, strict=False)], axis=-1)
    return _subsample(y, strides, dilated)


def _subsample(y, strides, dilated):
    """Every stride-th output of a stride-1 dilated convolution."""
    if dilated and any(s != 1 for s in strides):
        y = y[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    return y


def _tf_kernel(ctx, i, perm, reshape=None):
    """Input ``i`` (an ONNX kernel) permuted to TF's layout: at translation time
    when its value is known, else in the graph."""
    known = ctx.known_value(i)
    if known is not None:
        array = np.asarray(known)
        if reshape is not None:
            array = array.reshape(reshape)
        return tf.constant(np.ascontiguousarray(array.transpose(perm)))
    w = ctx.input(i)
    if reshape is not None:
        w = tf.reshape(w, reshape)
    return tf.transpose(w, perm)


def conv_last(node, ctx):
    """Conv on a channels-last input (``ctx.input(0)``); returns channels-last."""
    xl, w, b = ctx.input(0), ctx.input_shape(1), ctx.input(2)
    spatial = geo.spatial_rank(node, xl)
    kernel = list(ctx.attr("kernel_shape") or w[2:])
    strides, dilations, extents = geo.geometry(ctx, spatial, kernel)
    group = ctx.attr("group", 1)
    static = geo.static_pads(ctx, spatial)
    if static is None or spatial == 3:
        pads = geo.padding(node, ctx, xl, spatial, strides, extents, first_axis=1)
        xl = tf.pad(xl, [[0, 0]] + [list(p) for p in pads] + [[0, 0]])
        static = [(0, 0)] * spatial
    if spatial == 3:
        kernel_tf = _tf_kernel(ctx, 1, [2, 3, 4, 1, 0])
        y = _convolve(xl, kernel_tf, strides, dilations, group)
    else:
        if spatial == 1:  # run as 2-D over a unit height
            xl, kernel, strides, dilations = xl[:, None], [1, *kernel], [1, *strides], [1, *dilations]
            static = [(0, 0), *static]
        y = _conv2d(ctx, xl, w, kernel, strides, dilations, static, group)
        if spatial == 1:
            y = y[:, 0]
    if b is not None:
        y = tf.nn.bias_add(y, b)
    return y


def _conv2d(ctx, xl, w, kernel, strides, dilations, pads, group):
    """One 2-D TF convolution kernel (plain, grouped or depthwise) with explicit pads;
    ``w`` is the ONNX kernel's shape."""
    dilated = any(d != 1 for d in dilations)
    step = [1, 1] if dilated else list(strides)
    padding = "VALID" if not any(p for pair in pads for p in pair) else \
        [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
    out_channels = w[0]
    in_channels = xl.shape[-1]
    depthwise = group > 1 and w[1] == 1 and in_channels == group and step[0] == step[1]
    if depthwise:
        shape = [group, out_channels // group, *kernel]
        k = _tf_kernel(ctx, 1, [2, 3, 0, 1], reshape=shape)
        xl, padding = _depthwise_padding(xl, padding, pads, kernel, step, dilations)
        y = tf.nn.depthwise_conv2d(xl, k, strides=[1, *step, 1], padding=padding, dilations=dilations)
    elif group == 1:
        k = _tf_kernel(ctx, 1, [2, 3, 1, 0], reshape=[out_channels, -1, *kernel])
        y = tf.nn.conv2d(xl, k, strides=step, padding=padding, dilations=dilations)
    else:
        # One convolution per group: TF's CPU Conv2D computes groups, but Grappler
        # fuses it with a following BiasAdd into a kernel that refuses them.
        if padding != "VALID":
            xl = tf.pad(xl, padding)
        k = _tf_kernel(ctx, 1, [2, 3, 1, 0], reshape=[out_channels, -1, *kernel])
        return _convolve(xl, k, list(strides), dilations, group)
    return _subsample(y, strides, dilated)


def _depthwise_padding(xl, padding, pads, kernel, step, dilations):
    """(input, padding) for a depthwise convolution without explicit paddings.

    With oneDNN on (TF's default on AVX-512 CPUs), Grappler fuses DepthwiseConv2dNative
    and the BiasAdd after it into a oneDNN kernel that aborts the whole process when the
    convolution has explicit paddings ("tensor_format.h Check failed: ... Invalid index
    from the dimension: 1, 0, H", TF 2.21), as PP-OCR's detector and every MobileNet-style
    block with a bias (or a folded BatchNorm) had. Pads TF's SAME computes for a stride-1
    convolution at any input size are SAME; others pad first and run VALID.
    """
    if not isinstance(padding, list):
        return xl, padding
    if all(s == 1 for s in step):
        same = [((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2) for k, d in zip(kernel, dilations, strict=True)]
        if [tuple(p) for p in pads] == same:
            return xl, "SAME"
    return tf.pad(xl, padding), "VALID"


@register_last("Conv")
def conv_channels_last(node, ctx):
    return conv_last(node, ctx)


@register("Conv")
def conv(node, ctx):
    return geo.channels_first(run_channels_last(node, ctx, conv_last))


def _upsample(x, axis, stride):
    """Insert stride - 1 zeros between consecutive elements along ``axis``."""
    if stride == 1:
        return x
    x = tf.expand_dims(x, axis + 1)
    zeros_shape = tf.tensor_scatter_nd_update(tf.shape(x), [[axis + 1]], [stride - 1])
    x = tf.concat([x, tf.zeros(zeros_shape, x.dtype)], axis=axis + 1)
    shape = tf.shape(x)
    merged = tf.concat([shape[:axis], [shape[axis] * stride], shape[axis + 2:]], 0)
    x = tf.reshape(x, merged)
    return tf.gather(x, tf.range(tf.shape(x)[axis] - (stride - 1)), axis=axis)


def _transpose_pads(node, ctx, xl, spatial, strides, extents):
    """(begin, end) crops of the full transposed output, and the output_padding."""
    out_pad = list(ctx.attr("output_padding", [0] * spatial))
    output_shape = ctx.attr("output_shape")
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        pads = list(ctx.attr("pads", [0] * (2 * spatial)))
        return [(pads[i], pads[i + spatial]) for i in range(spatial)], out_pad
    dims = tf.shape(xl, out_type=tf.int64)
    pairs = []
    for i in range(spatial):
        full = strides[i] * (dims[1 + i] - 1) + out_pad[i] + extents[i]
        target = output_shape[-spatial + i] if output_shape is not None else dims[1 + i] * strides[i]
        total = full - target
        small = total // 2
        begin, end = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        # An output_shape larger than the full output extends its end with zeros.
        grow = total < 0
        pairs.append((tf.where(grow, tf.zeros_like(total), begin), tf.where(grow, total, end)))
    return pairs, out_pad


def _native_transpose_2d(ctx, xl, w):
    # ``w`` is the ONNX kernel's shape.
    """A 2-D ConvTranspose TF computes itself (``conv2d_transpose``, the gradient of a
    VALID convolution; explicit pads cropped after): one group, no dilation, no
    output_shape or output_padding, float input. None for any other form."""
    kernel = list(ctx.attr("kernel_shape") or w[2:])
    if (xl.shape.rank != 4 or ctx.attr("group", 1) != 1 or any(d != 1 for d in ctx.attr("dilations") or [1])
            or ctx.attr("output_shape") is not None or any(ctx.attr("output_padding") or [0])
            or ctx.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or w.rank != 4
            or w[1] is None or None in kernel or xl.dtype not in (tf.float16, tf.float32, tf.float64)):
        return None
    strides = list(ctx.attr("strides", [1, 1]))
    pads = [0, 0, 0, 0] if ctx.attr("auto_pad", "NOTSET") == "VALID" else list(ctx.attr("pads", [0, 0, 0, 0]))
    filters = _tf_kernel(ctx, 1, [2, 3, 1, 0])  # [in, out, kh, kw] -> [kh, kw, out, in]
    shape = tf.shape(xl)
    full = [(shape[1 + i] - 1) * strides[i] + kernel[i] for i in range(2)]
    y = tf.nn.conv2d_transpose(xl, filters, tf.stack([shape[0], full[0], full[1], w[1]]), strides,
                               padding="VALID")
    if any(pads):
        y = y[:, pads[0]:full[0] - pads[2], pads[1]:full[1] - pads[3], :]
    return y


def conv_transpose_last(node, ctx):
    """ConvTranspose on a channels-last input; weights are [in, out/group, k...];
    output_shape, output_padding and auto_pad honoured. Returns channels-last."""
    xl, b = ctx.input(0), ctx.input(2)
    native = _native_transpose_2d(ctx, xl, ctx.input_shape(1))
    if native is not None:
        return native if b is None else tf.nn.bias_add(native, b)
    w = ctx.input(1)
    spatial = geo.spatial_rank(node, xl)
    group = ctx.attr("group", 1)
    kernel = list(ctx.attr("kernel_shape") or w.shape[2:])
    strides, dilations, extents = geo.geometry(ctx, spatial, kernel)
    crops, out_pad = _transpose_pads(node, ctx, xl, spatial, strides, extents)
    for i in range(spatial):
        xl = _upsample(xl, 1 + i, strides[i])
    full = [[0, 0]] + [[e - 1, e - 1 + p] for e, p in zip(extents, out_pad, strict=False)] + [[0, 0]]
    xl = tf.pad(xl, full)
    # [in, out/group, k...] -> per group [k..., in/group, out/group], spatially flipped.
    flipped = tf.reverse(w, axis=list(range(2, 2 + spatial)))
    parts = tf.split(flipped, group, axis=0)
    kernels = [tf.transpose(p, list(range(2, 2 + spatial)) + [0, 1]) for p in parts]
    kernel_tf = tf.concat(kernels, axis=-1) if group > 1 else kernels[0]
    y = _convolve(xl, kernel_tf, [1] * spatial, dilations, group)
    extend = [[0, 0]] + [[0, tf.maximum(-tf.cast(c[1], tf.int64), 0)] for c in crops] + [[0, 0]]
    y = tf.pad(y, extend)
    crops = [(c[0], tf.maximum(tf.cast(c[1], tf.int64), 0)) for c in crops]
    shape = tf.shape(y, out_type=tf.int64)
    begin = [0] + [crops[i][0] for i in range(spatial)] + [0]
    end = [shape[0]] + [shape[1 + i] - crops[i][1] for i in range(spatial)] + [shape[-1]]
    y = tf.strided_slice(y, tf.stack([tf.cast(v, tf.int64) for v in begin]),
                         tf.stack([tf.cast(v, tf.int64) for v in end]))
    if b is not None:
        y = tf.nn.bias_add(y, b)
    return y


@register_last("ConvTranspose")
def conv_transpose_channels_last(node, ctx):
    return conv_transpose_last(node, ctx)


@register("ConvTranspose")
def conv_transpose(node, ctx):
    return geo.channels_first(run_channels_last(node, ctx, conv_transpose_last))
