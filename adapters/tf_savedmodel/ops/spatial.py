"""Shared geometry of ONNX's convolution and pooling ops (N-D, channels-first).

Sizes are int64 tensors computed when the graph runs, so spatial dims may be
dynamic. ``auto_pad`` SAME_UPPER / SAME_LOWER put the odd pad at the end /
start; explicit pads are ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``.
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import rank_of, unsupported


def spatial_rank(node, x) -> int:
    """Number of spatial dims (1 to 3) of an NC... input."""
    rank = rank_of(node, x)
    if not 3 <= rank <= 5:
        raise unsupported(node, f"{rank - 2}-D spatial input (1-D to 3-D are supported)")
    return rank - 2


def geometry(ctx, spatial: int, kernel: list[int]):
    """(strides, dilations, effective kernel extents) as Python ints."""
    strides = list(ctx.attr("strides", [1] * spatial))
    dilations = list(ctx.attr("dilations", [1] * spatial))
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=False)]
    return strides, dilations, extents


def padding(node, ctx, x, spatial, strides, extents):
    """Per spatial dim, (begin, end) pads as int64 scalars."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        zero = tf.constant(0, tf.int64)
        return [(zero, zero)] * spatial
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        dims = tf.shape(x, out_type=tf.int64)
        pairs = []
        for i in range(spatial):
            size = dims[2 + i]
            out = (size + strides[i] - 1) // strides[i]
            total = tf.maximum((out - 1) * strides[i] + extents[i] - size, 0)
            small = total // 2
            pairs.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
        return pairs
    if auto_pad != "NOTSET":
        raise unsupported(node, f"auto_pad {auto_pad!r}")
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    return [(tf.constant(pads[i], tf.int64), tf.constant(pads[i + spatial], tf.int64))
            for i in range(spatial)]


def channels_last(x):
    """NC... -> N...C."""
    rank = x.shape.rank
    return tf.transpose(x, [0] + list(range(2, rank)) + [1])


def channels_first(y):
    """N...C -> NC..."""
    rank = y.shape.rank
    return tf.transpose(y, [0, rank - 1] + list(range(1, rank - 1)))
