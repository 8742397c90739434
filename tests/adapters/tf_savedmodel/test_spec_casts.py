"""The spec's own tables against the tests' oracle (``onnx_cast_spec``) and against
``spec_casts``, the numpy rules the conformance harness holds cast cases to.

Literal values below are read from the onnx repository's docs/docsgen/source/technical/
(float8.md, float4.md, int4.md, int2.md) and the Cast operator's text.
"""

from __future__ import annotations

import numpy as np
import onnx_cast_spec as spec
import pytest

from portability.adapters.tf_savedmodel import spec_casts

NAN, INF = np.nan, np.inf


@pytest.mark.parametrize("fmt,largest,smallest", [
    (spec.E4M3FN, 448.0, 2.0 ** -9),       # S.1111.110, S.0000.001
    (spec.E5M2, 57344.0, 2.0 ** -16),      # 1.75 * 2**15, S.00000.01
    (spec.E4M3FNUZ, 240.0, 2.0 ** -10),    # S.1111.111, S.0000.001
    (spec.E5M2FNUZ, 57344.0, 2.0 ** -17),  # S.11111.11, S.00000.01
    (spec.E2M1, 6.0, 0.5),                 # S.11.1, S.00.1
])
def test_the_oracle_formats_have_the_spec_range(fmt, largest, smallest):
    finite = spec.decode(np.arange(fmt.finite), fmt)
    assert finite[-1] == largest and finite[1] == smallest
    assert np.all(np.diff(finite) > 0)


def test_the_oracle_float4_values_are_the_spec_table():
    np.testing.assert_array_equal(spec.decode(np.arange(8), spec.E2M1), [0, 0.5, 1, 1.5, 2, 3, 4, 6])


def test_the_oracle_float8_special_codes_are_the_spec_ones():
    assert np.isnan(spec.decode([0x7F, 0xFF], spec.E4M3FN)).all()               # S.1111.111
    assert np.isnan(spec.decode([0x7D, 0x7E, 0x7F], spec.E5M2)).all()           # S.11111.{01,10,11}
    np.testing.assert_array_equal(spec.decode([0x7C, 0xFC], spec.E5M2), [INF, -INF])
    for fnuz in (spec.E4M3FNUZ, spec.E5M2FNUZ):
        assert np.isnan(spec.decode([0x80], fnuz)).all()                        # 1.0000.000
        assert not np.isnan(spec.decode(np.r_[0:0x80, 0x81:0x100], fnuz)).any()


# Cast's tables: x -> value, saturate=1 then saturate=0, per type.
CAST_TABLE = [
    # x      E4M3FN          E4M3FNUZ        E5M2              E5M2FNUZ
    (0.0,   (0.0, 0.0),     (0.0, 0.0),     (0.0, 0.0),       (0.0, 0.0)),
    (-0.0,  (-0.0, -0.0),   (0.0, 0.0),     (-0.0, -0.0),     (0.0, 0.0)),
    (NAN,   (NAN, NAN),     (NAN, NAN),     (NAN, NAN),       (NAN, NAN)),
    (INF,   (448.0, NAN),   (240.0, NAN),   (57344.0, INF),   (57344.0, NAN)),
    (-INF,  (-448.0, NAN),  (-240.0, NAN),  (-57344.0, -INF), (-57344.0, NAN)),
    (1e6,   (448.0, NAN),   (240.0, NAN),   (57344.0, INF),   (57344.0, NAN)),
    (-1e6,  (-448.0, NAN),  (-240.0, NAN),  (-57344.0, -INF), (-57344.0, NAN)),
    (464.0, (448.0, 448.0), (240.0, NAN),   (448.0, 448.0),   (448.0, 448.0)),  # E4M3FN tie: to even 448 (110)
    (465.0, (448.0, NAN),   (240.0, NAN),   (448.0, 448.0),   (448.0, 448.0)),
    (61440.0, (448.0, NAN), (240.0, NAN),   (57344.0, INF),   (57344.0, NAN)),  # tie: even code is beyond
    (0.3,   (0.3125, 0.3125), (0.3125, 0.3125), (0.3125, 0.3125), (0.3125, 0.3125)),
]


@pytest.mark.parametrize("column,fmt", [(1, spec.E4M3FN), (2, spec.E4M3FNUZ), (3, spec.E5M2), (4, spec.E5M2FNUZ)],
                         ids=lambda v: getattr(v, "name", str(v)))
@pytest.mark.parametrize("saturate", [True, False])
def test_the_oracle_follows_the_cast_operator_tables(column, fmt, saturate):
    x = np.array([row[0] for row in CAST_TABLE])
    want = np.array([row[column][0 if saturate else 1] for row in CAST_TABLE])
    spec.same_values(spec.decode(spec.encode(x, fmt, saturate), fmt), want)


FLOAT4_CAST_TABLE = [  # float4.md's Cast table, and round to nearest even in between
    (6.0, 6.0), (7.0, 6.0), (-7.0, -6.0), (INF, 6.0), (-INF, -6.0), (NAN, 6.0), (-NAN, 6.0),
    (0.0, 0.0), (-0.0, -0.0), (0.25, 0.0), (0.26, 0.5), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0),
    (2.5, 2.0), (3.5, 4.0), (5.0, 4.0), (5.01, 6.0), (-2.5, -2.0), (-0.1, -0.0),
]


def test_float4_casts_follow_the_spec_table_in_the_oracle_and_in_spec_casts():
    x = np.array([row[0] for row in FLOAT4_CAST_TABLE])
    want = np.array([row[1] for row in FLOAT4_CAST_TABLE])
    spec.same_values(spec.decode(spec.encode(x, spec.E2M1), spec.E2M1), want)
    spec.same_values(spec.decode(spec_casts.float4_codes(x), spec.E2M1), want)


INTEGER_CASTS = [  # int4.md / int2.md: round half to even, then saturate; NaN -> 0 (ours)
    (4, True, [0.5, 1.5, 2.5, -2.5, 6.7, 7.5, 9.0, -8.5, -9.0, INF, -INF, NAN, 1e30],
     [0, 2, 2, -2, 7, 7, 7, -8, -8, 7, -8, 0, 7]),
    (4, False, [0.5, 1.5, 13.5, 14.5, 15.5, 16.0, -1.0, INF, -INF, NAN], [0, 2, 14, 14, 15, 15, 0, 15, 0, 0]),
    (2, True, [-3.0, -2.5, -1.5, -0.5, 0.5, 1.5, 2.0], [-2, -2, -2, 0, 0, 1, 1]),
    (2, False, [-3.0, 0.5, 1.5, 2.5, 3.5, 4.0], [0, 0, 2, 2, 3, 3]),
]


@pytest.mark.parametrize("bits,signed,x,want", INTEGER_CASTS)
def test_reals_to_narrow_integers_round_half_to_even_and_saturate(bits, signed, x, want):
    x = np.array(x, np.float32)
    np.testing.assert_array_equal(spec.integer_from_real(x, bits, signed), want)
    np.testing.assert_array_equal(spec_casts.narrow_integer(x, bits, signed), want)


def test_integers_to_narrow_integers_discard_the_higher_bits():
    """Cast: 'fixed point to fixed point: when OOR, discard higher bits and reinterpret'."""
    x = np.array([7, 8, 9, 15, 16, -1, -9, 200, -200], np.int32)
    for bits, signed, want in [(4, True, [7, -8, -7, -1, 0, -1, 7, -8, -8]), (4, False, [7, 8, 9, 15, 0, 15, 7, 8, 8]),
                               (2, True, [-1, 0, 1, -1, 0, -1, -1, 0, 0]), (2, False, [3, 0, 1, 3, 0, 3, 3, 0, 0])]:
        np.testing.assert_array_equal(spec.integer_from_integer(x, bits, signed), want)
        np.testing.assert_array_equal(spec_casts.narrow_integer(x, bits, signed), want)


@pytest.mark.parametrize("bits,signed", [(4, True), (4, False), (2, True), (2, False)])
def test_spec_casts_agree_with_the_oracle_on_many_values(bits, signed):
    rng = np.random.default_rng(3)
    reals = np.concatenate([np.arange(-40, 40, 0.25), rng.standard_normal(20_000) * 30, [NAN, INF, -INF, -0.0]])
    for source in (np.float16, np.float32, np.float64):
        with np.errstate(over="ignore"):
            x = reals.astype(source)
        np.testing.assert_array_equal(spec_casts.narrow_integer(x, bits, signed),
                                      spec.integer_from_real(x, bits, signed))
    ints = rng.integers(-(1 << 40), 1 << 40, 5000)
    np.testing.assert_array_equal(spec_casts.narrow_integer(ints, bits, signed),
                                  spec.integer_from_integer(ints, bits, signed))


def test_spec_casts_float4_agrees_with_the_oracle_on_many_values():
    rng = np.random.default_rng(4)
    x = np.concatenate([np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32),
                        (rng.standard_normal(20_000) * 4).astype(np.float32)])
    np.testing.assert_array_equal(spec_casts.float4_codes(x), spec.encode(x, spec.E2M1))


def test_spec_casts_refuses_strings():
    with pytest.raises(TypeError, match="no ONNX cast from <U1 to a 4-bit integer"):
        spec_casts.narrow_integer(np.array(["a"]), 4, True)
