"""Copy byte ranges of source files into one output file, hashing them on the way.

The kernel copies (``file_copy.copy_fd``) where the source and output offsets
line up on pages; a ring of small buffers copies where they do not (the
kernel's copy is slow there). A second thread hashes each chunk (xxh3, and a
CRC-32 where asked) right after it was copied, while its bytes are still in
the CPU's cache, so the checksum costs no extra pass over memory.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass

from portability.core import file_copy
from portability.errors import FormatError

# The kernel copies this much at a time; the hashing thread then reads the same
# bytes while they are still cached (at 128 KiB chunks the per-call overhead showed).
COPY_CHUNK_BYTES = 4 * 1024 * 1024
# Where source and output offsets differ by other than whole pages (a torch zip's
# records sit 64-byte aligned, a safetensors file's tensors right after each other),
# the kernel's copy ran 40% slower than a plain copy, and reading into a ring of
# buffers of this size and writing from them ran at plain-copy speed (while the
# same buffered copy ran at half speed where the offsets did line up). The hashing
# thread hashes each buffer itself: no second read.
RING_PIECE_BYTES = 512 * 1024
RING_PIECES = 4
PAGE_BYTES = 4096


@dataclass(frozen=True)
class _Chunk:
    """Bytes just copied, for the hashing thread: in ring buffer ``ring``, or (``ring``
    None) to be read back from the source while still cached."""

    src: str
    fd: int
    offset: int
    length: int
    first: bool  # the first chunk of a copy: start new sums
    last: bool  # the last one: record the sums
    crc: bool
    ring: int | None = None


class HashingCopier:
    """Copy byte ranges of source files into one output file; a second thread
    hashes each chunk's bytes right after they were copied, while still cached.

    Use it as a context manager (it stops the thread and closes the sources)::

        with HashingCopier(fd, writeback=True) as copier:
            copier.copy(src, offset, length, dst_offset)
            sums = copier.finish()  # one ``Sums`` per copy, in order

    ``writeback``: start writing each copied chunk to disk at once (a durable
    write is disk-bound; the final fsync then finds little left to do).
    """

    def __init__(self, dst_fd: int, writeback: bool = False) -> None:
        self._dst = dst_fd
        self._writeback = writeback
        self._sources: dict[str, int] = {}
        self._chunks: queue.SimpleQueue = queue.SimpleQueue()
        self._ring: list[memoryview] = []
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # ring buffers the hasher is done with
        self._sums: list[file_copy.Sums] = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._hash_chunks, daemon=True)
        self._thread.start()

    def copy(self, src: str, offset: int, length: int, dst_offset: int, crc: bool = False) -> None:
        """Copy ``length`` bytes of ``src`` from ``offset`` to ``dst_offset`` of the output;
        ``crc``: also compute the CRC-32 of those bytes.

        Raises:
            FormatError: ``src`` ends before the range does.
            OSError: the write failed (disk full...).
        """
        fd = self._source(src)
        if os.fstat(fd).st_size < offset + length:
            raise FormatError(f"{src}: ended early while reading tensor data: truncated file")
        if length and (offset - dst_offset) % PAGE_BYTES:
            self._copy_through_ring(src, fd, offset, length, dst_offset, crc)
            return
        done = 0
        while True:
            count = min(COPY_CHUNK_BYTES, length - done)
            file_copy.copy_fd(fd, offset + done, count, self._dst, dst_offset + done, src)
            if self._writeback:
                file_copy.start_writeback(self._dst, dst_offset + done, count)
            self._chunks.put(_Chunk(src, fd, offset + done, count, done == 0, done + count == length, crc))
            done += count
            if done == length:
                return

    def _copy_through_ring(self, src: str, fd: int, offset: int, length: int, dst_offset: int,
                           crc: bool) -> None:
        if not self._ring:
            self._ring = [memoryview(bytearray(RING_PIECE_BYTES)) for _ in range(RING_PIECES)]
            for index in range(RING_PIECES):
                self._free.put(index)
        done = hinted = 0
        while done < length:
            index = self._free.get()
            buffer = self._ring[index][:min(RING_PIECE_BYTES, length - done)]
            got = os.preadv(fd, [buffer], offset + done)
            if got <= 0:
                self._free.put(index)
                raise FormatError(f"{src}: ended early while reading tensor data: truncated file")
            written = 0
            while written < got:
                written += os.pwrite(self._dst, buffer[written:got], dst_offset + done + written)
            self._chunks.put(_Chunk(src, fd, offset + done, got, done == 0, done + got == length, crc, index))
            done += got
            if self._writeback and (done - hinted >= COPY_CHUNK_BYTES or done == length):
                file_copy.start_writeback(self._dst, dst_offset + hinted, done - hinted)
                hinted = done

    def finish(self) -> list[file_copy.Sums]:
        """Wait for the hashing thread; the sums of every copy, in order.

        Raises:
            FormatError: a source ended before its range did.
        """
        self._stop()
        if self._errors:
            raise self._errors[0]
        return self._sums

    def _source(self, src: str) -> int:
        if src not in self._sources:
            self._sources[src] = os.open(src, os.O_RDONLY)
        return self._sources[src]

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()

    def _hash_chunks(self) -> None:
        summer = file_copy.Summer(False)
        while True:
            chunk = self._chunks.get()
            if chunk is None:
                return
            try:
                if self._errors:
                    continue  # drain the queue; ``finish`` reports the first error
                if chunk.first:
                    summer = file_copy.Summer(chunk.crc)
                if chunk.ring is not None:
                    summer.update(self._ring[chunk.ring][:chunk.length])
                else:
                    file_copy.hash_file_range(chunk.fd, chunk.offset, chunk.length, chunk.src, summer)
                if chunk.last:
                    self._sums.append(summer.sums())
            except BaseException as exc:  # re-raised in the caller's thread by ``finish``
                self._errors.append(exc)
            finally:
                if chunk.ring is not None:
                    self._free.put(chunk.ring)

    def __enter__(self) -> HashingCopier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()
        for fd in self._sources.values():
            os.close(fd)
        self._sources.clear()
