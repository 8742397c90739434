"""The ONNX specification's values for casts to 2/4-bit integers and FLOAT4E2M1, in numpy.

onnx's reference Cast and its conformance-case generator compute these casts with
ml_dtypes' ``astype``, and ml_dtypes is no spec: releases up to 0.6 truncate toward zero
and keep the low bits (9.0 -> int4 -7), 0.7 truncates and sends anything out of range to
0, and every release casts a float4 NaN to a zero. The conformance harness holds the
cases it lists in ``conformance.SPEC_EXPECTED`` to these values instead:

- INT4/UINT4, INT2/UINT2 (onnx docs/technical/int4.md and int2.md, "Cast"): reals round
  to the nearest integer, ties to even, and saturate to the range, as onnx's first
  reference did (``np.rint(np.clip(x, lo, hi))``); NaN, left undefined, gives 0.
  Integers keep their low bits (Cast: fixed point to fixed point discards higher bits).
- FLOAT4E2M1 (docs/technical/float4.md, "Cast"): nearest even within [-6, 6], beyond
  and +-Inf saturate to +-6, NaN gives 6, +-0 is kept.

The translator computes the same rules with TF ops (``ops.narrow_dtypes``).
"""

from __future__ import annotations

import numpy as np

# ONNX element type -> (bits, signed), by name so this module needs no onnx import.
NARROW_INTEGERS = {"INT4": (4, True), "UINT4": (4, False), "INT2": (2, True), "UINT2": (2, False)}
# float4.md's representable magnitudes by code (the sign is the code's bit 3).
FLOAT4_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def narrow_integer(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Values of ``x`` cast to a ``bits``-wide integer type, as int64.

    Raises:
        TypeError: ``x`` is neither real, integer nor boolean.
    """
    x = np.asarray(x)
    if x.dtype.kind == "V":  # an ml_dtypes type: its values widen exactly
        with np.errstate(invalid="ignore"):
            x = x.astype(np.int64 if "int" in x.dtype.name else np.float64)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            wide = x.astype(np.float64)
            rounded = np.rint(np.clip(wide, low, high))
        return np.where(np.isnan(wide), 0, rounded).astype(np.int64)
    if x.dtype.kind not in "biu":
        raise TypeError(f"no ONNX cast from {x.dtype} to a {bits}-bit integer")
    kept = x.astype(np.int64) & ((1 << bits) - 1)
    return np.where(signed & (kept > high), kept - (1 << bits), kept)


def float4_codes(x: np.ndarray) -> np.ndarray:
    """FLOAT4E2M1 codes (uint8, one per element) of reals ``x``, by float4.md's table."""
    with np.errstate(invalid="ignore"):  # signalling NaN payloads
        wide = np.asarray(x).astype(np.float64)
    magnitude = np.abs(wide)
    # Between neighbours the nearer one wins; a tie goes to the even code, so each
    # midpoint belongs to the side whose code is even (0.25 -> 0, 0.75 -> 1.0, ...).
    bounds = [(0.25, True), (0.75, False), (1.25, True), (1.75, False), (2.5, True), (3.5, False), (5.0, True)]
    code = np.zeros(wide.shape, np.uint8)
    with np.errstate(invalid="ignore"):
        for step, (midpoint, tie_goes_down) in enumerate(bounds, start=1):
            beyond = magnitude > midpoint if tie_goes_down else magnitude >= midpoint
            code = np.where(beyond, np.uint8(step), code)
    code = np.where(np.signbit(wide), code | 0x8, code)
    return np.where(np.isnan(wide), np.uint8(0x7), code).astype(np.uint8)
