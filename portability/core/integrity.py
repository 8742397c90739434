"""Checksums for written checkpoints.

xxh3-64 hashes at about 10 GB/s on one core here (crc32: 2.4 GB/s, blake2b:
0.6 GB/s), so verifying every tensor costs a few percent of reading it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import xxhash

from portability.core.tensors import Tensor, iter_bytes
from portability.errors import IntegrityError

ALGORITHM = "xxh3_64"
DIGEST_CHARS = 16


def new_hasher() -> xxhash.xxh3_64:
    """A fresh streaming hasher."""
    return xxhash.xxh3_64()


def digest(pieces: Iterable[bytes | memoryview]) -> str:
    """Hex digest of a sequence of byte pieces."""
    h = new_hasher()
    for piece in pieces:
        h.update(piece)
    return h.hexdigest()


def tensor_digest(t: Tensor) -> str:
    """Hex digest of a tensor's C-order bytes."""
    return digest(iter_bytes(t))


def verified(pieces: Iterable[bytes], expected: str, what: str) -> Iterator[bytes]:
    """Pass pieces through, then raise if their digest is not ``expected``.

    Raises:
        IntegrityError: naming ``what`` (e.g. ``tensor 'fc.weight' in model.safetensors``).
    """
    h = new_hasher()
    for piece in pieces:
        h.update(piece)
        yield piece
    check_digest(h, expected, what)


def check_digest(hasher: xxhash.xxh3_64, expected: str, what: str) -> None:
    """Raise unless a finished hasher's digest is ``expected``.

    Raises:
        IntegrityError: naming ``what``.
    """
    check_hex(hasher.hexdigest(), expected, what)


def check_hex(got: str, expected: str, what: str) -> None:
    """Raise unless a hex digest is ``expected``.

    Raises:
        IntegrityError: naming ``what``.
    """
    if got != expected:
        raise IntegrityError(
            f"checksum mismatch for {what}: the data is corrupt "
            f"(expected {ALGORITHM} {expected}, got {got})"
        )
