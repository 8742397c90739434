"""Parse and validate a safetensors header, and build one for writing.

We read the format ourselves instead of through the safetensors package so that
every defect gets a message naming the file and tensor, tensors can be streamed
lazily (re-sharding never holds a shard in memory), and checksums can be
verified while the bytes go by. Layout: 8-byte little-endian header length N,
N bytes of JSON, then the data; offsets are relative to the data start.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portability.core.dtypes import dtype_name, numpy_dtype
from portability.errors import FormatError

MAX_HEADER_BYTES = 100 * 1024 * 1024
ALIGNMENT = 8
METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class Entry:
    """One tensor's place in a file."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass
class Header:
    """A parsed, validated header."""

    entries: list[Entry]
    metadata: dict[str, str]
    data_start: int


def parse_header(path: Path) -> Header:
    """Read and validate the header of a safetensors file.

    Raises:
        FormatError: truncated file, implausible header length, invalid JSON,
            unknown dtype, bad shape, offsets out of range or overlapping,
            or a byte count that does not match dtype and shape.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FormatError(f"{path}: truncated: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise FormatError(f"{path}: header length {n} is implausibly large: not a safetensors file")
        if 8 + n > size:
            raise FormatError(f"{path}: header length {n} runs past the end of the file "
                              f"({size} bytes): truncated or not a safetensors file")
        raw = f.read(n)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: header is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: header is JSON but not an object")
    metadata = doc.pop(METADATA_KEY, None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    data_size = size - 8 - n
    entries = [_entry(path, name, info, data_size) for name, info in doc.items()]
    _check_overlaps(path, entries)
    return Header(entries=entries, metadata=metadata, data_start=8 + n)


def _entry(path: Path, name: str, info: object, data_size: int) -> Entry:
    where = f"{path}: tensor {name!r}"
    if not isinstance(info, dict):
        raise FormatError(f"{where}: header entry is not an object")
    try:
        dtype = numpy_dtype(info.get("dtype"))
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from exc
    shape = info.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise FormatError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    offsets = info.get("data_offsets")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise FormatError(f"{where}: data_offsets {offsets!r} is not a pair of integers")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise FormatError(f"{where}: data_offsets [{begin}, {end}] are out of order")
    if end > data_size:
        raise FormatError(f"{where}: data_offsets [{begin}, {end}] run past the end of the data "
                          f"({data_size} bytes): truncated file")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if end - begin != expected:
        raise FormatError(f"{where}: dtype {info['dtype']} and shape {shape} need {expected} bytes "
                          f"but data_offsets cover {end - begin}")
    return Entry(name, dtype, tuple(shape), begin, end)


def _check_overlaps(path: Path, entries: list[Entry]) -> None:
    ordered = sorted((e for e in entries if e.end > e.begin), key=lambda e: e.begin)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.begin < before.end:
            raise FormatError(f"{path}: tensors {before.name!r} and {after.name!r} overlap "
                              f"([{before.begin}, {before.end}] and [{after.begin}, {after.end}])")


def build_header(items: list[tuple[str, np.dtype, tuple[int, ...], int]],
                 metadata: dict[str, str]) -> bytes:
    """Return the 8-byte length plus the JSON header for tensors laid out in order.

    Args:
        items: ``(name, dtype, shape, nbytes)`` in the order the data follows.
        metadata: string metadata for ``__metadata__``.
    """
    doc: dict[str, object] = {METADATA_KEY: metadata} if metadata else {}
    offset = 0
    for name, dtype, shape, nbytes in items:
        doc[name] = {"dtype": dtype_name(dtype), "shape": list(shape),
                     "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % ALIGNMENT)
    return struct.pack("<Q", len(text)) + text
