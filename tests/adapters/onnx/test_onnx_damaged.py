"""Damaged ONNX files found by fuzzing get a typed error naming the file."""

from __future__ import annotations

import warnings

import pytest
from fuzz_seeds import onnx_external

import portability
from portability.errors import FormatError

pytest.importorskip("onnx")

# Where the invalid byte goes: the external-data location string, and the
# initializer's name (TensorProto field 8, length 1, "w").
PLACES = {"external-location": (b"weights.bin", 0), "tensor-name": (b"\x42\x01w", 2)}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_string_field_that_is_not_utf8_is_a_format_error(tmp_path, place):
    seed = onnx_external(tmp_path)[0]
    model = seed.root / "model.onnx"
    raw = model.read_bytes()
    needle, shift = PLACES[place]
    at = raw.index(needle) + shift
    model.write_bytes(raw[:at] + b"\xf7" + raw[at + 1:])  # an invalid UTF-8 start byte
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # protobuf warns about the undecodable string
        expected = r"model\.onnx: damaged ONNX model: the name or string .* is not valid UTF-8"
        with pytest.raises(FormatError, match=expected):
            portability.load(seed.path)


def test_external_location_with_a_nul_byte_is_a_format_error(tmp_path):
    seed = onnx_external(tmp_path)[0]
    model = seed.root / "model.onnx"
    raw = model.read_bytes()
    at = raw.index(b"weights.bin") + 1
    model.write_bytes(raw[:at] + b"\x00" + raw[at + 1:])
    with pytest.raises(FormatError, match=r"model\.onnx: tensor 'w' keeps its data at .* a location with a NUL byte"):
        portability.load(seed.path)
