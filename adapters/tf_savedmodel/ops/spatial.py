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


def padding(node, ctx, x, spatial, strides, extents, first_axis=2):
    """Per spatial dim, (begin, end) pads as int64 scalars; ``first_axis`` is where
    the spatial dims of ``x`` start (2 channels-first, 1 channels-last)."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        zero = tf.constant(0, tf.int64)
        return [(zero, zero)] * spatial
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        dims = tf.shape(x, out_type=tf.int64)
        pairs = []
        for i in range(spatial):
            size = dims[first_axis + i]
            out = (size + strides[i] - 1) // strides[i]
            total = tf.maximum((out - 1) * strides[i] + extents[i] - size, 0)
            small = total // 2
            pairs.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
        return pairs
    if auto_pad != "NOTSET":
        raise unsupported(node, f"auto_pad {auto_pad!r}")
    pads = static_pads(ctx, spatial)
    return [(tf.constant(b, tf.int64), tf.constant(e, tf.int64)) for b, e in pads]


def static_pads(ctx, spatial: int) -> list[tuple[int, int]] | None:
    """Per spatial dim, (begin, end) pads as Python ints when the pads do not depend on
    the input's size (explicit pads or VALID), else None (SAME_*)."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return [(0, 0)] * spatial
    if auto_pad != "NOTSET":
        return None
    pads = list(ctx.attr("pads", [0] * (2 * spatial)))
    return [(int(pads[i]), int(pads[i + spatial])) for i in range(spatial)]


def to_last_perm(rank: int) -> list[int]:
    """The permutation taking NC... to N...C."""
    return [0] + list(range(2, rank)) + [1]


def to_first_perm(rank: int) -> list[int]:
    """The permutation taking N...C to NC..."""
    return [0, rank - 1] + list(range(1, rank - 1))


def channels_last(x):
    """NC... -> N...C."""
    return tf.transpose(x, to_last_perm(x.shape.rank))


def channels_first(y):
    """N...C -> NC..."""
    return tf.transpose(y, to_first_perm(y.shape.rank))


def permute(x: tf.Tensor, perm: list[int]) -> tf.Tensor:
    """``tf.transpose(x, perm)``, as a reshape when only dimensions of size 1 move."""
    dims = x.shape.as_list() if x.shape.rank is not None else None
    if perm == list(range(len(perm))):
        return x
    if dims is not None and 0 not in dims:
        moved = [p for p in perm if dims[p] != 1]
        if moved == sorted(moved):
            target = [dims[p] for p in perm]
            if sum(d is None for d in target) <= 1:
                return tf.reshape(x, [-1 if d is None else d for d in target])
            out = tf.reshape(x, tf.gather(tf.shape(x), perm))
            out.set_shape(target)
            return out
    return tf.transpose(x, perm)
