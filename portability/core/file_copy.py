"""Copy, read and hash byte ranges of files, in bounded memory.

Copies stay in the kernel (``os.copy_file_range``, else ``os.sendfile``, else
``pread``/``write`` through one bounded buffer), so a tensor's bytes never pass
through Python; ``hashing_copier`` builds a hashed copy on them. Reads into a
caller's buffer are hashed (xxh3, and a CRC-32 where asked) by a long-lived
second thread that follows the reader through the buffer (xxhash and ISA-L
release the GIL). Memory stays bounded by a few buffers whatever the size.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portability.core import integrity
from portability.errors import FormatError

BUFFER_BYTES = 8 * 1024 * 1024
# A copy hashed by reading it back reads in pieces this small: on the machines measured, pread
# into a reused 128 KiB buffer ran at about 8 GB/s, into one of 192 KiB or more at
# about 1.7 GB/s (the piece no longer stays in the core's cache between the copy
# out of the page cache and the hash).
HASH_READ_BYTES = 128 * 1024
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


@dataclass(frozen=True)
class Sums:
    """Checksums of bytes copied or read: the xxh3-64 hex digest, and the CRC-32 when asked."""

    digest: str | None
    crc32: int | None = None


class Summer:
    """xxh3 (and optionally CRC-32) over a stream of pieces."""

    def __init__(self, crc: bool) -> None:
        self.hasher = integrity.new_hasher()
        self.crc = 0 if crc else None

    def update(self, piece: memoryview) -> None:
        self.hasher.update(piece)
        if self.crc is not None:
            self.crc = integrity.crc32(piece, self.crc)

    def sums(self) -> Sums:
        return Sums(self.hasher.hexdigest(), self.crc)


class _HashingThread:
    """One long-lived daemon thread that runs the hashing for every verified read:
    starting a thread per tensor cost about 3% of a warm read of 16 MiB tensors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:  # (re)started on first use, and in a child after fork
            if self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, args=(self._jobs,), daemon=True,
                                                name="portability-hashing")
                self._thread.start()
            self._jobs.put(job)

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        while True:
            jobs.get()()


_HASHING_THREAD = _HashingThread()
# How the hashing thread follows a reader: it hashes once this much more of the
# buffer is filled, and otherwise sleeps this long, doubling while the reader does
# not move (a cold read from disk), up to the longest pause.
TRAIL_BYTES = 256 * 1024
FOLLOW_PAUSE_SECONDS = 100e-6
LONGEST_PAUSE_SECONDS = 2e-3


class _TrailingHash:
    """The checksums of a buffer that a reader is filling from the front, computed
    on the shared hashing thread while the read goes on; ``finish`` returns them.

    Measured on 2-core machines, for a warm read of 16 MiB tensors:
    - the hashing thread reading the range a second time from the page cache
      slowed the reader by 10-25% (two page-cache copies at once contend);
    - waking the hashing thread for each filled piece cost about 10% (one thread
      wake-up per MiB);
    - this way (the reader only publishes how far it got; the hashing thread polls
      and hashes the buffer itself, a little behind) cost +1% (best of 15) and +9%
      (median) in-process, where the second read cost +15% in the same run.
    It also hashes exactly the bytes the caller receives. The reader hashes what
    is left when it ends (the last piece, still in its cache), so it never waits for
    a sleeping thread.

    On a 16-core Xeon it cost +6% to +11% (best of 25 to 31, in-process). Variants
    measured there and on 2 cores, none better: an eventfd wake-up per piece; the
    last MiB read in 256 KiB pieces; hashing in 256 KiB ranges; 30 us pauses; the
    last piece hashed by this thread while the next tensor is read (the cost moved
    into the read); an independent second read ahead of the reader (+26-32%); and
    hashing an mmap of the page cache (+32%, its page faults).
    """

    def __init__(self, buffer: memoryview, crc: bool) -> None:
        self._buffer = buffer
        self._summer = Summer(crc)
        self.filled = 0  # bytes of the buffer filled so far; written by the reader alone
        self._hashed = 0
        self._ended = False
        self._hashing = threading.Lock()  # held while a range is hashed
        self._errors: list[BaseException] = []
        _HASHING_THREAD.submit(self._follow)

    def _follow(self) -> None:
        pause, seen = FOLLOW_PAUSE_SECONDS, 0
        try:
            while not self._ended:
                filled = self.filled
                if filled - self._hashed < TRAIL_BYTES:
                    # the reader moved: keep up; it did not: back off
                    pause = FOLLOW_PAUSE_SECONDS if filled != seen else min(2 * pause, LONGEST_PAUSE_SECONDS)
                    seen = filled
                    time.sleep(pause)
                    continue
                with self._hashing:
                    if not self._ended:
                        self._hash_to(self.filled)
        except BaseException as exc:  # re-raised in the reader's thread by ``finish``
            self._errors.append(exc)
            self._ended = True

    def _hash_to(self, end: int) -> None:
        self._summer.update(self._buffer[self._hashed:end])
        self._hashed = end

    def finish(self) -> Sums:
        """The checksums of the filled part of the buffer (all of it after a full read)."""
        self._ended = True
        with self._hashing:  # waits for a range being hashed; the thread then stops
            try:
                if self._errors:
                    raise self._errors[0]
                self._hash_to(self.filled)
            finally:
                self._release()
        return self._summer.sums()

    def abandon(self) -> None:
        """Stop following (the read failed); the buffer is no longer touched once this returns."""
        self._ended = True
        with self._hashing:
            self._release()

    def _release(self) -> None:
        # The hashing thread may still hold this object for a moment (asleep); it must
        # not keep the caller's buffer alive after the read: freed later, on that
        # thread, its memory could not be reused for the next tensor, and each read
        # faulted in and zeroed fresh pages (measured: +50% on a warm read).
        self._buffer = memoryview(b"")


def hash_file_range(fd: int, start: int, length: int, src: str, summer: Summer,
                    buffer: memoryview | None = None) -> None:
    """Hash ``length`` bytes of ``fd`` from ``start``, read in cache-sized pieces
    (into ``buffer`` if given, reused by a caller that hashes often).

    Raises:
        FormatError: the file ends before the range does.
    """
    if buffer is None or len(buffer) > HASH_READ_BYTES:
        buffer = memoryview(bytearray(min(HASH_READ_BYTES, max(length, 1))))
    at, end = start, start + length
    while at < end:
        got = os.preadv(fd, [buffer[:min(len(buffer), end - at)]], at)
        if got <= 0:
            raise FormatError(f"{src}: ended early while reading tensor data: truncated file")
        summer.update(buffer[:got])
        at += got


def copy_fd(fd: int, offset: int, length: int, dst_fd: int, dst_offset: int, src: str) -> None:
    """Copy ``length`` bytes of ``fd`` (the file ``src``) from ``offset`` to ``dst_fd`` at
    ``dst_offset``: in the kernel where it will, else through one bounded buffer.

    Raises:
        FormatError: ``src`` ends before the range does.
        OSError: the write failed (disk full...).
    """
    done = _copy_in_kernel(fd, offset, length, dst_fd, dst_offset)
    if done < length:
        _copy_through_buffer(fd, offset + done, length - done, dst_fd, dst_offset + done, src)


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


READ_PIECE_BYTES = 1024 * 1024  # reads into a caller's buffer go in pieces this size


def read_range_into(path: str | os.PathLike, start: int, buffer: memoryview, hashed: bool,
                    crc: bool = False) -> Sums:
    """Fill ``buffer`` with the bytes of ``path`` from ``start``; return their xxh3 hex
    digest when ``hashed`` and their CRC-32 when ``crc`` (``Sums(None)`` when neither).
    A buffer larger than one piece is hashed by the hashing thread while it fills.

    Raises:
        FormatError: the file ends before the buffer is full (a truncated file).
    """
    summed = hashed or crc
    trail = _TrailingHash(buffer, crc) if summed and len(buffer) > READ_PIECE_BYTES else None
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(start)
            pos = 0
            while pos < len(buffer):
                got = f.readinto(buffer[pos:min(len(buffer), pos + READ_PIECE_BYTES)])
                if not got:
                    raise FormatError(f"{path}: ended early while reading tensor data: truncated file")
                pos += got
                if trail is not None:
                    trail.filled = pos
    except BaseException:
        if trail is not None:
            trail.abandon()
        raise
    if trail is not None:
        sums = trail.finish()
    elif summed:  # one piece: hashed here, while it is still in this core's cache
        summer = Summer(crc)
        summer.update(buffer)
        sums = summer.sums()
    else:
        return Sums(None)
    return sums if hashed else Sums(None, sums.crc32)


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
