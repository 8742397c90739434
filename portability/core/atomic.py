"""Atomic outputs: write under a temporary sibling name, fsync, then rename.

A process killed at any moment leaves either no output or a complete one under
the final name, never a partial file. Temporary names start with ``.`` and
contain ``.portability-tmp-`` so stale ones from a crash are easy to spot.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portability.errors import PortabilityError, UsageError, WriteError

TMP_MARKER = ".portability-tmp-"


def temp_sibling(final: Path, kind: str = "tmp") -> Path:
    """A unique hidden path beside ``final`` on the same file system."""
    marker = TMP_MARKER if kind == "tmp" else f".portability-{kind}-"
    # Keep the suffix so writers can still tell a file destination from a directory.
    return final.parent / f".{final.stem}{marker}{os.getpid()}-{secrets.token_hex(4)}{final.suffix}"


def check_destination(final: Path, overwrite: bool) -> None:
    """Refuse an existing destination unless ``overwrite`` is set.

    Raises:
        UsageError: the destination exists and overwrite is False.
    """
    if final.exists() and not overwrite:
        raise UsageError(f"{final} already exists (pass --overwrite to replace it)")


def fsync_tree(path: Path) -> None:
    """fsync a file, or every file and directory under a directory."""
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for name in files:
                _fsync_file(Path(root) / name)
            _fsync_dir(Path(root))
    else:
        _fsync_file(path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def atomic_output(final: str | Path, *, overwrite: bool = False, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; publish it as ``final`` on success.

    The caller writes a file or a directory at the yielded path. On normal exit
    its contents are fsynced (unless ``durable`` is False) and renamed over
    ``final``; on any exception the temporary output is removed and ``final``
    is untouched.

    Raises:
        UsageError: ``final`` exists and ``overwrite`` is False.
        WriteError: an OS error (disk full, permission) while writing.
    """
    final = Path(final)
    check_destination(final, overwrite)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create the folder {final.parent} for {final.name}: "
                         f"{exc.strerror or exc}; nothing was written") from exc
    remove_stale_temps(final)
    tmp = temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise WriteError(f"writing {final} produced no output")
        if durable:
            fsync_tree(tmp)
        _publish(tmp, final)
        if durable:
            _fsync_dir(final.parent)
    except OSError as exc:
        _remove(tmp)
        reason = exc.strerror or str(exc)
        raise WriteError(f"writing {final} failed: {reason}; nothing was written") from exc
    except PortabilityError as exc:
        _remove(tmp)
        renamed = _name_final(exc, tmp, final)
        if renamed is None:
            raise
        raise renamed from exc
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_pair(final: str | Path, companion: str | Path, *, overwrite: bool = False,
                durable: bool = True) -> Iterator[Path]:
    """Yield a temporary directory in which to write ``final.name`` and ``companion.name``
    (an ONNX graph and its external data, which refer to each other by name); publish
    both on success, the companion first, so the main file never appears without it.

    A process killed between the two renames leaves a complete companion and no main
    file; a failure while writing leaves neither under its final name.

    Raises:
        UsageError: either destination exists and ``overwrite`` is False.
        WriteError: an OS error while writing, or the writer left either file out.
    """
    final, companion = Path(final), Path(companion)
    check_destination(final, overwrite)
    check_destination(companion, overwrite)
    remove_stale_temps(final)
    stage = temp_sibling(final).with_suffix("")
    try:
        stage.mkdir(parents=True)
        yield stage
        missing = [p.name for p in (final, companion) if not (stage / p.name).is_file()]
        if missing:
            raise WriteError(f"writing {final} produced no {', '.join(missing)}")
        if durable:
            fsync_tree(stage)
        os.replace(stage / companion.name, companion)
        os.replace(stage / final.name, final)
        if durable:
            _fsync_dir(final.parent)
    except OSError as exc:
        raise WriteError(f"writing {final} failed: {exc.strerror or exc}; nothing was written") from exc
    except PortabilityError as exc:
        renamed = _name_final(exc, stage, final.parent)
        if renamed is None:
            raise
        raise renamed from exc
    finally:
        _remove(stage)


def _name_final(exc: PortabilityError, tmp: Path, final: Path) -> PortabilityError | None:
    """The same error with the temporary name replaced by the final one, or None.

    Writers only see the temporary path; users should only see the path they asked for.
    """
    text = str(exc)
    if tmp.name not in text:
        return None
    try:
        return type(exc)(text.replace(str(tmp), str(final)).replace(tmp.name, final.name))
    except TypeError:  # an error type with a different constructor: keep it as is
        return None


def remove_stale_temps(final: Path) -> list[Path]:
    """Remove temporary outputs for ``final`` left by writers that were killed.

    Only temporaries whose writing process no longer exists are removed, so a
    conversion running in parallel keeps its own.

    Returns:
        The paths removed.
    """
    prefix = f".{final.stem}{TMP_MARKER}"
    removed: list[Path] = []
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        if not path.name.startswith(prefix):
            continue
        pid_text = path.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            _remove(path)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _publish(tmp: Path, final: Path) -> None:
    if not final.exists() or (final.is_file() and tmp.is_file()):
        os.replace(tmp, final)
        return
    # A directory cannot be renamed over a non-empty one: move the old one
    # aside first, so the final name always holds one complete version.
    old = temp_sibling(final, kind="old")
    os.replace(final, old)
    os.replace(tmp, final)
    _remove(old)
