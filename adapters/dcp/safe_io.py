"""Read DCP directories without executing anything from them.

``FileSystemReader.read_metadata`` unpickles ``.metadata`` with plain
``pickle.load``, and ``DefaultLoadPlanner.load_bytes`` uses
``torch.load(weights_only=False)``: either runs code a crafted checkpoint
carries. Here the metadata goes through an unpickler that knows only DCP's own
metadata classes, and bytes entries through ``torch.load(weights_only=True)``
with the numpy allowlist of the torch adapter.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader, _StorageInfo

from portability.adapters.torch.safety import first_line, numpy_safe_globals
from portability.errors import FormatError, UnsafeCheckpointError

_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name): getattr(dcp_metadata, name)
    for name in ("Metadata", "TensorStorageMetadata", "TensorProperties", "ChunkStorageMetadata",
                 "BytesStorageMetadata", "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")
    if hasattr(dcp_metadata, name)
}
_METADATA_CLASSES[("torch.distributed.checkpoint.filesystem", "_StorageInfo")] = _StorageInfo
_METADATA_CLASSES[("torch", "Size")] = torch.Size
_METADATA_CLASSES[("torch.serialization", "_get_layout")] = torch.serialization._get_layout
_METADATA_CLASSES[("pathlib", "PosixPath")] = Path
_METADATA_CLASSES[("pathlib", "Path")] = Path


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, where: Path):
        super().__init__(io.BytesIO(data))
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _METADATA_CLASSES:
            return _METADATA_CLASSES[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.memory_format)):
            return getattr(torch, name)
        raise UnsafeCheckpointError(f"{self._where}: refusing to unpickle: the DCP metadata needs global "
                                    f"{module}.{name}, which is not part of DCP's metadata")


def load_metadata(path: Path) -> Any:
    """The ``Metadata`` of a DCP directory, unpickled with DCP's classes only.

    Raises:
        UnsafeCheckpointError: the metadata names any other global.
        FormatError: missing, truncated or not DCP metadata.
    """
    where = path / ".metadata"
    try:
        found = _MetadataUnpickler(where.read_bytes(), where).load()
    except UnsafeCheckpointError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as exc:
        raise FormatError(f"{where}: unreadable DCP metadata ({type(exc).__name__}: {first_line(exc)})") from exc
    if not isinstance(found, dcp_metadata.Metadata):
        raise FormatError(f"{where}: holds a {type(found).__name__}, not DCP metadata")
    if getattr(found, "storage_meta", None) is None:
        found.storage_meta = dcp_metadata.StorageMeta()
    return found


class SafeReader(FileSystemReader):
    """``FileSystemReader`` whose metadata comes from ``load_metadata`` (read once)."""

    def __init__(self, path: Path, metadata: Any = None) -> None:
        super().__init__(str(path))
        self._dir = Path(path)
        self._metadata = metadata

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        if self._metadata is None:
            self._metadata = load_metadata(self._dir)
        return self._metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """``DefaultLoadPlanner`` that unpickles bytes entries with ``weights_only=True``."""

    def __init__(self, where: Path) -> None:
        super().__init__()
        self._where = where

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        try:
            with torch.serialization.safe_globals(numpy_safe_globals()):
                obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise UnsafeCheckpointError(f"{self._where}: refusing to unpickle entry {fqn!r}: "
                                        f"{first_line(exc)}") from exc
        except (RuntimeError, EOFError, ValueError) as exc:
            raise FormatError(f"{self._where}: entry {fqn!r} is corrupt ({first_line(exc)})") from exc
        if self.flatten_state_dict:
            self.original_state_dict[fqn] = obj
        self.state_dict[fqn] = obj


def load_entries(path: Path, metadata: Any, entries: dict[str, Any]) -> dict[str, Any]:
    """Fill ``entries`` (flattened name -> empty tensor, or None for a bytes entry) from the files.

    Raises:
        FormatError: a data file is missing or short.
    """
    if not entries:
        return entries
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DCP warns that it runs without a process group
            dcp.load(entries, storage_reader=SafeReader(path, metadata), planner=SafeLoadPlanner(path),
                     no_dist=True)
    except (UnsafeCheckpointError, FormatError):
        raise
    except Exception as exc:  # DCP wraps reader failures in CheckpointException
        message = first_line(exc)
        for inner in getattr(exc, "failures", {}).values():
            message = first_line(inner)
        raise FormatError(f"{path}: cannot read DCP data ({message})") from exc
    return entries
