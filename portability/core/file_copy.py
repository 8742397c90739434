"""Copy and read byte ranges between files at copy speed, hashing on the side.

The copy itself stays in the kernel (``os.copy_file_range``, else
``os.sendfile``, else ``pread``/``write`` through one bounded buffer), so a
tensor's bytes never pass through Python. The xxh3 digest is computed by a
second thread that reads the same range from the page cache: xxhash releases
the GIL, so hashing overlaps the copy instead of adding a pass after it.
Memory stays bounded by ``BUFFER_BYTES`` per thread whatever the size.
"""

from __future__ import annotations

import errno
import os
import queue
import threading

from portability.core import integrity
from portability.errors import FormatError

BUFFER_BYTES = 8 * 1024 * 1024
# copy_file_range/sendfile refuse some file pairs (other file systems, old kernels,
# special files): these errors mean "use the next method", not "the copy failed".
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


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

    def finish(self) -> "integrity.xxhash.xxh3_64":
        """Wait for every queued piece; return the hasher."""
        self._pieces.put(None)
        self._thread.join()
        return self._hasher


def hash_range(path: str, offset: int, length: int) -> str:
    """xxh3-64 hex digest of ``length`` bytes of ``path`` from ``offset``, in bounded pieces.

    Raises:
        FormatError: the file ends before the range does.
    """
    hasher = integrity.new_hasher()
    buffer = bytearray(min(BUFFER_BYTES, max(length, 1)))
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < length:
            got = os.preadv(fd, [view[:min(len(buffer), length - done)]], offset + done)
            if got <= 0:
                raise FormatError(f"{path}: ended early while reading tensor data: truncated file")
            hasher.update(view[:got])
            done += got
    finally:
        os.close(fd)
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


def copy_range_hashed(src: str, offset: int, length: int, dst_fd: int, dst_offset: int) -> str:
    """``copy_range`` while a second thread hashes the same source range; returns the digest.

    Raises:
        FormatError: ``src`` ends before the range does.
        OSError: the write failed.
    """
    digests: list[str] = []
    errors: list[BaseException] = []

    def hash_it() -> None:
        try:
            digests.append(hash_range(src, offset, length))
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=hash_it, daemon=True)
    thread.start()
    try:
        copy_range(src, offset, length, dst_fd, dst_offset)
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return digests[0]
