"""Byte-range copies and reads: bitwise, hashed in the same pass, and typed errors on short files."""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

from portability.core import file_copy, integrity
from portability.errors import FormatError


@pytest.fixture()
def blob(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, size=3 * file_copy.READ_PIECE_BYTES + 12345,
                                             dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def test_read_range_into_fills_the_buffer_and_hashes_what_it_read(blob):
    path, data = blob
    start, length = 1000, len(data) - 5000
    buffer = bytearray(length)
    sums = file_copy.read_range_into(path, start, memoryview(buffer), hashed=True)
    assert bytes(buffer) == data[start:start + length]
    assert sums == file_copy.Sums(integrity.digest([data[start:start + length]]), None)
    assert file_copy.read_range_into(path, start, memoryview(bytearray(10)), hashed=False) == file_copy.Sums(None)
    small = bytearray(10)
    crc_only = file_copy.read_range_into(path, start, memoryview(small), hashed=False, crc=True)
    assert crc_only == file_copy.Sums(None, zlib.crc32(data[start:start + 10]))
    both = file_copy.read_range_into(path, start, memoryview(bytearray(length)), hashed=True, crc=True)
    assert both == file_copy.Sums(sums.digest, zlib.crc32(data[start:start + length]))


def test_read_range_into_a_truncated_file_names_it(blob):
    path, data = blob
    with pytest.raises(FormatError, match=r"blob\.bin: ended early .* truncated file"):
        file_copy.read_range_into(path, len(data) - 10, memoryview(bytearray(100)), hashed=True)


def test_copy_range_with_writeback_started_is_bitwise(blob, tmp_path):
    path, data = blob
    out = tmp_path / "out.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        with open(path, "rb") as src:
            file_copy.copy_fd(src.fileno(), 7, len(data) - 7, fd, 3, str(path))
        file_copy.start_writeback(fd, 3, len(data) - 7)  # a hint: must not change the bytes
        file_copy.start_writeback(fd, 0, 0)
    finally:
        os.close(fd)
    assert out.read_bytes() == b"\0\0\0" + data[7:]
    if sys.platform == "linux":  # the hint is really given there
        assert file_copy.WRITEBACK_HINTS


def test_fast_crc32_agrees_with_zlib_whole_and_incremental(blob):
    _, data = blob
    assert integrity.crc32(data) == zlib.crc32(data)
    half = len(data) // 2
    assert integrity.crc32(data[half:], integrity.crc32(data[:half])) == zlib.crc32(data)
    assert integrity.crc32(b"") == 0

