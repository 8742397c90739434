"""A small, bounded cache keyed by what is in the files, not by their names.

A worker runs several routes of one subject one after another; they share the
reference (the source checkpoint read, run and scored once). A file rewritten in
place between two checks in one process must not get the old reference back, so
keys carry ``content_identity`` of the files, and each check starts empty.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Generic, TypeVar

Value = TypeVar("Value")


def content_identity(path_text: str | None) -> tuple:
    """What tells one content of a file (or of every file under a directory) from another
    without reading it: path, size, mtime_ns, ctime_ns and inode of each file. A file
    rewritten in place gets a new mtime and ctime, a file replaced by a rename a new inode.

    Args:
        path_text: a file or directory, or None (then the identity is empty).

    Returns:
        A hashable tuple; a missing file contributes its path and None.
    """
    if not path_text:
        return ()
    path = Path(path_text)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    identity: list[tuple] = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            identity.append((str(file), None))
            continue
        identity.append((str(file), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(identity)


class BoundedCache(Generic[Value]):
    """Least recently used entries go first once more than ``size`` are kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple, Value] = OrderedDict()

    def get(self, key: tuple) -> Value | None:
        """The entry under ``key`` (now the most recently used), or None."""
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple, value: Value) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used past ``size``."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
