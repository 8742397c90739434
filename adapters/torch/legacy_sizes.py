"""Size check for legacy (non-zip) torch files, before torch allocates anything.

A legacy file is a run of pickles: magic number, protocol version, system
info, the object (its tensors' storages are persistent ids declaring their
element counts), the list of storage keys, then the raw storages. torch
allocates every storage at the size its persistent id declares while it
unpickles the object, so one flipped bit in a count could ask for terabytes.
Here the pickles are replayed with every global replaced by an inert stub
(nothing from the file runs) to collect the declared sizes, and their sum is
compared with the file's size.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

from portability.errors import FormatError

LEGACY_PICKLES = 5  # magic, protocol, sys_info, object, storage keys
# Bytes per element of the legacy typed storages (``torch.FloatStorage``...).
_ELEMENT_BYTES = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2,
                  "Char": 1, "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16}


class _Stub:
    """Stands in for any global: accepts every call and mutation, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        """Accept LIST appends."""

    def extend(self, values: Any) -> None:
        """Accept LIST extends."""


class _SizeScanner(pickle._Unpickler):
    """Unpickles with stubs for globals and records each storage's declared bytes.

    The pure-Python unpickler keeps its memo in a dict; the C one sizes a list by
    the largest memo index, which a damaged file can set to billions.
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        # Bytes per storage key: views of one storage (an LSTM's flattened weights,
        # tied embeddings) name the same key again and must be counted once.
        self.declared: dict[Any, int] = {}

    def find_class(self, module: str, name: str) -> type:
        return type(name, (_Stub,), {})

    def persistent_load(self, pid: Any) -> _Stub:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage_type, key, numel = pid[1], pid[2], pid[4]
            type_name = getattr(storage_type, "__name__", "")
            element = _ELEMENT_BYTES.get(type_name.removesuffix("Storage"), 1)
            if isinstance(numel, int):
                key = key if isinstance(key, (str, int)) else repr(key)
                self.declared[key] = max(self.declared.get(key, numel * element), numel * element)
        return _Stub()


def check_legacy_sizes(path: Path) -> None:
    """Refuse a legacy torch file whose storages declare more bytes than it holds.

    Files that are not legacy torch pickles are left to torch's own errors.

    Raises:
        FormatError: the declared storage sizes exceed the file's size, or one is negative.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            scanner = _SizeScanner(f)
            for _ in range(LEGACY_PICKLES):
                try:
                    scanner.load()
                except Exception:  # a damaged or foreign pickle: torch reports it in its own words
                    break
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read ({exc})") from exc
    total = sum(scanner.declared.values())
    if any(n < 0 for n in scanner.declared.values()) or total > size:
        raise FormatError(f"{path}: corrupt legacy torch file: its storages declare {total} bytes "
                          f"but the file holds {size}")
