"""The ONNX specification's rules for casts to narrow types, written out in numpy: the
tests' oracle, independent of ml_dtypes (whose casts changed between releases) and of
onnx's reference evaluator (which calls ml_dtypes for these casts).

Sources, in the onnx repository:
- the Cast operator's text (``onnx.defs.get_schema("Cast").doc``): the float8 tables for
  saturate=1 and saturate=0, round to nearest even; "fixed point to fixed point: when
  OOR, discard higher bits and reinterpret";
- docs/docsgen/source/technical/float8.md and float4.md: each format's bias, codes and
  value formula; float4.md's Cast table (NaN -> 6, +-Inf -> +-6, +-0 kept);
- docs/docsgen/source/technical/int4.md and int2.md, "Cast": rounding to the nearest
  integer with ties to even, then truncating to the range; onnx 1.17's reference helper
  ``onnx.subbyte.float32_to_4bit_unpacked`` was ``np.rint(np.clip(x, lo, hi))``. The spec
  leaves NaN undefined; the project defines it as 0.
- FLOAT8E8M0: Cast's round_mode text ("up": away from zero, "down": toward zero,
  "nearest": ties up) on the float32 exponent field, as onnx's
  ``numpy_helper.to_float8e8m0`` computes it from onnx 1.22 (1.18-1.21 test only some of
  the fraction bits for "up", so 2.5 gives 2 there instead of 4).
"""

from __future__ import annotations

import dataclasses

import numpy as np

INTEGER_RANGES = {(4, True): (-8, 7), (4, False): (0, 15), (2, True): (-2, 1), (2, False): (0, 3)}


def integer_from_real(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """int4.md / int2.md: round half to even and saturate; NaN -> 0. Values as int64."""
    low, high = INTEGER_RANGES[bits, signed]
    with np.errstate(invalid="ignore"):
        rounded = np.rint(np.clip(np.asarray(x, np.float64), low, high))
    return np.where(np.isnan(rounded), 0, rounded).astype(np.int64)


def integer_from_integer(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Cast, fixed point to fixed point: keep the low ``bits`` bits, two's complement."""
    low = np.asarray(x).astype(np.int64) & ((1 << bits) - 1)  # uint64 wraps into int64 keeping its bits
    return np.where(signed & (low >= 1 << (bits - 1)), low - (1 << bits), low)


@dataclasses.dataclass(frozen=True)
class Format:
    """A float format as the spec's tables describe it. ``finite`` positive codes
    (0 .. finite-1) are finite values in increasing order; ``inf`` is the positive code of
    infinity and every positive code from ``nan`` up is a NaN (None when the format has
    none); ``unsigned_zero``: FNUZ, whose only NaN is the negative-zero code."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    finite: int
    nan: int | None
    inf: int | None = None
    unsigned_zero: bool = False

    @property
    def sign_bit(self) -> int:
        return 1 << (self.exponent_bits + self.mantissa_bits)

    def magnitude(self, codes: np.ndarray) -> np.ndarray:
        """The spec's value formula for positive codes, as float64 (exact):
        exponent != 0: 2**(e - bias) * (1 + m / 2**M); exponent == 0: 2**(1 - bias) * m / 2**M."""
        codes = np.asarray(codes, np.int64)
        exponent = codes >> self.mantissa_bits
        mantissa = (codes & ((1 << self.mantissa_bits) - 1)) / float(1 << self.mantissa_bits)
        normal = np.ldexp(1.0 + mantissa, (exponent - self.bias).astype(np.int32))
        subnormal = np.ldexp(mantissa, 1 - self.bias)
        return np.where(exponent > 0, normal, subnormal)


E4M3FN = Format("FLOAT8E4M3FN", 4, 3, 7, finite=0x7F, nan=0x7F)
E5M2 = Format("FLOAT8E5M2", 5, 2, 15, finite=0x7C, nan=0x7D, inf=0x7C)
E4M3FNUZ = Format("FLOAT8E4M3FNUZ", 4, 3, 8, finite=0x80, nan=None, unsigned_zero=True)
E5M2FNUZ = Format("FLOAT8E5M2FNUZ", 5, 2, 16, finite=0x80, nan=None, unsigned_zero=True)
E2M1 = Format("FLOAT4E2M1", 2, 1, 1, finite=0x8, nan=None)
FNUZ_NAN = 0x80
FLOAT4_NAN_CODE = 0x07  # float4.md: NaN -> 6


def encode(x: np.ndarray, fmt: Format, saturate: bool = True) -> np.ndarray:
    """Codes (uint8) of ``x`` cast to ``fmt`` by the spec's tables.

    The nearest value, ties to the even code; "[x] > FLT_MAX" is judged with the next
    code the value formula gives above the largest finite one, as rounding at the
    mantissa width with an unbounded exponent would. Saturating (and FLOAT4E2M1, always):
    beyond the range and +-Inf give +-FLT_MAX; otherwise NaN (E4M3FN, FNUZ) or +-Inf (E5M2).
    """
    with np.errstate(invalid="ignore"):  # NaN payloads and infinities take their own rows below
        x = np.asarray(x, np.float64)
        magnitude = np.abs(x)
        ladder = fmt.magnitude(np.arange(fmt.finite + 1))  # the finite values and the first one beyond
        above = np.clip(np.searchsorted(ladder, magnitude), 1, fmt.finite)
        below = above - 1
        distance_below = magnitude - ladder[below]
        distance_above = ladder[above] - magnitude
    take_above = (distance_above < distance_below) | ((distance_above == distance_below) & (above % 2 == 0))
    code = np.where(take_above, above, below)
    overflow = (code == fmt.finite) | (magnitude > ladder[-1])  # includes +-Inf
    negative = np.signbit(x)
    always_saturates = fmt is E2M1
    if saturate or always_saturates:
        code = np.where(overflow, fmt.finite - 1, code)
    elif fmt.unsigned_zero:
        code = np.where(overflow, FNUZ_NAN, code)
    else:
        code = np.where(overflow, fmt.inf if fmt.inf is not None else fmt.nan, code)
    signed = negative & ~(fmt.unsigned_zero & (code == 0)) & (code != FNUZ_NAN)
    code = np.where(signed, code | fmt.sign_bit, code)
    nan = np.isnan(x)
    if fmt.unsigned_zero:
        code = np.where(nan, FNUZ_NAN, code)
    elif fmt is E2M1:
        code = np.where(nan, FLOAT4_NAN_CODE, code)
    else:
        code = np.where(nan, fmt.nan | np.where(negative, fmt.sign_bit, 0), code)
    return code.astype(np.uint8)


def decode(codes: np.ndarray, fmt: Format) -> np.ndarray:
    """float64 values of ``fmt`` codes, from the spec's value formula (NaN and Inf codes too)."""
    codes = np.asarray(codes, np.int64)
    positive = codes & (fmt.sign_bit - 1)
    value = fmt.magnitude(positive)
    if fmt.inf is not None:
        value = np.where(positive == fmt.inf, np.inf, value)
    if fmt.nan is not None:
        value = np.where(positive >= fmt.nan, np.nan, value)
    value = np.where(codes & fmt.sign_bit, -value, value)
    if fmt.unsigned_zero:
        value = np.where(codes == FNUZ_NAN, np.nan, value)
    return value


def encode_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """FLOAT8E8M0 codes (uint8): the float32 exponent field, raised by one when the round
    mode says so (up: any fraction bit; nearest: the half bit, and for normal numbers that
    is enough, ties going up; down: never), except at 0xFE when saturating; NaN and
    +-Inf give 0xFF. The sign is ignored (the spec leaves negative inputs undefined)."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.int64)
    field = (bits >> 23) & 0xFF
    fraction = bits & 0x7FFFFF
    if round_mode == "up":
        raise_it = fraction != 0
    elif round_mode == "nearest":
        raise_it = ((bits & 0x400000) != 0) & (((bits & 0x3FFFFF) != 0) | (field > 0))
    else:
        raise_it = np.zeros(field.shape, bool)
    if saturate:
        raise_it &= field != 0xFE
    return np.where(field == 0xFF, 0xFF, field + raise_it).astype(np.uint8)


def same_values(got: np.ndarray, want: np.ndarray) -> None:
    """Assert equal values, NaN where NaN is expected and the sign of every zero."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_array_equal(got[finite], want[finite])
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(want[finite]))
