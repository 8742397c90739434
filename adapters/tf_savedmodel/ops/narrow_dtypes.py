"""Casts to and from the ONNX types TensorFlow holds but cannot compute with.

TF has dtypes for the FNUZ float8s, FLOAT4E2M1 and the 2/4-bit integers but no
kernels for them (not even Cast), and no dtype at all for FLOAT8E8M0. Inside a
translated graph such a value therefore travels in a *carrier* (see
``dtypes.CARRIERS``): the float types as their bit patterns in ``tf.uint8``,
the integer types as their values in ``tf.int8`` / ``tf.uint8``. This module
converts between carriers and ordinary TF tensors with integer and float64
ops, by the ONNX specification's rules rather than any one library's release
(ml_dtypes changed its float -> int4 cast in 0.7; onnx's reference Cast follows
whichever ml_dtypes is installed):

- float8 (Cast's operator text, saturate=1 and saturate=0 tables): round to
  nearest even; saturate clamps out-of-range values and infinities to the
  largest finite value; otherwise an fnuz overflow is the single NaN (0x80).
- FLOAT4E2M1 (docs/technical/float4.md): round to nearest even within
  [-6, 6], larger magnitudes and infinities saturate, NaN gives 6, +-0 kept.
- INT4/UINT4 and INT2/UINT2 (docs/technical/int4.md, int2.md): reals round to
  the nearest integer, ties to even, then saturate to the type's range (the
  rule of onnx's first reference, ``np.rint(np.clip(x, lo, hi))``); NaN gives 0,
  a choice of ours, since the spec leaves it undefined. Integers keep their low
  bits (Cast: "fixed point to fixed point: discard higher bits", as
  onnxruntime does).
- FLOAT8E8M0: ONNX's own rounding rules (``onnx.numpy_helper.to_float8e8m0``).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
from onnx import TensorProto


@dataclasses.dataclass(frozen=True)
class MiniFloat:
    """A small binary float format: sign, ``exponent_bits``, ``mantissa_bits``.

    ``fnuz``: no infinities, no negative zero, and the one NaN is the code with
    only the sign bit set (0x80). Without it the format has no NaN or infinity
    at all (FLOAT4E2M1), and every overflow saturates.
    """

    exponent_bits: int
    mantissa_bits: int
    bias: int
    fnuz: bool

    @property
    def min_exponent(self) -> int:
        """The exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def max_exponent(self) -> int:
        """The exponent of the largest finite number (every exponent code is finite here)."""
        return (1 << self.exponent_bits) - 1 - self.bias

    @property
    def max_finite(self) -> float:
        top_significand = 2.0 - 2.0 ** -self.mantissa_bits
        return top_significand * 2.0 ** self.max_exponent

    @property
    def sign_bit(self) -> int:
        return 1 << (self.exponent_bits + self.mantissa_bits)

    @property
    def largest_code(self) -> int:
        """The code of the largest finite value (every code below the sign bit is finite here)."""
        return self.sign_bit - 1


FLOAT8E4M3FNUZ = MiniFloat(exponent_bits=4, mantissa_bits=3, bias=8, fnuz=True)
FLOAT8E5M2FNUZ = MiniFloat(exponent_bits=5, mantissa_bits=2, bias=16, fnuz=True)
FLOAT4E2M1 = MiniFloat(exponent_bits=2, mantissa_bits=1, bias=1, fnuz=False)
_FNUZ_NAN = 0x80


def _float64_exponent(x: tf.Tensor) -> tf.Tensor:
    """floor(log2(|x|)) of a float64 tensor as int64, read from its exponent field
    (-1023 for zero and subnormals, 1024 for inf and NaN)."""
    bits = tf.bitcast(x, tf.int64)
    return tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 52), 0x7FF) - 1023


def _power_of_two(exponent: tf.Tensor) -> tf.Tensor:
    """2**exponent as float64 for int64 exponents in [-1022, 1023], built exactly from bits."""
    return tf.bitcast(tf.bitwise.left_shift(exponent + 1023, 52), tf.float64)


def encode_minifloat(x: tf.Tensor, spec: MiniFloat, saturate: bool) -> tf.Tensor:
    """Round a real tensor to ``spec`` (nearest, ties to even); returns the codes as uint8.

    Every TF float type widens to float64 exactly, so there is one rounding.
    ``saturate`` clamps out-of-range values (infinities too) to the largest
    finite value, as ONNX's saturating Cast does; otherwise an fnuz overflow is
    NaN. FLOAT4E2M1 always saturates and, by its table in ONNX's float4.md,
    maps NaN of either sign to 6 (ml_dtypes gives a zero of the opposite sign).
    """
    x = tf.cast(x, tf.float64)
    negative = tf.bitcast(x, tf.int64) < 0  # the sign bit, so -0.0 counts as negative
    magnitude = tf.abs(x)
    if saturate or not spec.fnuz:
        magnitude = tf.minimum(magnitude, spec.max_finite)  # NaN stays NaN
    # Quantise at the spacing of the binade (subnormal range: of the smallest normal one);
    # rint rounds half to even. Dividing by a power of two is exact.
    exponent = tf.clip_by_value(_float64_exponent(magnitude), spec.min_exponent, spec.max_exponent + 1)
    spacing = _power_of_two(exponent - spec.mantissa_bits)
    rounded = tf.math.rint(magnitude / spacing) * spacing
    overflow = rounded > spec.max_finite
    # Code of a representable magnitude: exponent field above the subnormal one, then
    # the significand in units of the binade's spacing (its leading 1 bumps the field).
    exponent = tf.maximum(_float64_exponent(rounded), spec.min_exponent)
    significand = rounded / _power_of_two(exponent - spec.mantissa_bits)
    field = tf.bitwise.left_shift(exponent + spec.bias - 1, spec.mantissa_bits)
    code = field + tf.cast(tf.where(tf.math.is_finite(significand), significand, 0.0), tf.int64)
    nan = tf.math.is_nan(x)
    code = tf.where(nan, tf.constant(0, tf.int64), code)  # a NaN's magnitude bits mean nothing
    if spec.fnuz:
        code = tf.where(tf.logical_and(negative, code != 0), code + spec.sign_bit, code)  # no -0
        code = tf.where(tf.logical_or(nan, overflow), tf.constant(_FNUZ_NAN, tf.int64), code)
    else:
        code = tf.where(negative, code + spec.sign_bit, code)
        code = tf.where(nan, tf.constant(spec.largest_code, tf.int64), code)
    return tf.cast(code, tf.uint8)


def decode_minifloat(codes: tf.Tensor, spec: MiniFloat) -> tf.Tensor:
    """The float32 values of uint8 codes of ``spec`` (every one is exact in float32)."""
    codes = tf.cast(codes, tf.int64)
    mantissa = tf.bitwise.bitwise_and(codes, (1 << spec.mantissa_bits) - 1)
    field = tf.bitwise.bitwise_and(tf.bitwise.right_shift(codes, spec.mantissa_bits),
                                   (1 << spec.exponent_bits) - 1)
    normal = field > 0
    significand = mantissa + tf.where(normal, tf.constant(1 << spec.mantissa_bits, tf.int64), 0)
    exponent = tf.maximum(field, 1) - spec.bias - spec.mantissa_bits
    magnitude = tf.cast(significand, tf.float64) * _power_of_two(exponent)
    negative = tf.bitwise.bitwise_and(codes, spec.sign_bit) != 0
    value = tf.where(negative, -magnitude, magnitude)
    if spec.fnuz:
        # ml_dtypes decodes the fnuz NaN with the sign bit set (its code is "negative zero").
        negative_nan = tf.bitcast(tf.constant(-(1 << 51), tf.int64), tf.float64)
        value = tf.where(codes == _FNUZ_NAN, negative_nan, value)
    return tf.cast(value, tf.float32)


def encode_e8m0(x: tf.Tensor, saturate: bool, round_mode: str) -> tf.Tensor:
    """FLOAT8E8M0 codes (a biased power of two, 0xFF = NaN) as uint8, by ONNX's rule.

    ONNX's reference rounds on the float32 bits, ignoring the sign: the code is
    the float32 exponent field, raised by one when ``round_mode`` says so ("up":
    any fraction bit; "nearest": guard bit set and round, sticky or a non-zero
    exponent; "down": never), except at 0xFE when saturating. NaN and infinity
    give 0xFF.
    """
    bits = tf.cast(tf.bitcast(tf.cast(x, tf.float32), tf.uint32), tf.int64)
    field = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 23), 0xFF)

    def bit_set(mask: int) -> tf.Tensor:
        return tf.bitwise.bitwise_and(bits, mask) != 0

    if round_mode == "up":
        raise_it = bit_set(0x7FFFFF)
    elif round_mode == "nearest":
        rest = tf.logical_or(tf.logical_or(bit_set(0x200000), bit_set(0x1FFFFF)), field > 0)
        raise_it = tf.logical_and(bit_set(0x400000), rest)
    elif round_mode == "down":
        raise_it = tf.zeros_like(field, tf.bool)
    else:
        raise ValueError(f"Cast round_mode {round_mode!r}: ONNX defines up, down and nearest")
    if saturate:
        raise_it = tf.logical_and(raise_it, field != 0xFE)
    code = tf.where(field == 0xFF, field, field + tf.cast(raise_it, tf.int64))
    return tf.cast(code, tf.uint8)


def decode_e8m0(codes: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Values of FLOAT8E8M0 codes, 2**(code - 127) and NaN for 0xFF, as ``dtype``.

    2**-127 is a float32 subnormal, which TF's CPU arithmetic flushes to zero, so
    the float32 values are assembled from their bits (code 0: the subnormal's
    single bit) rather than computed.
    """
    codes = tf.cast(codes, tf.int32)
    if dtype == tf.float64:
        value = _power_of_two(tf.cast(codes, tf.int64) - 127)
        return tf.where(codes == 0xFF, tf.constant(float("nan"), tf.float64), value)
    bits = tf.where(codes == 0, 1 << 22, tf.bitwise.left_shift(codes, 23))
    bits = tf.where(codes == 0xFF, 0x7FC00000, bits)
    return tf.cast(tf.bitcast(bits, tf.float32), dtype)


def to_narrow_integer(x: tf.Tensor, bits: int, signed: bool) -> tf.Tensor:
    """Values of a ``bits``-wide integer type, by ONNX's rules; int8 values if ``signed``,
    else uint8.

    Reals round to the nearest integer, ties to even, and saturate to the type's
    range, infinities included (int4.md / int2.md: "rounding to the nearest-integer
    (with ties to even) ... and truncating"; onnx's first reference helper,
    ``float32_to_4bit_unpacked``, was ``np.rint(np.clip(x, lo, hi))``). NaN gives 0:
    the spec leaves it undefined. Integers and booleans keep their low ``bits`` bits,
    two's complement (Cast: "fixed point to fixed point: when OOR, discard higher bits
    and reinterpret").
    """
    low_value, high_value = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if x.dtype.is_floating:
        wide = tf.cast(x, tf.float64)  # exact for every TF float type, so rint sees the true value
        clipped = tf.minimum(tf.maximum(wide, float(low_value)), float(high_value))
        value = tf.where(tf.math.is_nan(wide), tf.constant(0.0, tf.float64), tf.math.rint(clipped))
        return tf.cast(value, tf.int8 if signed else tf.uint8)
    low = tf.bitwise.bitwise_and(tf.cast(x, tf.int64), (1 << bits) - 1)
    if signed:
        low = tf.where(low >= 1 << (bits - 1), low - (1 << bits), low)
    return tf.cast(low, tf.int8 if signed else tf.uint8)


_MINIFLOATS = {TensorProto.FLOAT8E4M3FNUZ: FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2FNUZ: FLOAT8E5M2FNUZ,
               TensorProto.FLOAT4E2M1: FLOAT4E2M1}
# ONNX type -> (bits, signed) of the narrow integer types.
_NARROW_INTEGERS = {TensorProto.INT4: (4, True), TensorProto.UINT4: (4, False),
                    TensorProto.INT2: (2, True), TensorProto.UINT2: (2, False)}


def encode(x: tf.Tensor, elem_type: int, saturate: bool = True, round_mode: str = "up") -> tf.Tensor:
    """Cast an ordinary tensor to carried ONNX type ``elem_type``; returns the carrier.

    ``saturate`` (Cast's attribute) applies to the float8 types only, as in ONNX;
    ``round_mode`` to FLOAT8E8M0 only.
    """
    if elem_type in _NARROW_INTEGERS:
        if x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool:
            return to_narrow_integer(x, *_NARROW_INTEGERS[elem_type])
        raise ValueError(f"no cast from {x.dtype.name} to a narrow integer type")
    if not (x.dtype.is_floating or x.dtype.is_integer or x.dtype == tf.bool):
        raise ValueError(f"no cast from {x.dtype.name} to a narrow float type")
    if x.dtype.is_integer or x.dtype == tf.bool:
        x = tf.cast(x, tf.float64)
    if elem_type == TensorProto.FLOAT8E8M0:
        return encode_e8m0(x, saturate, round_mode)
    return encode_minifloat(x, _MINIFLOATS[elem_type], saturate)


def decode(carrier: tf.Tensor, elem_type: int, wide: bool = False) -> tf.Tensor:
    """The values a carrier of ONNX type ``elem_type`` holds, as an ordinary tensor:
    float32 for the float types (float64 if ``wide``), int8/uint8 for the integers."""
    if elem_type in _NARROW_INTEGERS:
        return carrier
    if elem_type == TensorProto.FLOAT8E8M0:
        return decode_e8m0(carrier, tf.float64 if wide else tf.float32)
    return decode_minifloat(carrier, _MINIFLOATS[elem_type])
