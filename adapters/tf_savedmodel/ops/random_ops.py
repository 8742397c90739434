"""Random ONNX ops: Dropout.

In inference (the default, and every opset before 12 unless is_test=0) Dropout
is the identity with an all-true mask. In training mode it keeps the elements
whose uniform draw is at least the ratio. With a ``seed`` attribute the draws
are numpy's ``RandomState(seed).uniform`` (``mt19937``), because ONNX's
reference defines seeded Dropout by that generator and TF's generators draw
other streams; without one they come from TF's stateless generator seeded with
0 (repeatable, with the same statistics).
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops import mt19937
from portability.adapters.tf_savedmodel.ops.registry import register, unsupported


def _training(ctx):
    """Training flag (a runtime bool tensor from opset 12) and drop ratio (float64,
    the precision the reference compares draws in)."""
    if ctx.opset >= 12:
        ratio = ctx.input(1)
        ratio = tf.constant(0.5, tf.float64) if ratio is None else tf.reshape(tf.cast(ratio, tf.float64), [])
        flag = ctx.input(2)
        flag = tf.constant(False) if flag is None else tf.reshape(tf.cast(flag, tf.bool), [])
        return flag, ratio
    training = ctx.attr("is_test", 1) == 0 if ctx.opset < 7 else False
    return tf.constant(training), tf.cast(tf.constant(ctx.attr("ratio", 0.5), tf.float32), tf.float64)


def _draws(node, ctx, shape: tf.Tensor) -> tf.Tensor:
    """Uniform [0, 1) draws of ``shape``: numpy's stream for a seeded node."""
    seed = ctx.attr("seed")
    if seed is None:
        draws = tf.random.stateless_uniform(shape, seed=tf.constant([0, 0], tf.int64), dtype=tf.float32)
        return tf.cast(draws, tf.float64)
    try:
        return mt19937.uniform(seed, shape)
    except ValueError as exc:
        raise unsupported(node, str(exc)) from exc


@register("Dropout")
def dropout(node, ctx):
    """y = x * mask / (1 - ratio) in training mode, else x; mask output if asked."""
    x = ctx.input(0)
    training, ratio = _training(ctx)
    active = tf.logical_and(training, ratio > 0)
    shape = tf.shape(x)
    # The generator runs only in training mode (its loop is long for big tensors).
    keep = tf.cond(active, lambda: _draws(node, ctx, shape) >= ratio, lambda: tf.ones(shape, tf.bool))
    scale = tf.where(active, 1.0 / (1.0 - tf.cast(ratio, tf.float32)), 1.0)
    y = tf.where(keep, x * tf.cast(scale, x.dtype), tf.zeros_like(x))
    return (y, keep) if ctx.output_count() > 1 else y
