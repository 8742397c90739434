"""Write a torch zip checkpoint tensor by tensor, without holding the tensors.

``torch.save`` needs every tensor in memory. The archive it writes is simple:
``data.pkl`` (the object tree, each tensor a ``_rebuild_tensor_v2`` call on a
persistent storage id) and one uncompressed record per storage, 64-byte
aligned. This writer builds the same tree with stand-ins for the weights,
pickles it with the pure-Python pickler (which lets the stand-ins emit torch's
globals without importing torch), and streams each weight's bytes into its
record in bounded pieces, hashing them for the ``portability.json`` record on
the way. The result loads with ``torch.load(weights_only=True)`` and with our
structure reader.
"""

from __future__ import annotations

import collections
import io
import json
import math
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from portability.adapters.torch.archive import PICKLE_MARKER, ZIP_COMMENT
from portability.adapters.torch.zip_structure import STORAGE_DTYPES
from portability.core import integrity
from portability.core.checkpoint import Checkpoint
from portability.core.dtypes import dtype_name
from portability.core.layout import parse_layout, put_path
from portability.core.tensors import Tensor, iter_bytes
from portability.core.training_codec import pack_training
from portability.errors import FormatError

RECORD = "portability.json"
RECORD_VERSION = 2  # as state_dict.RECORD_VERSION: the record has a pickle_digest
PREFIX = "archive"
ALIGNMENT = 64
_PADDING_ID = 0x4246  # the extra-field id torch pads records with ("FB")
# Typed storages torch.load(weights_only=True) accepts; torch writes float8 and the wide
# unsigned types through _rebuild_tensor_v3 instead, so those go through torch.save.
_STORAGE_NAMES = {dtype: name for name, dtype in STORAGE_DTYPES.items() if not name.startswith("Float8")}


def _storage_name(dtype: np.dtype) -> str | None:
    """torch's legacy storage name for a dtype (None: it has none that weights_only accepts)."""
    try:
        return _STORAGE_NAMES.get(dtype_name(dtype))
    except FormatError:
        return None
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # reproducible archives


class Unstreamable(Exception):
    """The checkpoint holds something this writer does not write; use ``torch.save``."""


class _Global:
    """Pickles as ``GLOBAL module name`` without importing the module."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # the pickler wants a callable; unpicklers call the real one
        raise TypeError(f"{self.module}.{self.name} is a stand-in for pickling only")


class _Storage:
    """One storage record: its key, element dtype and count, and where its bytes come from."""

    def __init__(self, key: str, dtype: np.dtype, numel: int, source: Tensor) -> None:
        self.key, self.dtype, self.numel, self.source = key, dtype, numel, source


class _TensorStub:
    """Stands in for a weight in the tree ``object_from_checkpoint`` builds."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]) -> None:
        self.storage, self.shape = storage, shape


class _Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file: io.BytesIO, storages: list[_Storage]) -> None:
        super().__init__(file, protocol=2)
        self._storages = storages

    def _save_global_stub(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode("ascii"))
        self.memoize(obj)

    dispatch[_Global] = _save_global_stub

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", _storage_name(obj.dtype)), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _TensorStub):
            return _rebuild(obj.storage, obj.shape)
        if type(obj).__module__.startswith("torch") and hasattr(obj, "untyped_storage"):
            from portability.adapters.torch.numpy_bridge import tensor_to_numpy

            array = tensor_to_numpy(obj)
            array = array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d arrays 0-d
            return _rebuild(new_storage(self._storages, array), tuple(array.shape))
        return NotImplemented


def _rebuild(storage: _Storage, shape: tuple[int, ...]) -> tuple:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return (_Global("torch._utils", "_rebuild_tensor_v2"),
            (storage, 0, tuple(shape), tuple(reversed(strides)), False, collections.OrderedDict()))


def new_storage(storages: list[_Storage], tensor: Tensor) -> _Storage:
    """Register a storage for ``tensor``'s bytes.

    Raises:
        Unstreamable: a dtype torch has no legacy storage name for.
    """
    dtype = np.dtype(tensor.dtype)
    if _storage_name(dtype) is None:
        raise Unstreamable(f"dtype {dtype}")
    storage = _Storage(str(len(storages)), dtype, math.prod(tensor.shape), tensor)
    storages.append(storage)
    return storage


def write(ckpt: Checkpoint, path: Path) -> None:
    """Write ``ckpt`` as a torch zip archive at ``path``, streaming the weights.

    Raises:
        Unstreamable: before anything is written, when the checkpoint needs ``torch.save``.
        IntegrityError: a lazy source tensor fails its checksum while being copied.
        OSError: the write failed.
    """
    storages: list[_Storage] = []
    stubs = {name: _TensorStub(new_storage(storages, ckpt.tensors[name]), tuple(ckpt.tensors[name].shape))
             for name in ckpt.canonical_names()}
    standin = Checkpoint(tensors={n: stubs[ckpt.aliases.get(n, n)] for n in ckpt.tensors}, aliases=ckpt.aliases,
                         metadata=ckpt.metadata, training=ckpt.training, layout=ckpt.layout)
    buffer = io.BytesIO()
    _Pickler(buffer, storages).dump(_tree(standin))
    data_pkl = buffer.getvalue() + PICKLE_MARKER  # unpicklers stop at STOP and never read it
    digests: dict[str, str] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        _small(z, "data.pkl", data_pkl)
        for name, payload in ((".format_version", b"1"), (".storage_alignment", str(ALIGNMENT).encode()),
                              ("byteorder", b"little")):
            _small(z, name, payload)
        for storage in storages:
            digests[storage.key] = _stream_record(z, storage)
        _small(z, "version", b"3\n")
        by_name = {name: digests[stub.storage.key] for name, stub in stubs.items()}
        if ckpt.training is not None:
            _, arrays = pack_training(ckpt.training)
            by_name.update({name: integrity.tensor_digest(a) for name, a in arrays.items()})
        record = {"version": RECORD_VERSION, "algorithm": integrity.ALGORITHM,
                  "pickle_digest": integrity.digest([data_pkl]),
                  "checksums": by_name, "aliases": ckpt.aliases, "metadata": ckpt.metadata,
                  "layout": ckpt.layout}
        _small(z, RECORD, json.dumps(record).encode("utf-8"))
        z.comment = ZIP_COMMENT


def _tree(standin: Checkpoint) -> Any:
    """The object ``torch.save`` would get; weights-only checkpoints need no torch import."""
    if standin.training is None:
        path = parse_layout(standin.layout).weights
        weights = dict(standin.tensors)
        if not path:
            return weights
        tree: dict = {}
        put_path(tree, path, weights)
        return tree
    from portability.adapters.torch import state_dict

    return state_dict.object_from_checkpoint(standin)


def _small(z: zipfile.ZipFile, name: str, payload: bytes) -> None:
    z.writestr(zipfile.ZipInfo(f"{PREFIX}/{name}", date_time=_FIXED_TIME), payload)


def _stream_record(z: zipfile.ZipFile, storage: _Storage) -> str:
    """Write one storage record, its data 64-byte aligned as torch aligns it; returns its digest."""
    info = zipfile.ZipInfo(f"{PREFIX}/data/{storage.key}", date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = storage.numel * storage.dtype.itemsize
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # the rule zipfile applies when opening
    start = z.fp.tell() + 30 + len(info.filename.encode("utf-8")) + 4 + (20 if zip64 else 0)
    pad = -start % ALIGNMENT
    info.extra = struct.pack("<HH", _PADDING_ID, pad) + b"Z" * pad
    hasher = integrity.new_hasher()
    with z.open(info, "w", force_zip64=zip64) as out:
        for piece in iter_bytes(storage.source):
            hasher.update(piece)
            out.write(piece)
    return hasher.hexdigest()
