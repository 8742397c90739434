"""Load torch pickles without running code from them.

``torch.load(weights_only=True)`` refuses every global outside torch's own
allow-list. Checkpoints routinely hold numpy RNG states and numpy scalars, whose
rebuild functions only construct arrays, so those few numpy globals are
allowed too. Anything else is refused with a message naming the globals,
unless the caller explicitly trusts the file.
"""

from __future__ import annotations

import pickle
import pickletools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portability.adapters.torch.archive import open_archive
from portability.adapters.torch.legacy_sizes import check_legacy_sizes
from portability.errors import FormatError, UnsafeCheckpointError


def _numpy_multiarray():
    core = getattr(np, "_core", None)
    return core.multiarray if core is not None else np.core.multiarray


def numpy_safe_globals() -> list[Any]:
    """numpy globals that only rebuild arrays, dtypes and scalars.

    Each is listed under both the numpy 1 (``numpy.core``) and numpy 2
    (``numpy._core``) module path, so files written with either load.
    """
    multiarray = _numpy_multiarray()
    entries: list[Any] = [np.ndarray, np.dtype]
    for func in (multiarray._reconstruct, multiarray.scalar):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            entries.append((func, f"{module}.{func.__name__}"))
    entries += [type(np.dtype(code)) for code in "?bhilqBHILQefdgFD"]
    return entries


def rng_state_globals() -> list[Any]:
    """Exactly what a pickled ``np.random.get_state()`` needs (a Trainer's ``rng_state.pth``):
    ``_reconstruct`` (numpy 1 and 2 paths), ``ndarray``, ``dtype`` and the uint32 dtype class
    of the key array. torch's ``get_unsafe_globals_in_checkpoint`` lists the first three only;
    without the dtype class the load still fails (found by trying, numpy 2.4, torch 2.13)."""
    reconstruct = _numpy_multiarray()._reconstruct
    return [(reconstruct, f"{module}._reconstruct") for module in ("numpy.core.multiarray", "numpy._core.multiarray")
            ] + [np.ndarray, np.dtype, type(np.dtype(np.uint32))]


SAFE_NUMPY_NAMES = frozenset(
    {"numpy.ndarray", "numpy.dtype"}
    | {f"{m}.{f}" for m in ("numpy.core.multiarray", "numpy._core.multiarray") for f in ("_reconstruct", "scalar")}
)


def load_pickle(path: Path, trust_pickle: bool, allowed: list[Any] | None = None) -> Any:
    """``torch.load`` a file on the CPU, refusing code-running globals unless trusted.

    Args:
        path: the file.
        trust_pickle: run any pickle (``weights_only=False``).
        allowed: the globals allowed beyond torch's own (default: ``numpy_safe_globals()``).

    Raises:
        UnsafeCheckpointError: the pickle needs other globals and ``trust_pickle`` is off.
        FormatError: truncated, corrupt or not a torch file.
    """
    archive = open_archive(path)  # a damaged zip is refused here, before torch allocates anything
    is_zip = archive is not None
    if archive is not None:
        archive.close()
    else:
        check_legacy_sizes(path)
    try:
        with torch.serialization.safe_globals(numpy_safe_globals() if allowed is None else allowed), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; errors speak for themselves
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "not an allowed global" in str(exc) or unsafe_globals(path):
            raise UnsafeCheckpointError(unsafe_message(path, exc)) from exc
        raise FormatError(f"{path}: corrupt pickle ({first_line(exc)})") from exc
    except RuntimeError as exc:
        if "zip archive" in str(exc) or "PytorchStreamReader" in str(exc):
            raise FormatError(f"{path}: truncated or corrupt torch zip archive ({first_line(exc)})") from exc
        raise FormatError(f"{path}: cannot be read as a torch checkpoint ({first_line(exc)})") from exc
    except Exception as exc:  # torch's unpicklers raise any type on damaged input
        raise FormatError(f"{path}: not a readable torch checkpoint "
                          f"({type(exc).__name__}: {first_line(exc)})") from exc


def unsafe_globals(path: Path) -> list[str]:
    """Globals the file needs beyond torch's allow-list and the numpy ones above.

    Zip checkpoints are scanned by torch; plain pickles by reading their opcodes
    (nothing is executed either way).
    """
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # legacy (non-zip) files: scan the opcodes ourselves
        found = [name for name in scan_pickle_globals(path) if not _allowed_by_torch(name)]
    return [name for name in found if name not in SAFE_NUMPY_NAMES]


def scan_pickle_globals(path: Path, limit: int = 64 * 1024 * 1024) -> list[str]:
    """``module.name`` of every global the pickles at the start of a file import.

    Reads opcodes only. Consecutive pickles are followed (legacy torch files
    hold several); scanning stops at the first bytes that are not a pickle.
    """
    import io

    with open(path, "rb") as f:
        data = io.BytesIO(f.read(limit))
    names: list[str] = []
    while data.tell() < len(data.getbuffer()):
        strings: list[str] = []
        memo: list = []
        try:
            for op, arg, _pos in pickletools.genops(data):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings.append(arg)
                elif op.name == "MEMOIZE":
                    memo.append(strings[-1] if strings else None)
                elif op.name in ("BINGET", "LONG_BINGET") and isinstance(arg, int) and arg < len(memo):
                    if isinstance(memo[arg], str):
                        strings.append(memo[arg])
                elif op.name == "GLOBAL":
                    names.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # not (or no longer) a pickle: stop scanning
            break
    return list(dict.fromkeys(names))


def _allowed_by_torch(name: str) -> bool:
    try:
        from torch import _weights_only_unpickler as wou

        return name in wou._get_allowed_globals() or name in wou._get_user_allowed_globals()
    except Exception:  # private API moved: report every global rather than none
        return False


def unsafe_message(path: Path, exc: Exception) -> str:
    """One-line refusal naming the globals (or torch's own first line)."""
    names = unsafe_globals(path)
    listed = ", ".join(names) if names else _global_from_error(exc)
    return (f"{path}: refusing to unpickle: the file needs globals that could run code "
            f"({listed}); pass --trust-pickle only if you trust where it came from")


def _global_from_error(exc: Exception) -> str:
    """Pick ``GLOBAL module.name`` out of torch's multi-line message."""
    for line in str(exc).splitlines():
        if "GLOBAL " in line:
            word = line.split("GLOBAL ", 1)[1].split()[0]
            return word
    return first_line(exc)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
