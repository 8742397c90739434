"""Initializer values that stay in their external-data file until used.

A model past protobuf's 2 GiB keeps its weights in an external file; loading
them into the proto and then decoding each one holds the weights twice. Here
each external initializer becomes a ``LazyTensor`` over its byte range (read,
and checked against its recorded digest, when used), so reading a model's
weights costs memory for the tensors in use only. Data kept inside the proto
is decoded as before. Reshapes and transposes of lazy values stay lazy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from portability.adapters.onnx.tensors import numpy_dtype, tensor_to_numpy
from portability.core import file_copy, integrity
from portability.core.tensors import LazyTensor, Tensor, as_array, iter_bytes
from portability.errors import FormatError


def initializer_values(proto: onnx.ModelProto, file: Path) -> dict[str, Tensor]:
    """Every initializer of the main graph by name: an array, or a ``LazyTensor`` when
    its data is external (``safety.load_proto(..., load_external=False)`` has checked
    the locations and extents).

    Raises:
        FormatError: an unknown element type, or a byte count that does not fit the shape.
    """
    return {t.name: external_value(t, file.parent) if t.data_location == onnx.TensorProto.EXTERNAL
            else tensor_to_numpy(t) for t in proto.graph.initializer}


def external_value(tensor: onnx.TensorProto, folder: Path, digest: str | None = None) -> LazyTensor:
    """A lazy view of an external initializer's bytes.

    Args:
        tensor: the initializer, its data external.
        folder: the folder its location is relative to (the ``.onnx`` file's).
        digest: the xxh3-64 its bytes must hash to (checked on every read), or None.

    Raises:
        FormatError: an element type with no numpy counterpart, or a recorded length
            that does not match the shape.
    """
    dtype = numpy_dtype(tensor.data_type, tensor.name)
    shape = tuple(int(d) for d in tensor.dims)
    info = {entry.key: entry.value for entry in tensor.external_data}
    path = folder / info["location"]
    offset = int(info.get("offset", "0"))
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if "length" in info and int(info["length"]) != nbytes:
        raise FormatError(f"{path}: tensor {tensor.name!r}: external length {info['length']} for shape "
                          f"{list(shape)} of {dtype} (expected {nbytes})")
    return _range_tensor(path, offset, dtype, shape, digest, f"tensor {tensor.name!r} in {path}")


def _range_tensor(path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...], digest: str | None,
                  label: str) -> LazyTensor:
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def read_chunks(chunk: int) -> Iterator[bytes]:
        pieces = file_copy.read_range(path, offset, nbytes, chunk)
        yield from (pieces if digest is None else integrity.verified(pieces, digest, label))

    def read_into(buffer: memoryview) -> None:
        got = file_copy.read_range_into(path, offset, buffer, digest is not None)
        if digest is not None:
            integrity.check_hex(got.digest, digest, label)

    return LazyTensor(dtype, shape, read_chunks, read_into, file_range=(str(path), offset), digest=digest,
                      label=label)


def reshaped(value: Tensor, shape: tuple[int, ...] | list[int]) -> Tensor:
    """The same bytes under another shape (lazy stays lazy)."""
    shape = tuple(int(d) for d in shape)
    if isinstance(value, np.ndarray):
        return value.reshape(shape)
    if value.shape == shape:
        return value
    inner = value.loader
    loader = None if inner is None else (lambda: inner().reshape(shape))
    return LazyTensor(value.dtype, shape, value.read_chunks, value.read_into, value.file_range, value.digest,
                      value.label, value.crc, loader)


def transposed(value: Tensor) -> Tensor:
    """A 2-D tensor transposed, in C order (lazy stays lazy: read and transposed on use)."""
    if isinstance(value, np.ndarray):
        return np.asarray(value.T, order="C")
    source = value

    def load() -> np.ndarray:
        return np.asarray(as_array(source).T, order="C")

    def read_chunks(chunk: int) -> Iterator[bytes | memoryview]:
        yield from iter_bytes(load(), chunk)

    def read_into(buffer: memoryview) -> None:
        np.frombuffer(buffer, dtype=np.uint8)[:] = load().reshape(-1).view(np.uint8)

    return LazyTensor(value.dtype, tuple(value.shape[::-1]), read_chunks, read_into,
                      label=f"{value.label} (transposed)", loader=load)


def with_digest(value: Tensor, expected: str) -> Tensor:
    """A lazy tensor that checks its bytes against ``expected`` on every read (an
    array, already in memory, is returned as it is: verify it once, where it was decoded)."""
    if isinstance(value, np.ndarray):
        return value
    if value.file_range is not None:
        path, offset = value.file_range
        return _range_tensor(Path(path), offset, np.dtype(value.dtype), tuple(value.shape), expected, value.label)
    inner = value

    def read_chunks(chunk: int) -> Iterator[bytes | memoryview]:
        yield from integrity.verified(inner.read_chunks(chunk), expected, inner.label)

    def read_into(buffer: memoryview) -> None:
        assert inner.read_into is not None, "the lazy views made here always read into a buffer"
        inner.read_into(buffer)
        integrity.check_hex(integrity.digest([buffer]), expected, inner.label)

    def loader() -> np.ndarray:
        out = inner.load()
        integrity.check_hex(integrity.tensor_digest(out), expected, inner.label)
        return out

    return LazyTensor(value.dtype, tuple(value.shape), read_chunks, read_into, digest=expected, label=inner.label,
                      loader=loader)
