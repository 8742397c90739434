"""Tensors in the core: ``np.ndarray`` or a lazy, file-backed ``LazyTensor``.

A lazy tensor lets a converter stream bytes from one file to another without
holding a whole shard in memory. Every consumer goes through ``as_array`` or
``iter_bytes`` and does not care which of the two it got.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from portability.errors import IntegrityError

CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExpectedCrc:
    """The CRC-32 a tensor's bytes must have (a foreign torch zip's only integrity check
    for a storage record that one tensor covers whole).

    Args:
        value: the CRC-32 recorded for the bytes.
        what: names the record in errors (``model.pt: record 'archive/data/0'``).
    """

    value: int
    what: str

    def check(self, got: int | None) -> None:
        """Raises IntegrityError (naming the record) unless ``got`` is the recorded CRC-32."""
        if got != self.value:
            raise IntegrityError(f"{self.what} fails its zip CRC-32: the data is corrupt")


@dataclass
class LazyTensor:
    """A tensor whose bytes are read on demand.

    Args:
        dtype: numpy dtype of the elements.
        shape: tensor shape.
        read_chunks: callable yielding the raw little-endian bytes in order,
            in pieces of at most the given size. It may raise
            ``IntegrityError`` after the last piece if a checksum fails.
        read_into: optional callable filling a writable byte buffer of exactly
            ``nbytes`` in place (one copy instead of two); same errors.
        file_range: ``(path, offset)`` where the ``nbytes`` raw bytes lie
            contiguous in a file, when they do: writers then copy them file to
            file (``copy_file_range``) instead of through Python.
        digest: the xxh3-64 the bytes must hash to (None: not recorded), checked
            by whoever reads them through ``file_range``.
        crc: the CRC-32 the bytes must have (None: none to check here), checked
            like ``digest``; ``read_chunks`` and ``read_into`` check both themselves.
        label: how errors name the tensor (``tensor 'w' in model.pt``).
        loader: optional callable returning the tensor as a new array that nothing
            else holds (a reader that decodes into its own buffer), so ``load``
            makes no second copy; same errors.
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    read_chunks: Callable[[int], Iterator[bytes]]
    read_into: Callable[[memoryview], None] | None = None
    file_range: tuple[str, int] | None = None
    digest: str | None = None
    label: str = "tensor"
    crc: ExpectedCrc | None = None
    loader: Callable[[], np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numpy(self) -> np.ndarray:
        """The tensor's data as a fresh, writable ``np.ndarray``, read and verified now.

        Raises:
            IntegrityError: the bytes fail their recorded checksum (names the tensor).
            FormatError: the file behind the tensor is damaged or gone.
        """
        return self.load()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """numpy's conversion protocol: ``np.asarray(t)`` reads (and verifies) the data.

        Every call reads the file, so the array returned is always a new one that
        nothing else shares (``copy=False`` included: there is no buffer to share).
        """
        out = self.load()
        return out if dtype is None or np.dtype(dtype) == out.dtype else out.astype(dtype)

    def load(self) -> np.ndarray:
        """Read all bytes and return a writable array."""
        if self.loader is not None:
            return self.loader()
        out = np.empty(self.shape, dtype=self.dtype)
        view = out.reshape(-1).view(np.uint8)
        if self.read_into is not None:
            self.read_into(memoryview(view.data))
            return out
        pos = 0
        for piece in self.read_chunks(CHUNK_BYTES):
            view[pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            pos += len(piece)
        return out


Tensor = np.ndarray | LazyTensor


def as_array(t: Tensor) -> np.ndarray:
    """Materialise a tensor as ``np.ndarray``."""
    return t.load() if isinstance(t, LazyTensor) else t


def iter_bytes(t: Tensor, chunk: int = CHUNK_BYTES) -> Iterator[bytes | memoryview]:
    """Yield the C-order little-endian bytes of a tensor in pieces."""
    if isinstance(t, LazyTensor):
        yield from t.read_chunks(chunk)
        return
    arr = np.ascontiguousarray(t)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    flat = arr.reshape(-1).view(np.uint8)
    for start in range(0, flat.size, chunk):
        yield flat[start : start + chunk].data
    if flat.size == 0:
        yield b""


def nbytes(t: Tensor) -> int:
    """Byte size of a tensor's data."""
    return int(t.nbytes)
