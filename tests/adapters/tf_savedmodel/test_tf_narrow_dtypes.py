"""The carrier codec for ONNX types TF cannot compute with, bit for bit against the spec.

Expected values come from ``onnx_cast_spec``: the ONNX specification's rules written out
in numpy (FNUZ float8, FLOAT4E2M1 and the 2/4-bit integers), and onnx's own
``to_float8e8m0`` for FLOAT8E8M0. ml_dtypes is not the reference: its float -> int4 cast
changed in 0.7, and it disagrees with the spec on rounding, range and float4's NaN; the
last tests name each difference. Every code is decoded, and encoding is checked on every
float16 value, random float32 values and bit patterns, exact ties and their neighbours.
"""

from __future__ import annotations

import numpy as np
import onnx_cast_spec as spec
import pytest

tf = pytest.importorskip("tensorflow")
ml_dtypes = pytest.importorskip("ml_dtypes")
onnx = pytest.importorskip("onnx")
from portability.adapters.tf_savedmodel.ops import narrow_dtypes

RNG = np.random.default_rng(12)
MINIFLOATS = [
    pytest.param(narrow_dtypes.FLOAT8E4M3FNUZ, spec.E4M3FNUZ, id="e4m3fnuz"),
    pytest.param(narrow_dtypes.FLOAT8E5M2FNUZ, spec.E5M2FNUZ, id="e5m2fnuz"),
    pytest.param(narrow_dtypes.FLOAT4E2M1, spec.E2M1, id="float4e2m1"),
]


def _probe_values(fmt: spec.Format) -> np.ndarray:
    """float32 values that stress rounding: every float16, wide-range random values,
    random bit patterns (float32 subnormals, NaN payloads), the format's values,
    the exact midpoints between neighbours and the float32 values either side."""
    finite = spec.decode(np.arange(fmt.finite), fmt).astype(np.float32)
    ties = ((finite[:-1].astype(np.float64) + finite[1:]) / 2).astype(np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    with np.errstate(over="ignore"):
        beyond = finite[-1] * np.array([1.01, 1.5, 2, 1e3, 1e30], np.float32)
    values = np.concatenate([
        np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32),
        (RNG.standard_normal(20_000) * 2.0 ** RNG.integers(-40, 40, 20_000)).astype(np.float32),
        RNG.integers(0, 1 << 32, 20_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
        finite, ties, near, beyond,
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45], np.float32),
    ])
    return np.concatenate([values, -values])


@pytest.mark.parametrize("codec,fmt", MINIFLOATS)
def test_every_code_decodes_to_the_spec_value(codec, fmt):
    codes = np.arange(2 * fmt.sign_bit, dtype=np.uint8)
    got = narrow_dtypes.decode_minifloat(tf.constant(codes), codec).numpy()
    assert got.dtype == np.float32
    spec.same_values(got, spec.decode(codes, fmt))


@pytest.mark.parametrize("codec,fmt", MINIFLOATS)
@pytest.mark.parametrize("saturate", [True, False])
@pytest.mark.parametrize("source", [np.float32, np.float16, np.float64])
def test_encoding_rounds_by_the_spec(codec, fmt, saturate, source):
    """Nearest, ties to even; saturate=1 clamps to +-max (infinities too), saturate=0 gives
    the FNUZ NaN beyond the range; FLOAT4E2M1 always saturates and maps NaN to 6."""
    with np.errstate(invalid="ignore", over="ignore"):
        values = _probe_values(fmt).astype(source)
    got = narrow_dtypes.encode_minifloat(tf.constant(values), codec, saturate=saturate).numpy()
    want = spec.encode(values, fmt, saturate)
    mismatch = np.nonzero(got != want)[0]
    assert not mismatch.size, [(values[i], got[i], want[i]) for i in mismatch[:5]]


def test_fnuz_overflow_without_saturation_is_the_single_nan():
    values = np.array([240.0, 247.9, 248.0, 1e6, np.inf, -np.inf, -0.0, -1e-9], np.float32)
    got = narrow_dtypes.encode_minifloat(tf.constant(values), narrow_dtypes.FLOAT8E4M3FNUZ, False).numpy()
    np.testing.assert_array_equal(got, [0x7F, 0x7F, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00])


def test_float4_follows_its_cast_table():
    """float4.md: -6 <= x <= 6 rounds to nearest even, +-0 kept, beyond saturates, NaN -> 6."""
    x = np.array([0.25, 0.75, 2.5, 5.0, 7.0, -7.0, np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0], np.float32)
    got = narrow_dtypes.encode_minifloat(tf.constant(x), narrow_dtypes.FLOAT4E2M1, True).numpy()
    np.testing.assert_array_equal(got, [0x0, 0x2, 0x4, 0x6, 0x7, 0xF, 0x7, 0xF, 0x7, 0x7, 0x0, 0x8])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16, tf.bfloat16])
def test_every_e8m0_code_decodes_to_its_power_of_two(dtype):
    codes = np.arange(256, dtype=np.uint8)
    got = narrow_dtypes.decode_e8m0(tf.constant(codes), dtype).numpy().astype(np.float64)
    want = np.where(codes == 0xFF, np.nan, np.ldexp(1.0, codes.astype(np.int32) - 127))
    if dtype != tf.float64:  # exact in float32; float16 and bfloat16 round it like any float32
        want = tf.cast(tf.constant(want.astype(np.float32)), dtype).numpy().astype(np.float64)
    spec.same_values(got, want)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [True, False])
def test_e8m0_encoding_follows_onnx_rounding_modes(round_mode, saturate):
    values = _probe_values(spec.E4M3FN)
    values = np.concatenate([values, np.array([2.0 ** k for k in range(-127, 128)], np.float32)])
    got = narrow_dtypes.encode_e8m0(tf.constant(values), saturate, round_mode).numpy()
    np.testing.assert_array_equal(got, spec.encode_e8m0(values, saturate, round_mode))


def test_e8m0_rounds_up_on_every_fraction_bit_where_onnx_before_1_22_did_not():
    """2.5 = 1.25 * 2**1: "up" gives 4 (code 129). onnx 1.18-1.21's to_float8e8m0 masks the
    fraction with 0x4FFFFF, misses bits 0x300000 and gives 2 (code 128)."""
    values = np.array([2.5, 3.0, 1.25, 1.5], np.float32)
    want = [129, 129, 128, 128]
    np.testing.assert_array_equal(spec.encode_e8m0(values, True, "up"), want)
    np.testing.assert_array_equal(narrow_dtypes.encode_e8m0(tf.constant(values), True, "up").numpy(), want)
    if not hasattr(onnx.numpy_helper, "to_float8e8m0"):
        pytest.skip(f"onnx {onnx.__version__} has no FLOAT8E8M0")
    theirs = onnx.numpy_helper.to_float8e8m0(values, True, "up").view(np.uint8)
    assert theirs.tolist() in (want, [128, 129, 127, 128]), theirs


def test_e8m0_refuses_an_unknown_round_mode():
    with pytest.raises(ValueError, match="round_mode 'odd'"):
        narrow_dtypes.encode_e8m0(tf.constant([1.0]), True, "odd")


NARROW_INTEGERS = [pytest.param(4, True, id="int4"), pytest.param(4, False, id="uint4"),
                   pytest.param(2, True, id="int2"), pytest.param(2, False, id="uint2")]


@pytest.mark.parametrize("bits,signed", NARROW_INTEGERS)
@pytest.mark.parametrize("source", [np.float32, np.float16, np.float64])
def test_reals_round_half_to_even_and_saturate(bits, signed, source):
    edges = [2.0 ** 31 - 1, 2.0 ** 31, -2.0 ** 31, -2.0 ** 31 - 1, 3e9 + 5, 2.0 ** 40 + 3, 2.0 ** 24 + 2]
    values = np.concatenate([np.arange(-40, 40, 0.25), RNG.standard_normal(5000) * 1e4, edges,
                             np.nextafter(np.arange(-20.5, 20), np.inf), np.nextafter(np.arange(-20.5, 20), -np.inf),
                             [np.nan, -np.nan, np.inf, -np.inf, -0.0, 1e300, -1e300]])
    with np.errstate(invalid="ignore", over="ignore"):
        values = values.astype(source)
    got = narrow_dtypes.to_narrow_integer(tf.constant(values), bits, signed).numpy()
    assert got.dtype == (np.int8 if signed else np.uint8)
    np.testing.assert_array_equal(got.astype(np.int64), spec.integer_from_real(values, bits, signed))


@pytest.mark.parametrize("bits,signed", NARROW_INTEGERS)
@pytest.mark.parametrize("source", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_integers_keep_their_low_bits(bits, signed, source):
    info = np.iinfo(source)
    values = np.concatenate([RNG.integers(info.min, info.max, 2000, dtype=source, endpoint=True),
                             np.array([info.min, info.max, 0], source)])
    got = narrow_dtypes.to_narrow_integer(tf.constant(values), bits, signed).numpy()
    np.testing.assert_array_equal(got.astype(np.int64), spec.integer_from_integer(values, bits, signed))


def test_booleans_become_zero_and_one():
    got = narrow_dtypes.encode(tf.constant([True, False]), onnx.TensorProto.INT4).numpy()
    np.testing.assert_array_equal(got, [1, 0])


# Where ml_dtypes and the spec part: (ml_dtypes type, input, the values ml_dtypes has given
# (0.4-0.6, then 0.7), the spec's value). The codec must give the spec's.
ML_DTYPES_DIFFERENCES = [
    pytest.param("int4", 9.0, (-7, 0), 7, id="int4-9.0-out-of-range"),
    pytest.param("int4", -9.0, (7, 0), -8, id="int4--9.0-out-of-range"),
    pytest.param("int4", 1.5, (1,), 2, id="int4-1.5-tie-to-even"),
    pytest.param("int4", 6.7, (6,), 7, id="int4-6.7-nearest-not-truncated"),
    pytest.param("int4", np.inf, (0,), 7, id="int4-inf-saturates"),
    pytest.param("uint4", 13.5, (13,), 14, id="uint4-13.5-tie-to-even"),
    pytest.param("uint4", 16.0, (0,), 15, id="uint4-16.0-out-of-range"),
    pytest.param("int2", 2.0, (-2, 0), 1, id="int2-2.0-out-of-range"),
    pytest.param("uint2", 1.5, (1,), 2, id="uint2-1.5-tie-to-even"),
]


@pytest.mark.parametrize("name,x,ml_values,spec_value", ML_DTYPES_DIFFERENCES)
def test_ml_dtypes_integer_casts_differ_from_the_spec_and_the_codec_follows_the_spec(name, x, ml_values, spec_value):
    assert spec_value not in ml_values
    bits, signed = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}[name]
    assert int(spec.integer_from_real(np.array([x]), bits, signed)[0]) == spec_value
    got = narrow_dtypes.to_narrow_integer(tf.constant([x], tf.float32), bits, signed).numpy()
    assert int(got[0]) == spec_value
    if not hasattr(ml_dtypes, name):
        pytest.skip(f"ml_dtypes {ml_dtypes.__version__} has no {name}")
    with np.errstate(invalid="ignore", over="ignore"):
        theirs = int(np.array([x], np.float32).astype(getattr(ml_dtypes, name)).astype(np.int64)[0])
    assert theirs in ml_values, f"ml_dtypes {ml_dtypes.__version__} gives {theirs} for {x} -> {name}"


def test_ml_dtypes_float4_nan_differs_from_the_spec_and_the_codec_follows_the_spec():
    """float4.md: NaN -> 6 (code 0x7); ml_dtypes gives a zero of the opposite sign."""
    nans = np.array([np.nan, -np.nan], np.float32)
    np.testing.assert_array_equal(spec.encode(nans, spec.E2M1), [0x7, 0x7])
    got = narrow_dtypes.encode_minifloat(tf.constant(nans), narrow_dtypes.FLOAT4E2M1, True).numpy()
    np.testing.assert_array_equal(got, [0x7, 0x7])
    if not hasattr(ml_dtypes, "float4_e2m1fn"):
        pytest.skip(f"ml_dtypes {ml_dtypes.__version__} has no float4_e2m1fn")
    with np.errstate(invalid="ignore"):
        theirs = nans.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
    np.testing.assert_array_equal(theirs, [0x8, 0x0])
