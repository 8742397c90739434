"""The carrier codec for ONNX types TF cannot compute with, bit for bit against the references.

ml_dtypes defines the FNUZ float8s, FLOAT4E2M1 and the narrow integers (ONNX's
reference Cast is ml_dtypes' astype); ONNX's own ``to_float8e8m0`` defines casts
to FLOAT8E8M0. Every code is decoded, and encoding is checked on every float16
value, random float32 values and bit patterns, exact ties and their neighbours.
"""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
ml_dtypes = pytest.importorskip("ml_dtypes")
onnx = pytest.importorskip("onnx")
from portability.adapters.tf_savedmodel.ops import narrow_dtypes

RNG = np.random.default_rng(12)
MINIFLOATS = [
    pytest.param(narrow_dtypes.FLOAT8E4M3FNUZ, ml_dtypes.float8_e4m3fnuz, 256, id="e4m3fnuz"),
    pytest.param(narrow_dtypes.FLOAT8E5M2FNUZ, ml_dtypes.float8_e5m2fnuz, 256, id="e5m2fnuz"),
    pytest.param(narrow_dtypes.FLOAT4E2M1, ml_dtypes.float4_e2m1fn, 16, id="float4e2m1"),
]


def _same_floats(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit for bit: the sign of zero and of NaN counts."""
    assert got.dtype == want.dtype
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    np.testing.assert_array_equal(got.view(width), want.view(width))


def _probe_values(codes_as_float: np.ndarray) -> np.ndarray:
    """float32 values that stress rounding: every float16, wide-range random values,
    random bit patterns (float32 subnormals, NaN payloads), the format's values,
    the exact midpoints between neighbours and the float32 values either side."""
    finite = np.unique(codes_as_float[np.isfinite(codes_as_float)].astype(np.float32))
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


@pytest.mark.parametrize("spec,dtype,count", MINIFLOATS)
def test_every_code_decodes_to_ml_dtypes_value(spec, dtype, count):
    codes = np.arange(count, dtype=np.uint8)
    got = narrow_dtypes.decode_minifloat(tf.constant(codes), spec).numpy()
    _same_floats(got, codes.view(dtype).astype(np.float32))


@pytest.mark.parametrize("spec,dtype,count", MINIFLOATS)
@pytest.mark.parametrize("source", [np.float32, np.float16, np.float64])
def test_encoding_rounds_like_ml_dtypes(spec, dtype, count, source):
    values = _probe_values(np.arange(count, dtype=np.uint8).view(dtype).astype(np.float32))
    with np.errstate(invalid="ignore", over="ignore"):
        values = values.astype(source)
        want = values.astype(dtype).view(np.uint8)
    got = narrow_dtypes.encode_minifloat(tf.constant(values), spec, saturate=False).numpy()
    mismatch = np.nonzero(got != want)[0]
    assert not mismatch.size, [(values[i], got[i], want[i]) for i in mismatch[:5]]


@pytest.mark.parametrize("spec,dtype,count", MINIFLOATS)
def test_saturating_encoding_clamps_to_the_largest_finite_value_first(spec, dtype, count):
    """ONNX's saturating Cast: clip to +-max (infinities too, NaN stays NaN), then round."""
    values = _probe_values(np.arange(count, dtype=np.uint8).view(dtype).astype(np.float32))
    top = float(ml_dtypes.finfo(dtype).max)
    with np.errstate(invalid="ignore"):
        want = np.clip(values, -top, top).astype(dtype).view(np.uint8)
    got = narrow_dtypes.encode_minifloat(tf.constant(values), spec, saturate=True).numpy()
    np.testing.assert_array_equal(got, want)


def test_fnuz_overflow_without_saturation_is_the_single_nan():
    values = np.array([240.0, 247.9, 248.0, 1e6, np.inf, -np.inf, -0.0, -1e-9], np.float32)
    got = narrow_dtypes.encode_minifloat(tf.constant(values), narrow_dtypes.FLOAT8E4M3FNUZ, False).numpy()
    np.testing.assert_array_equal(got, [0x7F, 0x7F, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00])


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64, tf.float16, tf.bfloat16])
def test_every_e8m0_code_decodes_to_ml_dtypes_value(dtype):
    codes = np.arange(256, dtype=np.uint8)
    got = narrow_dtypes.decode_e8m0(tf.constant(codes), dtype).numpy()
    _same_floats(got, codes.view(ml_dtypes.float8_e8m0fnu).astype(dtype.as_numpy_dtype))


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [True, False])
def test_e8m0_encoding_follows_onnx_rounding_modes(round_mode, saturate):
    values = _probe_values(np.array([2.0 ** k for k in range(-127, 128)], np.float32))
    want = onnx.numpy_helper.to_float8e8m0(values, saturate, round_mode).view(np.uint8)
    got = narrow_dtypes.encode_e8m0(tf.constant(values), saturate, round_mode).numpy()
    np.testing.assert_array_equal(got, want)


def test_e8m0_refuses_an_unknown_round_mode():
    with pytest.raises(ValueError, match="round_mode 'odd'"):
        narrow_dtypes.encode_e8m0(tf.constant([1.0]), True, "odd")


NARROW_INTEGERS = [(4, True, ml_dtypes.int4), (4, False, ml_dtypes.uint4),
                   (2, True, ml_dtypes.int2), (2, False, ml_dtypes.uint2)]


@pytest.mark.parametrize("bits,signed,dtype", NARROW_INTEGERS)
@pytest.mark.parametrize("source", [np.float32, np.float16, np.float64])
def test_reals_truncate_and_wrap_like_ml_dtypes(bits, signed, dtype, source):
    edges = [2.0 ** 31 - 1, 2.0 ** 31, -2.0 ** 31, -2.0 ** 31 - 1, 3e9 + 5, 2.0 ** 40 + 3, 2.0 ** 24 + 2]
    values = np.concatenate([np.arange(-40, 40, 0.25), RNG.standard_normal(5000) * 1e4, edges,
                             [np.nan, np.inf, -np.inf, -0.0, 1e300]])
    with np.errstate(invalid="ignore", over="ignore"):
        values = values.astype(source)
        want = values.astype(dtype).astype(np.int8)
    got = narrow_dtypes.wrap_integer(tf.constant(values), bits, signed).numpy()
    assert got.dtype == (np.int8 if signed else np.uint8)
    np.testing.assert_array_equal(got.astype(np.int8), want)


@pytest.mark.parametrize("bits,signed,dtype", NARROW_INTEGERS)
@pytest.mark.parametrize("source", [np.int8, np.uint8, np.int32, np.int64, np.uint64])
def test_integers_keep_their_low_bits_like_ml_dtypes(bits, signed, dtype, source):
    info = np.iinfo(source)
    values = np.concatenate([RNG.integers(info.min, info.max, 2000, dtype=source, endpoint=True),
                             np.array([info.min, info.max, 0], source)])
    got = narrow_dtypes.wrap_integer(tf.constant(values), bits, signed).numpy()
    np.testing.assert_array_equal(got.astype(np.int8), values.astype(dtype).astype(np.int8))
