"""Element-wise ONNX ops: arithmetic, comparisons, logic, activations, casts.

TF's binary ops broadcast like numpy, which is ONNX's multidirectional
broadcasting, so most translators are one line.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from onnx import TensorProto

from portability.adapters.tf_savedmodel.ops import narrow_dtypes
from portability.adapters.tf_savedmodel.ops.dtypes import CARRIERS, FLOAT8_MAX, tf_dtype
from portability.adapters.tf_savedmodel.ops.registry import register

_UNARY = {
    "Abs": tf.abs, "Neg": tf.negative, "Exp": tf.exp, "Log": tf.math.log, "Sqrt": tf.sqrt,
    "Reciprocal": tf.math.reciprocal, "Sigmoid": tf.sigmoid, "Tanh": tf.tanh, "Erf": tf.math.erf,
    "Relu": tf.nn.relu, "Floor": tf.floor, "Ceil": tf.math.ceil, "Sign": tf.sign,
    "Sin": tf.sin, "Cos": tf.cos, "Not": tf.logical_not, "IsNaN": tf.math.is_nan,
    "Softplus": tf.nn.softplus, "Softsign": tf.nn.softsign, "Round": tf.round,
}
_BINARY = {
    "Add": tf.add, "Sub": tf.subtract, "Mul": tf.multiply,
    "Equal": tf.equal, "Less": tf.less, "LessOrEqual": tf.less_equal, "Greater": tf.greater,
    "GreaterOrEqual": tf.greater_equal, "And": tf.logical_and, "Or": tf.logical_or,
    "Xor": tf.math.logical_xor, "BitwiseAnd": tf.bitwise.bitwise_and,
}


def _unary(fn):
    return lambda node, ctx: fn(ctx.input(0))


def _binary(fn):
    return lambda node, ctx: fn(ctx.input(0), ctx.input(1))


for _name, _fn in _UNARY.items():
    register(_name)(_unary(_fn))
for _name, _fn in _BINARY.items():
    register(_name)(_binary(_fn))


@register("Div")
def div(node, ctx):
    """Integer Div truncates toward zero in ONNX; float Div is true division."""
    a, b = ctx.input(0), ctx.input(1)
    if a.dtype.is_integer:
        return tf.truncatediv(a, b)
    return tf.math.divide(a, b)


@register("Mod")
def mod(node, ctx):
    """fmod=1 keeps the dividend's sign (C fmod); fmod=0 the divisor's (Python %)."""
    a, b = ctx.input(0), ctx.input(1)
    if a.dtype in (tf.float16, tf.bfloat16):  # no half-precision kernels: compute in float32
        return tf.cast(mod_values(tf.cast(a, tf.float32), tf.cast(b, tf.float32), ctx), a.dtype)
    return mod_values(a, b, ctx)


def mod_values(a, b, ctx):
    """fmod or Python-style modulo of two tensors of one dtype."""
    return tf.truncatemod(a, b) if ctx.attr("fmod", 0) else tf.math.floormod(a, b)


@register("Pow")
def power(node, ctx):
    """The exponent may have another type than the base; the result has the base's."""
    base, exponent = ctx.input(0), ctx.input(1)
    return tf.pow(base, tf.cast(exponent, base.dtype))


@register("IsInf")
def is_inf(node, ctx):
    x = ctx.input(0)
    pos = tf.logical_and(tf.math.is_inf(x), x > 0)
    neg = tf.logical_and(tf.math.is_inf(x), x < 0)
    if ctx.attr("detect_positive", 1) and ctx.attr("detect_negative", 1):
        return tf.math.is_inf(x)
    return pos if ctx.attr("detect_positive", 1) else neg


@register("Max", "Min", "Sum", "Mean")
def variadic(node, ctx):
    """N-ary element-wise reductions with broadcasting."""
    fn = {"Max": tf.maximum, "Min": tf.minimum, "Sum": tf.add, "Mean": tf.add}[node.op_type]
    values = ctx.inputs()
    out = values[0]
    for v in values[1:]:
        out = fn(out, v)
    if node.op_type == "Mean":
        out = out / tf.cast(len(values), out.dtype)
    return out


@register("Where")
def where(node, ctx):
    return tf.where(ctx.input(0), ctx.input(1), ctx.input(2))


@register("Cast")
def cast(node, ctx):
    """Casts to float8 saturate out-of-range values (and infinities) to the
    type's largest finite value unless ``saturate=0`` (opset 19). Types TF cannot
    compute with are read from and written to their carriers (``narrow_dtypes``)."""
    to = ctx.attr("to")
    x = _readable(ctx, 0, wide=to == TensorProto.DOUBLE)
    if to in CARRIERS:
        return narrow_dtypes.encode(x, to, bool(ctx.attr("saturate", 1)), ctx.attr("round_mode", "up"))
    target = tf_dtype(to, f"ONNX op Cast (node {node.name!r})")
    return _cast_to(x, target, bool(ctx.attr("saturate", 1)))


@register("CastLike")
def cast_like(node, ctx):
    x = _readable(ctx, 0, wide=ctx.input(1).dtype == tf.float64)
    like = ctx.carried_type(1)
    if like is not None:
        return narrow_dtypes.encode(x, like, bool(ctx.attr("saturate", 1)), ctx.attr("round_mode", "up"))
    return _cast_to(x, ctx.input(1).dtype, bool(ctx.attr("saturate", 1)))


def _cast_to(x: tf.Tensor, target: tf.DType, saturate: bool) -> tf.Tensor:
    """``tf.cast``, saturating reals to a float8 type's largest finite value if ``saturate``
    (Cast's saturate=1 table: +-Inf and out-of-range values give +-FLT_MAX)."""
    if target in FLOAT8_MAX and saturate and x.dtype.is_floating:
        # Clip in float32, or in float64 for a double: narrowing a double to float32
        # first would round twice and miss the nearest float8 just above a tie.
        limit = FLOAT8_MAX[target]
        wide = x if x.dtype == tf.float64 else tf.cast(x, tf.float32)
        x = tf.clip_by_value(wide, -limit, limit)
    return tf.cast(x, target)


def _readable(ctx, i: int, wide: bool) -> tf.Tensor:
    """Input ``i`` as a tensor TF computes with: a carrier is decoded to its values."""
    carried = ctx.carried_type(i)
    x = ctx.input(i)
    return x if carried is None else narrow_dtypes.decode(x, carried, wide)


@register("Identity")
def identity(node, ctx):
    """Tensors, sequences (Python lists) and optionals (None when empty) pass through."""
    value = ctx.input(0)
    if value is None:
        return None
    if isinstance(value, list):
        return [tf.identity(item) for item in value]
    return tf.identity(value)


@register("Clip")
def clip(node, ctx):
    """Bounds are attributes before opset 11, optional inputs since."""
    x = ctx.input(0)
    if ctx.opset < 11:
        low, high = ctx.attr("min"), ctx.attr("max")
    else:
        low, high = ctx.input(1), ctx.input(2)
    if low is not None:
        x = tf.maximum(x, tf.cast(low, x.dtype))
    if high is not None:
        x = tf.minimum(x, tf.cast(high, x.dtype))
    return x


@register("Gelu")
def gelu(node, ctx):
    """Gelu (opset 20): exact erf form, or the tanh approximation."""
    x = ctx.input(0)
    if ctx.attr("approximate", "none") == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + tf.tanh(inner))
    return 0.5 * x * (1.0 + tf.math.erf(x * (1.0 / math.sqrt(2.0))))


@register("LeakyRelu")
def leaky_relu(node, ctx):
    return tf.nn.leaky_relu(ctx.input(0), alpha=ctx.attr("alpha", 0.01))


@register("Elu")
def elu(node, ctx):
    x = ctx.input(0)
    alpha = ctx.attr("alpha", 1.0)
    return tf.where(x > 0, x, alpha * (tf.exp(x) - 1))


@register("HardSigmoid")
def hard_sigmoid(node, ctx):
    x = ctx.input(0)
    return tf.clip_by_value(ctx.attr("alpha", 0.2) * x + ctx.attr("beta", 0.5), 0.0, 1.0)


@register("PRelu")
def prelu(node, ctx):
    """x where x >= 0, else slope * x. With finite slopes known while translating, the
    select (three passes, one a broadcast multiply, and a boolean mask) becomes
    relu(x) + min(x, 0) * slope, exact (0 + y is y, x + 0 is x; NaN stays NaN, and
    -inf * 0 is NaN as in ONNX). max(x, slope * x) would be one pass fewer, but
    tf2onnx reads that pattern as LeakyRelu and crashes on a per-channel slope."""
    x, slope = ctx.input(0), ctx.input(1)
    known = ctx.static_value(1)
    if known is not None and known.size and np.all(np.isfinite(known)):
        return tf.nn.relu(x) + tf.minimum(x, tf.zeros([], x.dtype)) * slope
    return tf.where(x < 0, x * slope, x)


@register("Selu")
def selu(node, ctx):
    x = ctx.input(0)
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    return gamma * tf.where(x > 0, x, alpha * (tf.exp(x) - 1))


@register("HardSwish")
def hard_swish(node, ctx):
    """x * HardSigmoid(x) with alpha 1/6 and beta 0.5."""
    x = ctx.input(0)
    return x * tf.clip_by_value(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)
