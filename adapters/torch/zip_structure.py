"""Read a torch zip checkpoint's structure without building any tensor.

A ``torch.save`` zip holds ``data.pkl`` (the object tree; tensors refer to
storages by key) and one uncompressed record per storage (``data/<key>``). This
module unpickles ``data.pkl`` with its own allowlist, narrower than
``weights_only`` and importing no torch: tensor rebuilds give ``TensorRef``
(storage, offset, shape, strides) and storages give ``StorageRef`` (where the
record's bytes start in the file). Nothing from the file is executed; any
other global raises ``NotStreamable`` and the caller falls back to
``torch.load(weights_only=True)``, which gives the proper refusal or result.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portability.adapters.torch.archive import describe
from portability.core.dtypes import numpy_dtype
from portability.errors import FormatError

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIGNATURE = 0x04034B50
# torch's legacy typed storages -> canonical dtype names (numpy_dtype resolves them, so
# ml_dtypes is imported only for a file that holds bfloat16 or float8).
STORAGE_DTYPES = {
    "FloatStorage": "F32", "DoubleStorage": "F64", "HalfStorage": "F16", "BFloat16Storage": "BF16",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL", "ComplexFloatStorage": "C64",
    "Float8_e4m3fnStorage": "F8_E4M3", "Float8_e5m2Storage": "F8_E5M2",
}


class NotStreamable(Exception):
    """The file needs something this reader does not do; use ``torch.load`` instead."""


class _Sealed:
    """Refuses the pickle BUILD opcode: a crafted pickle must not rewrite the file
    path or offsets of a storage this reader created (it could copy other files)."""

    def __setstate__(self, state: object) -> None:
        raise NotStreamable("BUILD on a tensor or storage")


@dataclass(frozen=True)
class StorageRef(_Sealed):
    """One storage record: ``numel`` elements of ``dtype`` at byte ``offset`` of ``path``;
    the record (``record``, its name in the zip) holds ``record_bytes`` bytes whose
    CRC-32 the zip directory gives as ``crc32``."""

    key: str
    dtype: np.dtype
    numel: int
    path: str
    offset: int
    record: str = ""
    record_bytes: int = 0
    crc32: int = 0


@dataclass(frozen=True)
class TensorRef(_Sealed):
    """A tensor as the pickle describes it: a strided view of a storage."""

    storage: StorageRef
    storage_offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.storage.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def is_contiguous(self) -> bool:
        """Whether the view is one C-ordered run of its storage."""
        expected = 1
        for dim, step in zip(reversed(self.shape), reversed(self.stride), strict=False):
            if dim != 1 and step != expected:
                return False
            expected *= dim
        return True

    def span(self) -> tuple[int, int]:
        """First and one-past-last storage element the view touches."""
        if self.size == 0:
            return self.storage_offset, self.storage_offset
        last = self.storage_offset + sum((d - 1) * s for d, s in zip(self.shape, self.stride, strict=False))
        return self.storage_offset, last + 1


@dataclass(frozen=True)
class _StorageType(_Sealed):
    dtype: np.dtype


@dataclass
class Structure:
    """What ``read_structure`` found: the object tree and the raw pickle bytes."""

    obj: object
    pickle_bytes: bytes
    prefix: str


class _StructureUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, path: Path, z: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._path, self._zip, self._prefix = path, z, prefix
        self._storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks: data
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(numpy_dtype(STORAGE_DTYPES[name]))
        raise NotStreamable(f"global {module}.{name}")

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[4], int)):
            raise NotStreamable(f"persistent id {pid!r}")
        key = str(pid[2])
        if key not in self._storages:
            self._storages[key] = self._locate(key, pid[1].dtype, pid[4])
        return self._storages[key]

    def _rebuild_tensor(self, storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                        metadata=None):
        if not isinstance(storage, StorageRef) or hooks or metadata:
            raise NotStreamable("tensor with hooks or metadata")
        ref = TensorRef(storage, int(storage_offset), tuple(int(d) for d in size),
                        tuple(int(s) for s in stride))
        start, end = ref.span()
        if (len(ref.shape) != len(ref.stride) or any(d < 0 for d in ref.shape)
                or any(s < 0 for s in ref.stride) or start < 0 or end > storage.numel):
            raise FormatError(f"{self._path}: a tensor of shape {list(ref.shape)} reaches past its "
                              f"storage {storage.key!r} ({storage.numel} elements): corrupt file")
        return ref

    def _locate(self, key: str, dtype: np.dtype, numel: int) -> StorageRef:
        name = f"{self._prefix}/data/{key}"
        try:
            info = self._zip.getinfo(name)
        except KeyError as exc:
            raise FormatError(f"{self._path}: storage record {name!r} is missing: corrupt file") from exc
        if info.compress_type != zipfile.ZIP_STORED:
            raise NotStreamable(f"compressed record {name}")
        if info.file_size < numel * dtype.itemsize:
            raise FormatError(f"{self._path}: storage record {name!r} holds {info.file_size} bytes, "
                              f"{numel * dtype.itemsize} expected: truncated or corrupt file")
        return StorageRef(key, dtype, numel, str(self._path), _data_offset(self._path, info), name,
                          info.file_size, info.CRC)


def _data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a stored record's bytes begin: after its local header, name and extra field."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        raw = f.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(raw)[0] != _LOCAL_SIGNATURE:
        raise FormatError(f"{path}: record {info.filename!r} has no valid local header: corrupt zip archive")
    fields = _LOCAL_HEADER.unpack(raw)
    return info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]


def read_structure(path: Path) -> Structure:
    """Unpickle a torch zip's ``data.pkl`` into plain containers, ``TensorRef``s and scalars.

    Raises:
        NotStreamable: not a zip, big-endian, or needs globals beyond the tensor rebuilds.
        FormatError: records missing, truncated or pointing outside their storage.
    """
    if not zipfile.is_zipfile(path):
        raise NotStreamable("not a zip archive")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None)
            if pkl is None:
                raise NotStreamable("no data.pkl record")
            prefix = pkl.split("/")[0]
            if f"{prefix}/byteorder" in names and z.read(f"{prefix}/byteorder").strip() != b"little":
                raise NotStreamable("big-endian storages")
            data = z.read(pkl)
            obj = _StructureUnpickler(data, path, z, prefix).load()
    except (zipfile.BadZipFile, OSError) as exc:
        raise NotStreamable(str(exc)) from exc
    except (NotImplementedError, zipfile.LargeZipFile, struct.error, zlib.error, UnicodeDecodeError,
            OverflowError) as exc:  # a zip feature or field no torch writer produces: damage
        raise FormatError(f"{path}: damaged torch zip archive ({describe(exc)})") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as exc:
        raise NotStreamable(f"{type(exc).__name__}: {exc}") from exc
    return Structure(obj, data, prefix)
