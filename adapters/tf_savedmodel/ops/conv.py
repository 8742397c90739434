"""ONNX Conv and ConvTranspose, 1-D to 3-D.

TF's CPU convolutions are channels-last, so inputs are transposed in and out.
Pads (explicit, or from auto_pad) are applied with ``tf.pad`` and the TF
convolution runs VALID. TF refuses strides combined with dilations, so a
dilated strided convolution runs at stride 1 and is subsampled. Groups run
as separate convolutions. ConvTranspose is the convolution of the
zero-upsampled input with the spatially flipped kernel.
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import spatial as geo
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
    if dilated and any(s != 1 for s in strides):
        y = y[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    return y


def _kernel_last(w, spatial):
    """ONNX [out, in, k...] -> TF [k..., in, out]."""
    return tf.transpose(w, list(range(2, 2 + spatial)) + [1, 0])


@register("Conv")
def conv(node, ctx):
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    spatial = geo.spatial_rank(node, x)
    kernel = list(ctx.attr("kernel_shape") or w.shape[2:])
    strides, dilations, extents = geo.geometry(ctx, spatial, kernel)
    pads = geo.padding(node, ctx, x, spatial, strides, extents)
    xl = tf.pad(geo.channels_last(x), [[0, 0]] + [list(p) for p in pads] + [[0, 0]])
    y = _convolve(xl, _kernel_last(w, spatial), strides, dilations, ctx.attr("group", 1))
    if b is not None:
        y = y + b
    return geo.channels_first(y)


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


def _transpose_pads(node, ctx, x, spatial, strides, extents):
    """(begin, end) crops of the full transposed output, and the output_padding."""
    out_pad = list(ctx.attr("output_padding", [0] * spatial))
    output_shape = ctx.attr("output_shape")
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        pads = list(ctx.attr("pads", [0] * (2 * spatial)))
        return [(pads[i], pads[i + spatial]) for i in range(spatial)], out_pad
    dims = tf.shape(x, out_type=tf.int64)
    pairs = []
    for i in range(spatial):
        full = strides[i] * (dims[2 + i] - 1) + out_pad[i] + extents[i]
        target = output_shape[-spatial + i] if output_shape is not None else dims[2 + i] * strides[i]
        total = full - target
        small = total // 2
        begin, end = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        # An output_shape larger than the full output extends its end with zeros.
        grow = total < 0
        pairs.append((tf.where(grow, tf.zeros_like(total), begin), tf.where(grow, total, end)))
    return pairs, out_pad


@register("ConvTranspose")
def conv_transpose(node, ctx):
    """Weights are [in, out/group, k...]; output_shape, output_padding and auto_pad honoured."""
    x, w, b = ctx.input(0), ctx.input(1), ctx.input(2)
    spatial = geo.spatial_rank(node, x)
    group = ctx.attr("group", 1)
    kernel = list(ctx.attr("kernel_shape") or w.shape[2:])
    strides, dilations, extents = geo.geometry(ctx, spatial, kernel)
    crops, out_pad = _transpose_pads(node, ctx, x, spatial, strides, extents)
    xl = geo.channels_last(x)
    for i in range(spatial):
        xl = _upsample(xl, 1 + i, strides[i])
    full = [[0, 0]] + [[e - 1, e - 1 + p] for e, p in zip(extents, out_pad, strict=False)] + [[0, 0]]
    xl = tf.pad(xl, full)
    # [in, out/group, k...] -> per group [k..., in/group, out/group], spatially flipped.
    flipped = tf.reverse(w, axis=list(range(2, 2 + spatial)))
    parts = tf.split(flipped, group, axis=0)
    kernels = [tf.transpose(p, list(range(2, 2 + spatial)) + [0, 1]) for p in parts]
    kernel_tf = tf.concat(kernels, axis=-1) if group > 1 else kernels[0]
    y = _convolve_groups(xl, kernel_tf, dilations, group)
    extend = [[0, 0]] + [[0, tf.maximum(-tf.cast(c[1], tf.int64), 0)] for c in crops] + [[0, 0]]
    y = tf.pad(y, extend)
    crops = [(c[0], tf.maximum(tf.cast(c[1], tf.int64), 0)) for c in crops]
    shape = tf.shape(y, out_type=tf.int64)
    begin = [0] + [crops[i][0] for i in range(spatial)] + [0]
    end = [shape[0]] + [shape[1 + i] - crops[i][1] for i in range(spatial)] + [shape[-1]]
    y = tf.strided_slice(y, tf.stack([tf.cast(v, tf.int64) for v in begin]),
                         tf.stack([tf.cast(v, tf.int64) for v in end]))
    if b is not None:
        y = y + b
    return geo.channels_first(y)


def _convolve_groups(xl, kernel, dilations, group):
    """Stride-1 grouped convolution where each group's kernel maps in/group -> out/group."""
    return _convolve(xl, kernel, [1] * len(dilations), dilations, group)
