"""Random ONNX ops: Dropout.

In inference (the default, and every opset before 12 unless is_test=0) Dropout
is the identity with an all-true mask. In training mode it draws a keep mask
with TF's stateless generator (seeded by the ``seed`` attribute, else 0): the
statistics match ONNX, the exact draws cannot (ONNX's reference draws from
numpy's Mersenne Twister).
"""

from __future__ import annotations

import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import register


def _training(ctx):
    """Training flag (a runtime bool tensor from opset 12) and drop ratio."""
    if ctx.opset >= 12:
        ratio = ctx.input(1)
        ratio = tf.constant(0.5) if ratio is None else tf.reshape(tf.cast(ratio, tf.float32), [])
        flag = ctx.input(2)
        flag = tf.constant(False) if flag is None else tf.reshape(tf.cast(flag, tf.bool), [])
        return flag, ratio
    training = ctx.attr("is_test", 1) == 0 if ctx.opset < 7 else False
    return tf.constant(training), tf.constant(ctx.attr("ratio", 0.5), tf.float32)


@register("Dropout")
def dropout(node, ctx):
    """y = x * mask / (1 - ratio) in training mode, else x; mask output if asked."""
    x = ctx.input(0)
    training, ratio = _training(ctx)
    seed = tf.constant([ctx.attr("seed", 0), 0], tf.int64)
    draws = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=tf.float32)
    active = tf.logical_and(training, ratio > 0)
    keep = tf.logical_or(tf.logical_not(active), draws >= ratio)
    scale = tf.where(active, 1.0 / (1.0 - ratio), 1.0)
    y = tf.where(keep, x * tf.cast(scale, x.dtype), tf.zeros_like(x))
    return (y, keep) if ctx.output_count() > 1 else y
