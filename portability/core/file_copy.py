"""Copy and read byte ranges between files at copy speed, hashing on the side.

The copy itself stays in the kernel (``os.copy_file_range``, else
``os.sendfile``, else ``pread``/``write`` through one bounded buffer), so a
tensor's bytes never pass through Python. The xxh3 digest is computed by a
second thread that reads the same range from the page cache once the copy is
done, while a durable write's data is flushed to disk (xxhash releases the GIL):
hashing during the copy gained nothing, the two compete for memory bandwidth.
Reads into a buffer hash each piece on a second thread as it lands.
Memory stays bounded by ``BUFFER_BYTES`` per thread whatever the size.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from portability.core import integrity
from portability.errors import FormatError

BUFFER_BYTES = 8 * 1024 * 1024
T = TypeVar("T")
WINDOW_BYTES = 8 * 1024 * 1024  # resident while hashed: keep it small for flat memory
# copy_file_range/sendfile refuse some file pairs (other file systems, old kernels,
# special files): these errors mean "use the next method", not "the copy failed".
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's ``sync_file_range`` (Linux only; Python's ``os`` does not expose it), or None."""
    try:  # the process's own symbols include libc's (find_library would spawn ldconfig)
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()
WRITEBACK_HINTS = _SYNC_FILE_RANGE is not None  # whether ``start_writeback`` does anything here
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages; do not wait for it


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``[offset, offset + length)`` of ``fd`` to disk, without waiting.

    A durable write is disk-bound: started while later bytes are still being
    copied, the writeback overlaps the copy instead of all of it waiting for the
    final fsync. Only a hint: where the call is missing or refused, the final
    fsync does all the work, as before.
    """
    if _SYNC_FILE_RANGE is not None and length > 0:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class BackgroundHasher:
    """An xxh3 hasher fed from another thread; ``finish`` joins it and returns the digest.

    The buffers fed must stay unchanged until ``finish`` returns (the reader
    fills a fresh slice of its output for every piece, so they do).
    """

    def __init__(self) -> None:
        self._hasher = integrity.new_hasher()
        self._pieces: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            piece = self._pieces.get()
            if piece is None:
                return
            self._hasher.update(piece)

    def feed(self, piece: memoryview) -> None:
        """Queue a piece for hashing (returns at once)."""
        self._pieces.put(piece)

    def finish(self) -> integrity.xxhash.xxh3_64:
        """Wait for every queued piece; return the hasher."""
        self._pieces.put(None)
        self._thread.join()
        return self._hasher


def hash_range(path: str, offset: int, length: int) -> str:
    """xxh3-64 hex digest of ``length`` bytes of ``path`` from ``offset``.

    Hashes straight from the page cache through read-only mappings of at most
    ``WINDOW_BYTES`` (half the cost of reading into a buffer first); each window
    is unmapped before the next, so resident memory stays bounded.

    Raises:
        FormatError: the file ends before the range does.
    """
    hasher = integrity.new_hasher()
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < offset + length:
            raise FormatError(f"{path}: ended early while reading tensor data: truncated file")
        position, end = offset, offset + length
        while position < end:
            base = position - position % mmap.ALLOCATIONGRANULARITY
            size = min(WINDOW_BYTES, end - base)
            with mmap.mmap(f.fileno(), size, offset=base, access=mmap.ACCESS_READ) as window:
                with memoryview(window) as view:
                    hasher.update(view[position - base:size])
            position = base + size
    return hasher.hexdigest()


def copy_range(src: str, offset: int, length: int, dst_fd: int, dst_offset: int) -> None:
    """Copy ``length`` bytes of ``src`` from ``offset`` to ``dst_fd`` at ``dst_offset``.

    Raises:
        FormatError: ``src`` ends before the range does.
        OSError: the write failed (disk full...).
    """
    fd = os.open(src, os.O_RDONLY)
    try:
        done = _copy_in_kernel(fd, offset, length, dst_fd, dst_offset)
        if done < length:
            _copy_through_buffer(fd, offset + done, length - done, dst_fd, dst_offset + done, src)
    finally:
        os.close(fd)


def _copy_in_kernel(fd: int, offset: int, length: int, dst_fd: int, dst_offset: int) -> int:
    """Copy what the kernel will copy for us; returns how many bytes it did (0: not supported)."""
    done = 0
    use_range = hasattr(os, "copy_file_range")
    while done < length:
        count = min(1 << 30, length - done)
        try:
            if use_range:
                got = os.copy_file_range(fd, dst_fd, count, offset + done, dst_offset + done)
            else:
                os.lseek(dst_fd, dst_offset + done, os.SEEK_SET)
                got = os.sendfile(dst_fd, fd, offset + done, count)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            if use_range:
                use_range = False
                continue
            return done
        if got == 0:  # the source ended early; the buffered copy reports it
            return done
        done += got
    return done


def _copy_through_buffer(fd: int, offset: int, length: int, dst_fd: int, dst_offset: int,
                         src: str) -> None:
    buffer = bytearray(min(BUFFER_BYTES, length))
    view = memoryview(buffer)
    done = 0
    while done < length:
        got = os.preadv(fd, [view[:min(len(buffer), length - done)]], offset + done)
        if got <= 0:
            raise FormatError(f"{src}: ended early while reading tensor data: truncated file")
        written = 0
        while written < got:
            written += os.pwrite(dst_fd, view[written:got], dst_offset + done + written)
        done += got


@dataclass(frozen=True)
class RangeCopy:
    """One copy: ``length`` bytes of ``src`` from ``offset`` to ``dst_offset`` of the output."""

    src: str
    offset: int
    length: int
    dst_offset: int


class RangeHasher:
    """Hash a list of source ranges on one background thread, in order.

    One thread for a whole file (starting a thread per tensor costs
    milliseconds each on a loaded machine), started by ``start``.
    """

    def __init__(self, copies: list[RangeCopy]) -> None:
        self._copies = copies
        self._digests: list[str] = []
        self._error: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = False

    def start(self) -> None:
        """Start hashing (returns at once); ``digests`` starts it if nobody did."""
        if self._copies and not self._started:
            self._started = True
            self._thread.start()

    def _run(self) -> None:
        try:
            for copy in self._copies:
                self._digests.append(hash_range(copy.src, copy.offset, copy.length))
        except BaseException as exc:  # re-raised in the caller's thread by ``digests``
            self._error.append(exc)

    def digests(self) -> list[str]:
        """Wait for the thread; the digests in the order of the copies.

        Raises:
            FormatError: a source ended before its range did.
        """
        if self._copies:
            self.start()
            self._thread.join()
        if self._error:
            raise self._error[0]
        return self._digests


def sync_while(fd: int, work: Callable[[], T]) -> T:
    """Run ``work`` while another thread flushes ``fd``'s data to disk; return its result.

    Hashing is CPU work and flushing is disk work: overlapped, the hash costs
    nothing on a durable write (the caller's final fsync then finds little left).

    Raises:
        OSError: the flush failed (disk full, I/O error); whatever ``work`` raises.
    """
    errors: list[OSError] = []

    def flush() -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=flush, daemon=True)
    thread.start()
    try:
        result = work()
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return result


# Reads hand the hasher pieces small enough to still be in the CPU's cache when it
# hashes them: with 16 MiB pieces the hasher re-read each one from memory and
# verification cost about 60% of a warm read, with 1 MiB pieces about 20%.
HASH_PIECE_BYTES = 1024 * 1024


def read_range_into(path: str | os.PathLike, start: int, buffer: memoryview, hashed: bool) -> str | None:
    """Fill ``buffer`` with the bytes of ``path`` from ``start``; return their xxh3 hex
    digest when ``hashed`` (computed by a second thread as the pieces land), else None.

    Raises:
        FormatError: the file ends before the buffer is full (a truncated file).
    """
    hasher = BackgroundHasher() if hashed else None
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(start)
            pos = 0
            while pos < len(buffer):
                got = f.readinto(buffer[pos:min(len(buffer), pos + HASH_PIECE_BYTES)])
                if not got:
                    raise FormatError(f"{path}: ended early while reading tensor data: truncated file")
                if hasher is not None:
                    hasher.feed(buffer[pos:pos + got])
                pos += got
    finally:
        finished = hasher.finish() if hasher is not None else None
    return finished.hexdigest() if finished is not None else None


def read_range(path: str | os.PathLike, start: int, length: int, chunk: int) -> Iterator[bytes]:
    """The bytes ``[start, start + length)`` of a file, in pieces of at most ``chunk``
    (one empty piece for an empty range).

    Raises:
        FormatError: the file ends before the range does (a truncated file).
    """
    with open(path, "rb") as f:
        f.seek(start)
        remaining = length
        while remaining > 0:
            piece = f.read(min(chunk, remaining))
            if not piece:
                raise FormatError(f"{path}: ended early while reading tensor data: truncated file")
            remaining -= len(piece)
            yield piece
    if length == 0:
        yield b""
