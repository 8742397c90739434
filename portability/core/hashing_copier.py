"""Copy byte ranges of source files into one output file, hashing them on the way.

Each range (a tensor) is one job; a few worker threads take jobs in turn and
copy and hash each one (xxh3, and a CRC-32 where asked) chunk by chunk, so every
chunk is hashed right after it was copied, while its bytes are still in the
CPU's cache: the checksum costs no extra pass over memory. The kernel copies
(``file_copy.copy_fd``) where the source and output offsets line up on pages; a
small buffer per worker copies where they do not (the kernel's copy is slow
there). Syscalls, xxhash and ISA-L release the GIL, so the workers run in
parallel: on the 2-core machines measured, two workers copied and hashed 1 GiB
faster than one plain single-threaded copy.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass

from portability.core import file_copy
from portability.errors import FormatError

# Workers copying tensors at once; beyond a few, memory bandwidth is the limit.
WORKERS = max(1, min(4, os.cpu_count() or 1))
# The kernel copies this much at a time, then the worker hashes the same bytes
# while they are still cached (at 128 KiB chunks the per-call overhead showed).
COPY_CHUNK_BYTES = 4 * 1024 * 1024
# Where source and output offsets differ by other than whole pages (a torch zip's
# records sit 64-byte aligned, a safetensors file's tensors right after each other),
# the kernel's copy ran 40% slower than a plain copy, while reading into a buffer
# of this size and writing from it ran at plain-copy speed (and at half speed
# where the offsets did line up). The worker hashes the buffer itself.
BUFFER_BYTES = 512 * 1024
PAGE_BYTES = 4096


@dataclass(frozen=True)
class _Job:
    """One range to copy: ``length`` bytes of ``src`` (open as ``fd``) from ``offset``
    to ``dst_offset`` of the output; the ``index``-th copy asked for."""

    index: int
    src: str
    fd: int
    offset: int
    length: int
    dst_offset: int
    crc: bool


class HashingCopier:
    """Copy byte ranges of source files into one output file, each hashed as it is copied.

    Use it as a context manager (it stops the workers and closes the sources)::

        with HashingCopier(fd, writeback=True) as copier:
            copier.copy(src, offset, length, dst_offset)
            sums = copier.finish()  # one ``Sums`` per copy, in order

    ``copy`` returns at once; the copies run on ``workers`` threads and may
    land in any order (each goes to its own place in the output).
    ``writeback``: start writing each copied chunk to disk at once (a durable
    write is disk-bound; the final fsync then finds little left to do).
    """

    def __init__(self, dst_fd: int, writeback: bool = False, workers: int | None = None) -> None:
        self._dst = dst_fd
        self._writeback = writeback
        self._sources: dict[str, int] = {}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._count = 0
        self._sums: dict[int, file_copy.Sums] = {}
        self._errors: dict[int, BaseException] = {}
        self._abandoned = False
        self._threads = [threading.Thread(target=self._work, daemon=True, name="portability-copy")
                         for _ in range(workers or WORKERS)]
        for thread in self._threads:
            thread.start()

    def copy(self, src: str, offset: int, length: int, dst_offset: int, crc: bool = False) -> None:
        """Queue a copy of ``length`` bytes of ``src`` from ``offset`` to ``dst_offset`` of
        the output; ``crc``: also compute the CRC-32 of those bytes.

        Raises:
            FormatError: ``src`` ends before the range does (``finish`` raises the
                same when it shrinks while being copied, or a write fails).
        """
        fd = self._source(src)
        if os.fstat(fd).st_size < offset + length:
            raise FormatError(f"{src}: ended early while reading tensor data: truncated file")
        self._jobs.put(_Job(self._count, src, fd, offset, length, dst_offset, crc))
        self._count += 1

    def finish(self) -> list[file_copy.Sums]:
        """Wait for every copy; their sums, in the order the copies were asked for.

        Raises:
            FormatError: a source ended before its range did.
            OSError: a write failed (disk full...). The first failing copy's error.
        """
        self._stop()
        if self._errors:
            raise self._errors[min(self._errors)]
        return [self._sums[index] for index in range(self._count)]

    def _source(self, src: str) -> int:
        if src not in self._sources:
            self._sources[src] = os.open(src, os.O_RDONLY)
        return self._sources[src]

    def _stop(self) -> None:
        alive = [thread for thread in self._threads if thread.is_alive()]
        for _ in alive:
            self._jobs.put(None)
        for thread in alive:
            thread.join()

    def _work(self) -> None:
        buffer: memoryview | None = None  # for copies, made on first use
        hash_buffer = memoryview(bytearray(file_copy.HASH_READ_BYTES))
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._errors or self._abandoned:
                continue  # a copy failed: the output is abandoned, skip the rest
            try:
                summer = file_copy.Summer(job.crc)
                if job.length and (job.offset - job.dst_offset) % PAGE_BYTES:
                    if buffer is None:
                        buffer = memoryview(bytearray(BUFFER_BYTES))
                    self._copy_through(buffer, job, summer)
                else:
                    self._copy_by_kernel(job, summer, hash_buffer)
                self._sums[job.index] = summer.sums()
            except BaseException as exc:  # re-raised in the caller's thread by ``finish``
                self._errors[job.index] = exc

    def _copy_by_kernel(self, job: _Job, summer: file_copy.Summer, hash_buffer: memoryview) -> None:
        done = 0
        while True:
            count = min(COPY_CHUNK_BYTES, job.length - done)
            file_copy.copy_fd(job.fd, job.offset + done, count, self._dst, job.dst_offset + done, job.src)
            if self._writeback:
                file_copy.start_writeback(self._dst, job.dst_offset + done, count)
            file_copy.hash_file_range(job.fd, job.offset + done, count, job.src, summer, hash_buffer)
            done += count
            if done == job.length:
                return

    def _copy_through(self, buffer: memoryview, job: _Job, summer: file_copy.Summer) -> None:
        done = hinted = 0
        while done < job.length:
            piece = buffer[:min(len(buffer), job.length - done)]
            got = os.preadv(job.fd, [piece], job.offset + done)
            if got <= 0:
                raise FormatError(f"{job.src}: ended early while reading tensor data: truncated file")
            written = 0
            while written < got:
                written += os.pwrite(self._dst, piece[written:got], job.dst_offset + done + written)
            summer.update(piece[:got])
            done += got
            if self._writeback and (done - hinted >= COPY_CHUNK_BYTES or done == job.length):
                file_copy.start_writeback(self._dst, job.dst_offset + hinted, done - hinted)
                hinted = done

    def __enter__(self) -> HashingCopier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._abandoned = exc_info[0] is not None  # the caller failed: copy no more
        self._stop()
        for fd in self._sources.values():
            os.close(fd)
        self._sources.clear()
