"""Byte-range copies and reads: bitwise, hashed in the same pass, and typed errors on short files."""

from __future__ import annotations

import os
import sys
import threading
import weakref
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


def test_a_verified_read_lets_go_of_the_callers_buffer(blob):
    """The hashing thread follows the read through the buffer; once the read returns
    (or fails) nothing else may hold the buffer, or its memory cannot be reused."""
    path, data = blob
    busy = threading.Event()
    file_copy._HASHING_THREAD.submit(busy.wait)  # this read's hashing job stays queued...
    try:
        array = np.empty(len(data) - 1000, dtype=np.uint8)
        owner = weakref.ref(array)
        sums = file_copy.read_range_into(path, 1000, memoryview(array), hashed=True, crc=True)
        assert array.tobytes() == data[1000:]  # ...so the reader hashed it all itself
        assert sums == file_copy.Sums(integrity.digest([data[1000:]]), zlib.crc32(data[1000:]))
        del array
        assert owner() is None  # the queued job does not keep the buffer alive
    finally:
        busy.set()
    array = np.empty(len(data), dtype=np.uint8)
    owner = weakref.ref(array)
    with pytest.raises(FormatError, match="truncated file"):
        file_copy.read_range_into(path, 1000, memoryview(array), hashed=True)
    del array
    assert owner() is None


def test_verified_reads_from_several_threads_each_get_their_own_checksums(blob):
    """One hashing thread serves every reader; a read whose hashing has not started
    when it ends hashes the rest itself."""
    path, data = blob
    starts = [0, 777, 4096, 12345, 99999, 500000]
    length = len(data) - max(starts)
    results: dict[int, tuple[bytes, file_copy.Sums]] = {}

    def read(start: int) -> None:
        buffer = bytearray(length)
        sums = file_copy.read_range_into(path, start, memoryview(buffer), hashed=True)
        results[start] = bytes(buffer), sums

    threads = [threading.Thread(target=read, args=(start,)) for start in starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for start in starts:
        got, sums = results[start]
        assert got == data[start:start + length]
        assert sums.digest == integrity.digest([data[start:start + length]])


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

