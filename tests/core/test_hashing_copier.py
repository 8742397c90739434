"""Hashed copies into one output: bitwise, each range hashed (xxh3, CRC-32 on request)
whichever way its offsets send it (kernel copy or ring of buffers), typed errors."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from portability.core import file_copy, hashing_copier, integrity
from portability.errors import FormatError


@pytest.fixture()
def blob(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, size=3 * 1024 * 1024 + 12345, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def _copy_all(copies, out, writeback=False, workers=None):
    """Run ``HashingCopier`` over ``(src, offset, length, dst_offset, crc)`` copies into ``out``."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        with hashing_copier.HashingCopier(fd, writeback=writeback, workers=workers) as copier:
            for copy in copies:
                copier.copy(*copy)
            return copier.finish()
    finally:
        os.close(fd)


# Offsets that differ by whole pages are copied by the kernel and read back to be
# hashed; others go through a buffer, hashed in place.
@pytest.mark.parametrize("head", [5, 12], ids=["through-buffer", "by-kernel"])
@pytest.mark.parametrize(("writeback", "workers"), [(False, 1), (True, 3)])
def test_hashing_copier_is_bitwise_and_hashes_each_range(blob, tmp_path, writeback, workers, head, monkeypatch):
    path, data = blob
    monkeypatch.setattr(hashing_copier, "COPY_CHUNK_BYTES", 1 << 20)  # several chunks per range
    monkeypatch.setattr(file_copy, "HASH_READ_BYTES", 100_000)  # pieces that do not divide a chunk
    monkeypatch.setattr(hashing_copier, "BUFFER_BYTES", 300_000)  # the buffer is refilled many times
    other = tmp_path / "other.bin"
    other.write_bytes(b"tail bytes")
    big = len(data) - 12
    copies = [(str(path), 12, big, head, True), (str(other), 5, 5, head + big, False),
              (str(path), 0, 0, 0, True), (str(path), 3, 9, head + 5 + big, True)]
    kernel_copies = []
    real_copy_fd = file_copy.copy_fd
    monkeypatch.setattr(file_copy, "copy_fd", lambda *a: kernel_copies.append(a[2]) or real_copy_fd(*a))
    sums = _copy_all(copies, tmp_path / "out.bin", writeback, workers)
    assert (sum(kernel_copies) == big) == (head == 12)  # the big range went the way its offsets choose
    assert (tmp_path / "out.bin").read_bytes() == b"\0" * head + data[12:] + b"bytes" + data[3:12]
    assert sums == [file_copy.Sums(integrity.digest([data[12:]]), zlib.crc32(data[12:])),
                    file_copy.Sums(integrity.digest([b"bytes"]), None),
                    file_copy.Sums(integrity.digest([b""]), 0),
                    file_copy.Sums(integrity.digest([data[3:12]]), zlib.crc32(data[3:12]))]


def test_hashing_copier_falls_back_when_the_kernel_refuses(blob, tmp_path, monkeypatch):
    path, data = blob
    monkeypatch.delattr(os, "copy_file_range")
    monkeypatch.setattr(os, "sendfile", _refuse)
    sums = _copy_all([(str(path), 1, len(data) - 1, 1, True)], tmp_path / "out.bin")  # the kernel's turn
    assert (tmp_path / "out.bin").read_bytes() == b"\0" + data[1:]
    assert sums == [file_copy.Sums(integrity.digest([data[1:]]), zlib.crc32(data[1:]))]


def test_hashing_copier_refuses_a_range_past_the_end_and_stops_its_thread(blob, tmp_path):
    path, data = blob
    fd = os.open(tmp_path / "out.bin", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(FormatError, match=r"blob\.bin: ended early .* truncated file"):
            with hashing_copier.HashingCopier(fd) as copier:
                copier.copy(str(path), 0, 100, 0)
                copier.copy(str(path), len(data) - 10, 100, 100)
        assert not any(thread.is_alive() for thread in copier._threads)
        assert copier._sources == {}  # the sources were closed
    finally:
        os.close(fd)


@pytest.mark.parametrize("dst_offset", [0, 1], ids=["by-kernel", "through-buffer"])
def test_hashing_copier_reports_a_source_that_shrank_while_copied(blob, tmp_path, monkeypatch, dst_offset):
    path, data = blob
    monkeypatch.setattr(file_copy.os, "preadv", lambda fd, buffers, offset: 0)  # the file ends here now
    with pytest.raises(FormatError, match=r"blob\.bin: ended early .* truncated file"):
        _copy_all([(str(path), 0, 1000, dst_offset, False)], tmp_path / "out.bin")


def _refuse(*args):
    raise OSError(22, "Invalid argument")
